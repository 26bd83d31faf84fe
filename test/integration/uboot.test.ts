// A U-Boot board through bootfarm (issue 13): Debian's U-Boot for QEMU's 32-bit
// virt machine DHCPs (option 93 = 21, "U-Boot.armv7"), fetches boot.scr.uimg and
// sources it, which runs `pxe get` for its pxelinux.cfg/01-<mac> and `pxe boot`,
// which fetches the node's kernel and initrd over TFTP. The image here is random
// bytes, so U-Boot stops at bootz ("zimage: Bad magic!"). The lab kind armhf-uboot
// boots a real armhf image to joined, so far only by hand (README, "U-Boot boards":
// the armhf image build is not in CI yet).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { startGuest } from '../../server/lab/qemu.js';

const GUEST_TIMEOUT = 180_000;
const MAC = '52:54:00:cc:00:21';

describe('a U-Boot board boots through bootfarm', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-uboot-'));
    mkdirSync(path.join(work, 'images/base/v1/armhf'), { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img']) writeFileSync(path.join(work, 'images/base/v1/armhf', f), randomBytes(256 * 1024));
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
      nodes: [{ mac: MAC, hostname: 'uboot-1', arch: 'armhf', kernelArgs: 'console=ttyAMA0' }],
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
});
