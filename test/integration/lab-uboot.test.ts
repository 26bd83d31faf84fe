// A U-Boot board in the emulation lab (issue 13): Debian's qemu_arm64 U-Boot on
// QEMU's arm64 virt machine DHCPs as an arm64 U-Boot (93 = 22), sources bootfarm's
// boot.scr.uimg, reads the node's pxelinux.cfg/01-<mac>, loads the arm64 image's
// initrd and kernel over TFTP, starts the kernel (a plain arm64 Image) with booti,
// attaches the node's NBD root and joins. The
// armhf-uboot kind walks the same path with an armhf image, which CI does not build.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLabImage, fetchedPaths, lab } from '../lib/lab-run.js';
import type { NodeResult } from '../../server/lab/lab.js';

describe('emulation lab: U-Boot boards', () => {
  beforeAll(buildLabImage, 60 * 60_000);

  it(
    "an arm64 U-Boot board boots the node's pxelinux.cfg, kernel and initrd from bootfarm, attaches its root and joins",
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'arm64-uboot']);
      const [node] = json.results as [NodeResult];
      expect(node.ok, `${node.failure}\n${stderr.slice(-3000)}`).toBe(true);
      const files = fetchedPaths(node, 'tftp.file');
      // The script, then the node's own file (U-Boot asks for 01-<mac> first), then
      // pxe boot's initrd and kernel (boot/pxe_utils.c loads the initrd first).
      expect(files.slice(0, 2)).toEqual(['boot.scr.uimg', 'pxelinux.cfg/01-52-54-00-b0-00-22']);
      expect(files.slice(2, 4).map((f) => f.replace(/^.*\//, ''))).toEqual(['initrd.img', 'vmlinuz']);
      expect(
        files.slice(2, 4).every((f) => f.includes('/arm64/')),
        files.join(', '),
      ).toBe(true);
      for (const step of ['dhcp', 'root attached', 'booted', 'joined'] as const)
        expect(node.timeline[step], `arm64-uboot ${step}`).toBeTypeOf('number');
      expect(code, stderr.slice(-3000)).toBe(0);
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-arm64-uboot']);
    },
    30 * 60_000,
  );
});
