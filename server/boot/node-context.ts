// What a node's generated boot files are made of: its inventory entry, the image
// assigned to it, and where the server is. The kernel command line carries how
// the initrd finds its root (server, NBD port, export) and never a secret.
import type { ResolvedConfig, ResolvedNode } from '../config/load.js';
import type { BootContext } from './templates.js';
import { nbdkitExportName } from '../nbd/backends/nbdkit.js';

/** The export a node's root is served as, under the configured NBD backend. */
export function exportName(image: string, arch: string, config: ResolvedConfig): string {
  const name = `${image}/${arch}`;
  return config.nbd.backend === 'nbdkit' ? nbdkitExportName(name) : name;
}

export function nodeArch(node: ResolvedNode): string {
  return node.arch ?? (node.piSerial ? 'arm64' : 'amd64');
}

export function nodeImage(node: ResolvedNode, config: ResolvedConfig): string {
  return node.image ?? config.images.default;
}

export function bootContext(node: ResolvedNode, config: ResolvedConfig): BootContext {
  const address = config.server.address;
  const arch = nodeArch(node);
  const image = nodeImage(node, config);
  const base = `images/${image}/${arch}`;
  const http = `http://${address}:${config.http.port}`;
  const piModel = node.piModel ?? 4;
  const kernelArgs = [
    'ip=dhcp',
    `bootfarm.server=${address}`,
    `bootfarm.http=${address}:${config.http.port}`,
    `bootfarm.nbd=${address}:${config.nbd.port}`,
    `bootfarm.export=${exportName(image, arch, config)}`,
    `bootfarm.node=${node.hostname}`,
    `bootfarm.mac=${node.mac}`,
    config.boot.kernelArgs,
  ].filter((a) => a.length > 0).join(' ');
  return {
    node: { hostname: node.hostname, mac: node.mac, macHyphen: node.mac.replace(/:/g, '-'), arch, ip: node.ip ?? '' },
    server: { address, httpPort: config.http.port, tftpPort: config.tftp.port, nbdPort: config.nbd.port },
    image: {
      name: image,
      arch,
      export: exportName(image, arch, config),
      kernelPath: `${base}/vmlinuz`,
      initrdPath: `${base}/initrd.img`,
      kernelUrl: `${http}/${base}/vmlinuz`,
      initrdUrl: `${http}/${base}/initrd.img`,
    },
    pi: {
      serial: node.piSerial ?? '',
      model: piModel,
      isPi4: piModel === 4,
      isPi5: piModel === 5,
      kernel: piModel === 5 ? 'kernel_2712.img' : 'kernel8.img',
      initramfs: 'initrd.img',
    },
    kernelArgs,
  };
}
