// What each Raspberry Pi model's firmware loads over the network, per image arch:
// the one table that the node's config.txt (templates/rpi-config.txt.hbs), `config
// check` (server/config/pi-image-check.ts) and the image builder's rpi/ folder
// (imagebuild/squash/make-export.sh) agree on. Facts and their sources:
// docs/protocol-notes.md §2.6. Pure.
import type { NodeArch } from '../../config/types.js';

export type PiModel = 3 | 4 | 5;

/** What one model needs from an image's rpi/ folder to boot one arch. */
export interface PiBootSet {
  model: PiModel;
  arch: 'arm64' | 'armhf';
  /** config.txt arm_64bit: 1 boots the kernel in AArch64 state. */
  arm64bit: 0 | 1;
  /** config.txt kernel= (set explicitly, so no firmware default applies). */
  kernel: string;
  /** The device tree the firmware loads by default for this board (no device_tree= in config.txt). */
  dtb: string;
  /** config.txt initramfs: the initrd built for `kernel` (the image builder writes both to rpi/). */
  initramfs: string;
  /** The firmware files the bootloader fetches before the kernel; the Pi 5's firmware is in its EEPROM. */
  firmware: string[];
}

interface ModelFacts {
  name: string;
  dtb: string;
  firmware: string[];
  kernel: Partial<Record<'arm64' | 'armhf', string>>;
  initramfs: string;
}

// Pi 3B+: the ROM fetches bootcode.bin, which loads start.elf/fixup.dat; the 32-bit
// kernel is kernel7.img (ARMv7), the 64-bit one kernel8.img. Pi 4: start4.elf and
// fixup4.dat, kernel7l.img (ARMv7 with LPAE) or kernel8.img. Pi 5: no start*.elf
// (bootflow-eeprom.adoc), kernel_2712.img, and only 64-bit kernels. The Pi 5's kernel
// is not the image's (Debian bookworm's has no bcm2712 device tree; the image builder
// adds Debian unstable's, docs/design.md "Raspberry Pi 5 kernels"), so its initramfs,
// built for that kernel's modules, has its own name.
const MODELS: Readonly<Record<PiModel, ModelFacts>> = {
  3: {
    name: 'Pi 3B+',
    dtb: 'bcm2710-rpi-3-b-plus.dtb',
    firmware: ['bootcode.bin', 'start.elf', 'fixup.dat'],
    kernel: { arm64: 'kernel8.img', armhf: 'kernel7.img' },
    initramfs: 'initrd.img',
  },
  4: {
    name: 'Pi 4',
    dtb: 'bcm2711-rpi-4-b.dtb',
    firmware: ['start4.elf', 'fixup4.dat'],
    kernel: { arm64: 'kernel8.img', armhf: 'kernel7l.img' },
    initramfs: 'initrd.img',
  },
  5: { name: 'Pi 5', dtb: 'bcm2712-rpi-5-b.dtb', firmware: [], kernel: { arm64: 'kernel_2712.img' }, initramfs: 'initrd_2712.img' },
};

export function piModelName(model: PiModel): string {
  return MODELS[model].name;
}

/** The files a model boots an arch from, or why it cannot (a Pi 5 with an armhf image; an amd64 image). */
export function piBootSet(model: PiModel, arch: NodeArch): PiBootSet | { refused: string } {
  const facts = MODELS[model];
  if (arch === 'amd64') return { refused: `a ${facts.name} cannot boot an amd64 image; expected arch arm64 or armhf` };
  const kernel = facts.kernel[arch];
  if (kernel === undefined)
    return { refused: `a ${facts.name} boots only 64-bit kernels (${facts.kernel.arm64}); expected arch arm64, got ${arch}` };
  return {
    model,
    arch,
    arm64bit: arch === 'arm64' ? 1 : 0,
    kernel,
    dtb: facts.dtb,
    initramfs: facts.initramfs,
    firmware: [...facts.firmware],
  };
}

/** Every file of an image's rpi/ folder the model needs for the arch, firmware first, as the bootloader asks for them. */
export function piRequiredFiles(set: PiBootSet): string[] {
  return [...set.firmware, set.dtb, set.kernel, set.initramfs];
}

/**
 * A Pi's model when its inventory entry does not say: only b8:27:eb, the OUI of
 * every Pi with a network-boot ROM before the Pi 4 (3B, 3B+; boot-net.adoc), settles
 * it. The later OUIs are shared by Pi 4 and Pi 5 boards (LTSP's list), so for them the
 * model comes from option 97's FourCC at discovery (server/dhcp/codec/identity.ts) or
 * from the node's piModel.
 */
export function inferPiModelFromMac(mac: string): PiModel | undefined {
  return mac.toLowerCase().startsWith('b8:27:eb') ? 3 : undefined;
}

/** The node's model: its piModel, else what its MAC settles; undefined when neither does. */
export function piModelOf(node: { mac: string; piModel?: PiModel | undefined }): PiModel | undefined {
  return node.piModel ?? inferPiModelFromMac(node.mac);
}

/** A Pi node's boot set, or why it has none: its model is unknown, or cannot boot the node's arch. */
export function piNodeBootSet(node: {
  hostname: string;
  mac: string;
  arch: NodeArch;
  piModel?: PiModel | undefined;
}): PiBootSet | { refused: string } {
  const model = piModelOf(node);
  if (model === undefined)
    return {
      refused: `${node.hostname}: piModel is not set and its MAC ${node.mac} does not settle it (only b8:27:eb is one model, the Pi 3B+); expected piModel 3, 4 or 5`,
    };
  const set = piBootSet(model, node.arch);
  return 'refused' in set ? { refused: `${node.hostname}: ${set.refused}` } : set;
}
