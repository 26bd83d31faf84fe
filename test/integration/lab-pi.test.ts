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
    'a Raspberry Pi 4 in HTTP boot fetches its signed boot.img, boots the kernel out of it and joins; a Pi 5 beside it boots its own kernel and initramfs and joins',
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'pi4-http,pi5']);
      const byKind = new Map(json.results.map((r) => [r.kind, r]));
      const pi = byKind.get('pi4-http') as NodeResult;
      expect(pi.ok, `${pi.failure}\n${stderr.slice(-3000)}`).toBe(true);
      // HTTP_HOST/HTTP_PATH from `bootfarm pi eeprom-config`: boot.sig, then boot.img; nothing over TFTP.
      expect(fetchedPaths(pi, 'http.file')).toEqual(['pi/b0a7f016/boot.sig', 'pi/b0a7f016/boot.img']);
      expect(fetchedPaths(pi, 'tftp.file')).toEqual([]);
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(pi.timeline[step], `pi4-http ${step}`).toBeTypeOf('number');

      // The Pi 5 boots the image's second kernel (Debian unstable's, with the bcm2712
      // device tree: docs/design.md, "Raspberry Pi 5 kernels"), the initramfs built for
      // it, and attaches the same root, which carries that kernel's modules.
      const pi5 = byKind.get('pi5') as NodeResult;
      expect(pi5.ok, `${pi5.failure}\n${stderr.slice(-3000)}`).toBe(true);
      const files = fetchedPaths(pi5, 'tftp.file');
      for (const f of ['config.txt', 'cmdline.txt', 'bcm2712-rpi-5-b.dtb', 'kernel_2712.img', 'initrd_2712.img'])
        expect(files, f).toContain(`b0a7f005/${f}`);
      expect(files.filter((f) => /start|fixup|bootcode|kernel8|\/initrd\.img$/.test(f))).toEqual([]);
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(pi5.timeline[step], `pi5 ${step}`).toBeTypeOf('number');
      // uname -r as each node's agent reported it at boot: the Pi 5 ran a kernel of its own.
      const kernelOf = (node: NodeResult) => (JSON.parse(node.observed ?? '{}') as { kernel?: string }).kernel;
      expect(kernelOf(pi)).toBeTypeOf('string');
      expect(kernelOf(pi5)).toBeTypeOf('string');
      expect(kernelOf(pi5)).not.toBe(kernelOf(pi));

      expect(code, stderr.slice(-3000)).toBe(0);
      expect(json.cluster.map((n) => n.name).sort()).toEqual(['lab-pi4-http', 'lab-pi5']);
      expect(json.cluster.find((n) => n.name === 'lab-pi4-http')?.tokenId).toBe(
        pi.events.find((e) => e.type === 'token.minted')?.detail?.tokenId,
      );
    },
    30 * 60_000,
  );
});
