// A U-Boot board through bootfarm (issue 13): Debian's U-Boot for QEMU's 32-bit
// virt machine DHCPs (option 93 = 21, "U-Boot.armv7"), fetches boot.scr.uimg and
// sources it, which runs `pxe get` for its pxelinux.cfg/01-<mac> and `pxe boot`,
// which fetches the node's kernel and initrd over TFTP. The image here is random
// bytes, so U-Boot stops at bootz ("zimage: Bad magic!"). Debian's qemu_arm64 U-Boot
// gets a gzip-compressed stand-in arm64 Image (Image.gz, as board vendors ship;
// Debian's own arm64 vmlinuz is a plain Image): booti must unpack it and start it.
// A third board is driven from its console: environments changed with U-Boot's own
// setenv (own kernel_comp_* values, no ramdisk_addr_r, no kernel_addr_r) before it
// sources the script, which must keep or derive kernel_comp_* as
// server/boot/uboot/script-file.ts says. The lab kind armhf-uboot boots a real armhf image to
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
import { Background } from '../../server/lab/proc.js';
import { spawn } from 'node:child_process';

const GUEST_TIMEOUT = 180_000;
const MAC = '52:54:00:cc:00:21';
const MAC_ARM64 = '52:54:00:cc:00:22';
const MAC_CONSOLE = '52:54:00:cc:00:23';

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
        { mac: MAC_CONSOLE, hostname: 'uboot-console', arch: 'armhf', kernelArgs: 'console=ttyAMA0' },
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

  it(
    "the script's kernel_comp_* defaults (U-Boot's own console): a board's own values kept; without ramdisk_addr_r based on kernel_addr_r; with neither, none",
    async () => {
      // The same qemu_arm board as startGuest's uboot-arm (server/lab/qemu.ts), with
      // its console on a pipe the test types into: autoboot stopped, the board's
      // environment changed by U-Boot's own setenv, then what bootcmd_dhcp does
      // (dhcp boot.scr.uimg, source it). The armhf kernel here is random bytes, so
      // pxe boot returns ("zimage: Bad magic!") and printenv shows what the script
      // left; the script's hush is the same on qemu_arm64, whose booti reads it.
      const tap = await lab.addTap();
      const board = new Background(
        spawn(
          'ip',
          [
            ...['netns', 'exec', lab.switchNs, 'qemu-system-arm', '-M', 'virt,highmem=off', '-cpu', 'cortex-a15', '-m', '512'],
            ...['-bios', '/usr/lib/u-boot/qemu_arm/u-boot.bin', '-nographic', '-nodefaults', '-serial', 'stdio', '-no-reboot'],
            ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-device,netdev=n0,mac=${MAC_CONSOLE}`],
          ],
          { stdio: ['pipe', 'pipe', 'pipe'] },
        ),
        'uboot-console',
      );
      const stdin = board.child.stdin;
      if (!stdin) throw new Error('qemu-system-arm has no stdin pipe');
      let step = 0;
      /** Types one command line; resolves with the console lines it printed, up to its end marker. */
      const type = async (command: string): Promise<string[]> => {
        const since = board.lines.length;
        const marker = `bootfarm-step-${++step}`;
        // One line at a time: while dhcp or tftp runs, U-Boot's ctrlc() eats typed-ahead characters.
        stdin.write(`${command}; echo ${marker}\n`);
        await board.waitFor((l) => l.trim() === marker, GUEST_TIMEOUT, marker, since);
        return board.lines.slice(since).map((l) => l.trim());
      };
      const SOURCE = 'dhcp ${scriptaddr} boot.scr.uimg; source ${scriptaddr}; printenv kernel_comp_addr_r kernel_comp_size';
      try {
        await board.waitFor((l) => l.startsWith('Net:'), GUEST_TIMEOUT, 'U-Boot to reach its network setup');
        stdin.write('\n'); // autoboot takes any key already waiting as "stop"
        // The board's default environment: ramdisk_addr_r=0x44000000, so 128 MiB above it (setexpr writes hex without 0x).
        let screen = await type(SOURCE);
        expect(screen).toContain('bootfarm: pxe get and pxe boot');
        expect(screen).toContain('zimage: Bad magic!');
        expect(screen).toContain('kernel_comp_addr_r=4c000000');
        expect(screen).toContain('kernel_comp_size=0x4000000');
        // A board with values of its own: the script keeps both.
        await type('setenv kernel_comp_addr_r 0x4a000000; setenv kernel_comp_size 0x2000000');
        screen = await type(SOURCE);
        expect(screen).toContain('bootfarm: pxe get and pxe boot');
        expect(screen).toContain('kernel_comp_addr_r=0x4a000000');
        expect(screen).toContain('kernel_comp_size=0x2000000');
        // Only an address of its own: kept, and the size filled in.
        await type('setenv kernel_comp_size');
        screen = await type(SOURCE);
        expect(screen).toContain('kernel_comp_addr_r=0x4a000000');
        expect(screen).toContain('kernel_comp_size=0x4000000');
        // A board without ramdisk_addr_r: kernel_addr_r (0x40400000) + 128 MiB, inside
        // this board's RAM (0x40000000-0x5fffffff); pxe boot itself then refuses the initrd.
        await type('setenv kernel_comp_addr_r; setenv kernel_comp_size; setenv ramdisk_addr_r');
        screen = await type(SOURCE);
        expect(screen).toContain('missing environment variable: ramdisk_addr_r');
        expect(screen).toContain('kernel_comp_addr_r=48400000');
        expect(screen).toContain('kernel_comp_size=0x4000000');
        // Neither base: no address, and no setexpr usage text on the console.
        await type('setenv kernel_comp_addr_r; setenv kernel_addr_r');
        screen = await type(SOURCE);
        expect(screen).toContain('bootfarm: pxe get and pxe boot');
        expect(screen).toContain('## Error: "kernel_comp_addr_r" not defined');
        expect(screen.join('\n')).not.toContain('Usage:');
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- board console:\n${board.lines.slice(-40).join('\n')}`);
      } finally {
        stdin.end();
        await board.stop('SIGTERM', 2000);
      }
      expect(server.logs().find((l) => l.mac === MAC_CONSOLE && l.type === 'DISCOVER')).toMatchObject({ firmware: 'u-boot' });
    },
    6 * GUEST_TIMEOUT,
  );
});
