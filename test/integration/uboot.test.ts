// A U-Boot board through bootfarm (issue 13): Debian's U-Boot for QEMU's 32-bit
// virt machine DHCPs (option 93 = 21, "U-Boot.armv7"), fetches boot.scr.uimg and
// sources it, which runs `pxe get` for its pxelinux.cfg/01-<mac> and `pxe boot`,
// which fetches the node's kernel and initrd over TFTP. The image here is random
// bytes, so U-Boot stops at bootz ("zimage: Bad magic!"). Debian's qemu_arm64 U-Boot
// gets a gzip-compressed stand-in arm64 Image (Image.gz, as board vendors ship;
// Debian's own arm64 vmlinuz is a plain Image): booti must unpack it and start it. The lab kind armhf-uboot boots a real armhf image to
// joined, so far only by hand (README, "U-Boot boards": the armhf image build is not
// in CI yet); the lab kind arm64-uboot boots the arm64 image (server/lab/lab-nodes.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { startGuest } from '../../server/lab/qemu.js';

const GUEST_TIMEOUT = 180_000;
const MAC = '52:54:00:cc:00:21';
const MAC_ARM64 = '52:54:00:cc:00:22';

/**
 * An arm64 Linux Image as booti reads it (the kernel's Documentation/arch/arm64/booting.rst):
 * the 64-byte header with its magic "ARM\x64" at 56, text_offset 0, image_size and the
 * flags "little endian, 4K pages, anywhere in RAM"; then 16 MiB of zeros, so
 * the gzip of it is small and booti has something to unpack.
 */
function standInArm64Image(): Buffer {
  const image = Buffer.alloc(16 * 1024 * 1024);
  image.writeBigUInt64LE(BigInt(image.length), 16); // image_size
  image.writeBigUInt64LE(0xan, 24); // flags
  image.writeUInt32LE(0x644d5241, 56); // magic
  return gzipSync(image);
}

describe('a U-Boot board boots through bootfarm', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-uboot-'));
    mkdirSync(path.join(work, 'images/base/v1/armhf'), { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img']) writeFileSync(path.join(work, 'images/base/v1/armhf', f), randomBytes(256 * 1024));
    mkdirSync(path.join(work, 'images/base/v1/arm64'), { recursive: true });
    writeFileSync(path.join(work, 'images/base/v1/arm64/vmlinuz'), standInArm64Image());
    writeFileSync(path.join(work, 'images/base/v1/arm64/initrd.img'), randomBytes(256 * 1024));
    symlinkSync('v1', path.join(work, 'images/base/current'));
    mkdirSync(path.join(work, 'tftpboot'));
    lab = await NetLab.create('ub');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: path.join(work, 'tftpboot') },
      http: { port: 8080 },
      images: { dir: path.join(work, 'images'), default: 'base' },
      nodes: [
        { mac: MAC, hostname: 'uboot-1', arch: 'armhf', kernelArgs: 'console=ttyAMA0' },
        { mac: MAC_ARM64, hostname: 'uboot-arm64', arch: 'arm64', kernelArgs: 'console=ttyAMA0' },
      ],
    });
  });
  afterAll(async () => {
    await lab?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it(
    "U-Boot (qemu_arm): boot.scr.uimg, then its pxelinux.cfg, kernel and initrd over TFTP, and it runs the node's label",
    async () => {
      const guest = await startGuest(lab, 'uboot-arm', MAC, { label: 'uboot-arm' });
      try {
        const withConsole = (err: Error) => {
          throw new Error(`${err.message}\n--- guest console:\n${guest.lines.slice(-30).join('\n')}`);
        };
        await guest.waitFor((l) => l.includes('zimage: Bad magic!'), GUEST_TIMEOUT, 'U-Boot to try the kernel').catch(withConsole);
      } finally {
        await guest.stop('SIGTERM', 2000);
      }
      await server.waitForLog((l) => l.msg === 'tftp file sent' && l.path === 'images/base/v1/armhf/vmlinuz', 30_000, 'the kernel sent');
      const logs = server.logs();
      expect(logs.find((l) => l.mac === MAC && l.type === 'DISCOVER')).toMatchObject({ firmware: 'u-boot', bootFile: 'boot.scr.uimg' });
      const sent = logs.filter((l) => l.msg === 'tftp file sent').map((l) => String(l.path));
      // pxe boot reads the label's initrd, then its kernel (U-Boot boot/pxe_utils.c); after
      // the failed bootz distro boot goes on and may fetch the script again, so only the first four count.
      expect(sent.slice(0, 4)).toEqual([
        'boot.scr.uimg',
        'pxelinux.cfg/01-52-54-00-cc-00-21',
        'images/base/v1/armhf/initrd.img',
        'images/base/v1/armhf/vmlinuz',
      ]);
      // The script ran (its echo), and U-Boot read the node's own label with its command line.
      expect(guest.lines.join('\n')).toContain('bootfarm: pxe get and pxe boot');
      expect(guest.lines.some((l) => /append: .*console=ttyAMA0/.test(l))).toBe(true);
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    "U-Boot (qemu_arm64): the node's gzip-compressed arm64 kernel is unpacked by booti and started",
    async () => {
      const guest = await startGuest(lab, 'uboot-arm64', MAC_ARM64, { label: 'uboot-arm64' });
      try {
        const withConsole = (err: Error) => {
          throw new Error(`${err.message}\n--- guest console:\n${guest.lines.slice(-30).join('\n')}`);
        };
        // Either line ends the wait: the second is booti refusing the compressed kernel.
        await guest
          .waitFor((l) => l.includes('Starting kernel ...') || l.includes('is not provided!'), GUEST_TIMEOUT, 'U-Boot to start the kernel')
          .catch(withConsole);
      } finally {
        await guest.stop('SIGTERM', 2000);
      }
      await server.waitForLog(
        (l) => l.msg === 'tftp file sent' && l.path === 'images/base/v1/arm64/vmlinuz',
        30_000,
        'the arm64 kernel sent',
      );
      const logs = server.logs();
      expect(logs.find((l) => l.mac === MAC_ARM64 && l.type === 'DISCOVER')).toMatchObject({
        firmware: 'u-boot',
        bootFile: 'boot.scr.uimg',
      });
      const screen = guest.lines.join('\n');
      // booti found the gzip magic and inflated it where the script said (kernel_comp_addr_r):
      // without that it stops at "kernel_comp_addr_r or kernel_comp_size is not provided!".
      expect(screen).toContain('Uncompressing Kernel Image');
      expect(screen).toContain('Starting kernel ...');
      expect(screen).not.toContain('kernel_comp_addr_r or kernel_comp_size is not provided');
      expect(guest.lines.some((l) => /append: .*console=ttyAMA0/.test(l))).toBe(true);
      expect(
        logs
          .filter((l) => l.msg === 'tftp file sent')
          .map((l) => String(l.path))
          .filter((p) => p.includes('arm64') || p.includes('cc-00-22')),
      ).toEqual(['pxelinux.cfg/01-52-54-00-cc-00-22', 'images/base/v1/arm64/initrd.img', 'images/base/v1/arm64/vmlinuz']);
    },
    GUEST_TIMEOUT + 30_000,
  );
});
