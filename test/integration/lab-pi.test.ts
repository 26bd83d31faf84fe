// Raspberry Pi nodes in the emulation lab, each model past its firmware: the
// scripted bootloader of the model (server/lab/pi/) fetches what the real one
// would from bootfarm, then the kernel, initramfs and cmdline.txt it fetched boot
// in QEMU virt (server/lab/pi-kernel-guest.ts) with the Pi's MAC, attach the
// node's root and join. The Pi 4 runs in test/integration/lab.test.ts's first case.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLabImage, lab } from '../lib/lab-run.js';
import type { NodeResult } from '../../server/lab/lab.js';

describe('emulation lab: Raspberry Pi models', () => {
  beforeAll(buildLabImage, 60 * 60_000);

  it(
    'a Raspberry Pi 3B+ boots through its ROM, bootcode.bin and its serial directory, then its own kernel, and joins',
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'pi3']);
      expect(code, stderr.slice(-3000)).toBe(0);
      const [pi] = json.results as [NodeResult];
      expect(pi.ok, pi.failure).toBe(true);
      // The ROM reads bootcode.bin from the TFTP root; bootcode.bin reads the rest from
      // the serial's directory: the Pi 3's firmware, its device tree under the name that
      // firmware loads, and the arm64 kernel of the node's image.
      const files = pi.events.filter((e) => e.type === 'tftp.file').map((e) => String(e.detail?.path));
      expect(files[0]).toBe('bootcode.bin');
      for (const f of ['config.txt', 'start.elf', 'fixup.dat', 'cmdline.txt', 'bcm2710-rpi-3-b-plus.dtb', 'kernel8.img', 'initrd.img'])
        expect(files, f).toContain(`b0a7f003/${f}`);
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(pi.timeline[step], `pi3 ${step}`).toBeTypeOf('number');
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-pi3']);
    },
    30 * 60_000,
  );
});
