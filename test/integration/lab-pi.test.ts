// Raspberry Pi nodes in the emulation lab, each model past its firmware: the
// scripted bootloader of the model (server/lab/pi/) fetches what the real one
// would from bootfarm, then the kernel, initramfs and cmdline.txt it fetched boot
// in QEMU virt (server/lab/pi-kernel-guest.ts) with the Pi's MAC, attach the
// node's root and join. The Pi 4 runs in test/integration/lab.test.ts's first case.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLabImage, fetchedPaths, lab } from '../lib/lab-run.js';
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

  it(
    'a Raspberry Pi 4 in HTTP boot fetches its signed boot.img, boots the kernel out of it and joins; a Pi 5 beside it fails naming what the image lacks',
    async () => {
      // The lab image is built from Debian bookworm's kernel: no kernel_2712.img, no bcm2712 DTB (docs/design.md).
      const { json, stderr } = await lab(['--server', 'docker', '--nodes', 'pi4-http,pi5']);
      const byKind = new Map(json.results.map((r) => [r.kind, r]));
      const pi = byKind.get('pi4-http') as NodeResult;
      expect(pi.ok, `${pi.failure}\n${stderr.slice(-3000)}`).toBe(true);
      // HTTP_HOST/HTTP_PATH from `bootfarm pi eeprom-config`: boot.sig, then boot.img; nothing over TFTP.
      expect(fetchedPaths(pi, 'http.file')).toEqual(['pi/b0a7f016/boot.sig', 'pi/b0a7f016/boot.img']);
      expect(fetchedPaths(pi, 'tftp.file')).toEqual([]);
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(pi.timeline[step], `pi4-http ${step}`).toBeTypeOf('number');
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-pi4-http']);
      expect(json.cluster[0]?.tokenId).toBe(pi.events.find((e) => e.type === 'token.minted')?.detail?.tokenId);

      const pi5 = byKind.get('pi5') as NodeResult;
      expect(pi5.ok).toBe(false);
      expect(pi5.failure).toContain('kernel_2712.img');
      expect(pi5.failure).toMatch(/has no rpi\/bcm2712-rpi-5-b\.dtb, rpi\/kernel_2712\.img/);
      expect(pi5.timeline['root attached']).toBeUndefined();
    },
    30 * 60_000,
  );
});
