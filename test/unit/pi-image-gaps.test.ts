// The lab's check of a Pi node against its image's arch folder (server/lab/pi-image-gaps.ts),
// over the same per-model table as `config check`: a Pi 5 needs the image builder's
// second kernel (kernel_2712.img), its device tree and the initramfs built for that
// kernel (initrd_2712.img); the Pi 3B+/4 files alone are the image of Debian
// bookworm's kernel, which cannot boot a Pi 5.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { piImageGap } from '../../server/lab/pi-image-gaps.js';

const base = mkdtempSync(path.join(tmpdir(), 'bootfarm-pi-gaps-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function archDir(name: string, files: string[]): string {
  const dir = path.join(base, name);
  mkdirSync(path.join(dir, 'rpi'), { recursive: true });
  for (const f of files) writeFileSync(path.join(dir, 'rpi', f), f);
  return dir;
}

const PI4_SET = ['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb', 'kernel8.img', 'initrd.img'];
const pi5 = { hostname: 'lab-pi5', mac: '2c:cf:67:00:00:05', arch: 'arm64' as const, piModel: 5 as const };

describe('piImageGap', () => {
  it("an image with the Pi 5's kernel, device tree and initramfs boots a Pi 5", () => {
    const dir = archDir('with-pi5', [...PI4_SET, 'bcm2712-rpi-5-b.dtb', 'kernel_2712.img', 'initrd_2712.img']);
    expect(piImageGap(dir, pi5)).toBeUndefined();
    expect(piImageGap(dir, { ...pi5, hostname: 'lab-pi4', piModel: 4 })).toBeUndefined();
  });

  it("an image of bookworm's kernel alone is refused for a Pi 5, naming every file it lacks", () => {
    const dir = archDir('bookworm', PI4_SET);
    expect(piImageGap(dir, pi5)).toBe(
      `lab-pi5 is a Pi 5, and the image's arm64 folder ${dir} has no rpi/bcm2712-rpi-5-b.dtb, rpi/kernel_2712.img, rpi/initrd_2712.img: it cannot boot this model (docs/raspberry-pi.md, "What each model boots from")`,
    );
    expect(piImageGap(dir, { ...pi5, hostname: 'lab-pi4', piModel: 4 })).toBeUndefined();
  });

  it("a Pi 5 kernel without its own initramfs is refused: the image's initrd.img has the other kernel's modules", () => {
    const dir = archDir('no-pi5-initrd', [...PI4_SET, 'bcm2712-rpi-5-b.dtb', 'kernel_2712.img']);
    expect(piImageGap(dir, pi5)).toMatch(/has no rpi\/initrd_2712\.img: it cannot boot this model/);
  });
});
