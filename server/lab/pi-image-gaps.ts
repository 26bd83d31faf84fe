// What a lab Pi node's model boots from that the lab's image lacks, from the one
// table bootfarm's own `config check` uses (server/boot/files/pi-models.ts). The
// lab boots such a node anyway, so its failure is the real one (the scripted
// bootloader's TFTP "file not found"), and says this beside it: a Pi 5 with an
// image built before the image builder added the Pi 5's own kernel (no
// kernel_2712.img, initrd_2712.img or bcm2712 device tree: docs/design.md,
// "Raspberry Pi 5 kernels").
import { existsSync } from 'node:fs';
import path from 'node:path';
import { piModelName, piNodeBootSet, piRequiredFiles, type PiModel } from '../boot/files/pi-models.js';

/** Why the image's arch folder (…/current/<arch>) cannot boot the node, or undefined when it has every file. */
export function piImageGap(
  archDir: string,
  node: { hostname: string; mac: string; arch: 'amd64' | 'arm64' | 'armhf'; piModel: PiModel },
): string | undefined {
  const set = piNodeBootSet(node);
  if ('refused' in set) return set.refused;
  const missing = piRequiredFiles(set).filter((f) => !existsSync(path.join(archDir, 'rpi', f)));
  if (missing.length === 0) return undefined;
  return `${node.hostname} is a ${piModelName(set.model)}, and the image's ${node.arch} folder ${archDir} has no ${missing.map((f) => `rpi/${f}`).join(', ')}: it cannot boot this model (docs/raspberry-pi.md, "What each model boots from")`;
}
