// What a node's generated boot files are made of: its inventory entry, the image
// assigned to it, and where the server is. The kernel command line carries how
// the initrd finds its root (server, NBD port, export) and, in a served boot
// script, the boot's one-time nonce (server/join/boot-sessions.ts); never a
// lasting secret.
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import type { ResolvedConfig } from '../config/types.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { BootContext } from '../config/templates.js';
import { nbdkitExportName } from '../util/nbdkit-export-name.js';
import { IMAGE_DIR_NAME } from '../image/names.js';
import { piNodeBootSet } from './files/pi-models.js';

/**
 * The export a node's root is served as, under the configured NBD backend. The
 * built-in server's name carries the version planned for the boot
 * (<image>/<version>/<arch>): a node that reconnects later, after a publish,
 * attaches the same bytes (docs/design.md "Root reconnect").
 */
function exportOf(image: string, arch: string, config: ResolvedConfig, version: string | undefined): string {
  if (version !== undefined) return `${image}/${version}/${arch}`;
  const name = `${image}/${arch}`;
  return config.nbd.backend === 'nbdkit' ? nbdkitExportName(name) : name;
}

/**
 * The version a boot planned now is pinned to: with the built-in NBD server, the
 * one `current` points at (its kernel, initrd and root all come from it);
 * undefined for the external backends, which serve `current` as it is at attach.
 */
function plannedVersion(image: string, config: ResolvedConfig): string | undefined {
  return config.nbd.backend === 'builtin' ? currentVersion(config.images.dir, image) : undefined;
}

/** The version directory `<images.dir>/<image>/current` links to; undefined when there is none (no such image yet). */
function currentVersion(imagesDir: string, image: string): string | undefined {
  try {
    const version = path.basename(readlinkSync(path.join(imagesDir, image, 'current')));
    return IMAGE_DIR_NAME.test(version) ? version : undefined;
  } catch {
    return undefined;
  }
}

/** `boot.nonce`: set when the context renders a boot script being served, absent in previews (`bootfarm render`). */
export function bootContext(node: EffectiveNode, config: ResolvedConfig, boot?: { nonce: string }): BootContext {
  const address = config.server.address;
  const { arch, image } = node;
  // Read once: the kernel, the initrd and the root on the command line are of one
  // version, even when a new one is published while the node boots
  // (server/boot/files/images.ts serves images/<image>/<version>/<arch>/).
  const version = plannedVersion(image, config);
  const base = version === undefined ? `images/${image}/${arch}` : `images/${image}/${version}/${arch}`;
  const rootExport = exportOf(image, arch, config, version);
  const http = `http://${address}:${config.http.port}`;
  const kernelArgs = [
    'ip=dhcp',
    `bootfarm.server=${address}`,
    `bootfarm.http=${address}:${config.http.port}`,
    `bootfarm.nbd=${address}:${config.nbd.port}`,
    `bootfarm.export=${rootExport}`,
    `bootfarm.node=${node.hostname}`,
    `bootfarm.mac=${node.mac}`,
    node.toRam ? 'bootfarm.toram=1' : '',
    boot ? `bootfarm.nonce=${boot.nonce}` : '',
    config.boot.kernelArgs,
    node.kernelArgs,
  ]
    .filter((a) => a.length > 0)
    .join(' ');
  return {
    node: {
      hostname: node.hostname,
      mac: node.mac,
      macHyphen: node.mac.replace(/:/g, '-'),
      arch,
      ip: node.ip ?? '',
      profiles: node.profiles.join(' '),
      labels: labelList(node.labels),
    },
    server: { address, httpPort: config.http.port, tftpPort: config.tftp.port, nbdPort: config.nbd.port },
    image: {
      name: image,
      arch,
      export: rootExport,
      kernelPath: `${base}/vmlinuz`,
      initrdPath: `${base}/initrd.img`,
      kernelUrl: `${http}/${base}/vmlinuz`,
      initrdUrl: `${http}/${base}/initrd.img`,
      // Debian's signed network GRUB, the one a Secure Boot machine can run, has
      // tftp built in but not http, and may load no module from the network.
      grubDevice: node.secureBoot
        ? `(tftp,${config.tftp.port === 69 ? address : `${address}:${config.tftp.port}`})`
        : `(http,${address}:${config.http.port})`,
    },
    pi: piContext(node),
    kernelArgs,
    lts: {
      vars: Object.entries(node.lts).map(([key, value]) => ({ key, value })),
      preinitKeys: node.ltsOrder.PREINIT.join(' '),
      fstabKeys: node.ltsOrder.FSTAB.join(' '),
      rcfileKeys: node.ltsOrder.RCFILE.join(' '),
      sysctlKeys: node.ltsOrder.SYSCTL.join(' '),
    },
  };
}

/**
 * A Pi's config.txt values, per model and arch (server/boot/files/pi-models.ts). A
 * node with no boot set (not a Pi, model unknown, a Pi 5 with armhf) gets empty
 * names: the TFTP/HTTP side refuses its config.txt before rendering it
 * (server/boot/files/generated.ts), and `config check` names the problem.
 */
function piContext(node: EffectiveNode): BootContext['pi'] {
  const set = node.piSerial ? piNodeBootSet(node) : undefined;
  const ok = set !== undefined && !('refused' in set);
  const model = ok ? set.model : 0;
  return {
    serial: node.piSerial ?? '',
    model,
    isPi3: model === 3,
    isPi4: model === 4,
    isPi5: model === 5,
    arm64bit: ok ? set.arm64bit : 0,
    kernel: ok ? set.kernel : '',
    dtb: ok ? set.dtb : '',
    initramfs: ok ? set.initramfs : '',
  };
}

/** `k=v,k=v` in key order: the form of kubelet's --node-labels. */
export function labelList(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
