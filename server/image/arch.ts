// The architectures the image builder makes, and what each means to Docker,
// Debian and qemu-user.
import { SetupError } from '../errors.js';

export const IMAGE_ARCHES = ['amd64', 'arm64', 'armhf'] as const;
export type ImageArch = (typeof IMAGE_ARCHES)[number];

export interface ArchInfo {
  /** Docker/OCI platform. */
  platform: string;
  /** OCI platform fields for the image index. */
  oci: { architecture: string; os: 'linux'; variant?: string };
  /** Debian's kernel meta-package: boots QEMU (q35/virt) and, for arm, the Raspberry Pi. */
  kernelPackage: string;
  /** Name of the qemu-user binfmt entry that runs this arch on another host. */
  qemu: string;
  /** Raspberry Pi firmware set in the export. */
  pi: boolean;
}

export const ARCH_INFO: Record<ImageArch, ArchInfo> = {
  amd64: {
    platform: 'linux/amd64',
    oci: { architecture: 'amd64', os: 'linux' },
    kernelPackage: 'linux-image-amd64',
    qemu: 'x86_64',
    pi: false,
  },
  arm64: {
    platform: 'linux/arm64',
    oci: { architecture: 'arm64', os: 'linux' },
    kernelPackage: 'linux-image-arm64',
    qemu: 'aarch64',
    pi: true,
  },
  // armmp, not armmp-lpae: the -lpae flavour runs only on cores with LPAE (Cortex-A7/A15/A53...),
  // so it cannot boot the many Cortex-A8/A9 U-Boot boards (BeagleBone, i.MX6, Allwinner A10);
  // armmp boots every ARMv7 core: Pi 2/3 (and a Pi 4 in 32-bit mode, low 3 GiB of RAM),
  // those SBCs, and QEMU virt with highmem=off (server/lab/qemu.ts).
  armhf: {
    platform: 'linux/arm/v7',
    oci: { architecture: 'arm', os: 'linux', variant: 'v7' },
    kernelPackage: 'linux-image-armmp',
    qemu: 'arm',
    pi: true,
  },
};

/** "amd64,arm64" -> ['amd64', 'arm64']; anything else names the value and the allowed ones. */
export function parseArchList(value: string): ImageArch[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0)
    throw new SetupError(`--arch: expected one or more of ${IMAGE_ARCHES.join(', ')} (comma separated), got "${value}"`);
  const out: ImageArch[] = [];
  for (const part of parts) {
    if (!(IMAGE_ARCHES as readonly string[]).includes(part)) {
      throw new SetupError(`--arch: unknown architecture "${part}"; allowed: ${IMAGE_ARCHES.join(', ')}`);
    }
    if (!out.includes(part as ImageArch)) out.push(part as ImageArch);
  }
  return out;
}

/** The architecture of the machine running the build (its stages run natively). */
export function hostArch(): ImageArch {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'arm64':
      return 'arm64';
    case 'arm':
      return 'armhf';
    default:
      throw new SetupError(`image builds need an amd64, arm64 or armhf host, this one is ${process.arch}`);
  }
}
