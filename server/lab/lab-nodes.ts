// The lab's kinds of node and what each is: hostname, MAC, arch, firmware,
// and a Pi's serial; `--nodes` parsed into them (server/lab/lab.ts boots them).
import { SetupError } from '../errors.js';
import type { GuestFirmware } from './qemu.js';

const LAB_NODE_KINDS = [
  'amd64-bios',
  'amd64-uefi',
  'arm64-uefi',
  'amd64-uefi-http',
  'arm64-uefi-http',
  'amd64-uefi-sb',
  'arm64-uefi-sb',
  'pi3',
  'pi4',
  'pi5',
  'pi4-http',
  'armhf-uboot',
  'arm64-uboot',
] as const;
export type LabNodeKind = (typeof LAB_NODE_KINDS)[number];

export interface NodeSpec {
  kind: LabNodeKind;
  hostname: string;
  mac: string;
  arch: 'amd64' | 'arm64' | 'armhf';
  /** 'pi4': the scripted Pi bootloader (server/lab/pi-bootloader.ts) of model `piModel`, for every Pi kind. */
  firmware: GuestFirmware | 'pi4';
  piSerial?: string | undefined;
  piModel?: 3 | 4 | 5 | undefined;
  /** The node's config sets secureBoot (Debian's signed chain), for a firmware with Secure Boot on. */
  secureBoot?: boolean | undefined;
  /** http: the scripted EEPROM boots over HTTP (boot.sig + boot.img), nothing over TFTP. */
  piBoot?: 'http' | undefined;
}

export const SPECS: Record<LabNodeKind, Omit<NodeSpec, 'kind'>> = {
  'amd64-bios': { hostname: 'lab-amd64-bios', mac: '52:54:00:b0:00:01', arch: 'amd64', firmware: 'seabios' },
  'amd64-uefi': { hostname: 'lab-amd64-uefi', mac: '52:54:00:b0:00:02', arch: 'amd64', firmware: 'ovmf' },
  'arm64-uefi': { hostname: 'lab-arm64-uefi', mac: '52:54:00:b0:00:03', arch: 'arm64', firmware: 'aavmf' },
  // UEFI HTTP boot with the firmware's PXE switched off (server/lab/qemu.ts).
  'amd64-uefi-http': { hostname: 'lab-amd64-uefi-http', mac: '52:54:00:b0:00:12', arch: 'amd64', firmware: 'ovmf-http' },
  'arm64-uefi-http': { hostname: 'lab-arm64-uefi-http', mac: '52:54:00:b0:00:13', arch: 'arm64', firmware: 'aavmf-http' },
  // Secure Boot on with Microsoft's keys enrolled (server/lab/qemu.ts); shim, signed GRUB, signed kernel.
  'amd64-uefi-sb': { hostname: 'lab-amd64-uefi-sb', mac: '52:54:00:b0:00:17', arch: 'amd64', firmware: 'ovmf-sb', secureBoot: true },
  'arm64-uefi-sb': { hostname: 'lab-arm64-uefi-sb', mac: '52:54:00:b0:00:18', arch: 'arm64', firmware: 'aavmf-sb', secureBoot: true },
  // An ARMv7 board running U-Boot (Debian's qemu_arm): DHCP, boot.scr.uimg, its pxelinux.cfg (server/boot/uboot/).
  'armhf-uboot': { hostname: 'lab-armhf-uboot', mac: '52:54:00:b0:00:21', arch: 'armhf', firmware: 'uboot-arm' },
  // An ARMv8 board running U-Boot (Debian's qemu_arm64), the same path with the arm64
  // image's kernel (a plain Image, which booti starts as it is: server/boot/uboot/script-file.ts).
  'arm64-uboot': { hostname: 'lab-arm64-uboot', mac: '52:54:00:b0:00:22', arch: 'arm64', firmware: 'uboot-arm64' },
  // The Pi 3B+ ROM and bootcode.bin, then its serial directory (--model 3).
  pi3: { hostname: 'lab-pi3', mac: 'b8:27:eb:b0:00:14', arch: 'arm64', firmware: 'pi4', piSerial: 'b0a7f003', piModel: 3 },
  pi4: { hostname: 'lab-pi4', mac: 'dc:a6:32:b0:00:04', arch: 'arm64', firmware: 'pi4', piSerial: 'b0a7f004', piModel: 4 },
  // Boots its own kernel_2712.img, initrd_2712.img and bcm2712-rpi-5-b.dtb, which the image must have (docs/design.md, "Raspberry Pi 5 kernels").
  pi5: { hostname: 'lab-pi5', mac: '2c:cf:67:b0:00:15', arch: 'arm64', firmware: 'pi4', piSerial: 'b0a7f005', piModel: 5 },
  // A Pi 4 with BOOT_ORDER 0xf17: DHCP for its address, then the signed boot.img over HTTP (server/pi/http-boot.ts).
  'pi4-http': {
    hostname: 'lab-pi4-http',
    mac: 'dc:a6:32:b0:00:16',
    arch: 'arm64',
    firmware: 'pi4',
    piSerial: 'b0a7f016',
    piModel: 4,
    piBoot: 'http',
  },
};

/** The scripted bootloader's `--model` for a Pi node, undefined for a QEMU one. */
export function scriptedPiModel(spec: Pick<NodeSpec, 'firmware' | 'piModel'>): 3 | 4 | 5 | undefined {
  return spec.firmware === 'pi4' ? (spec.piModel ?? 4) : undefined;
}

/**
 * The arm64 UEFI kinds boot GRUB (server/boot/bootloaders.ts installGrubArm64), over
 * TFTP or HTTP. arm64-uefi-sb boots Debian's signed GRUB instead, but gets the tree
 * too, as from `bootfarm bootloaders`: the signed GRUB then reads its
 * grub/arm64-efi/grub.cfg first, the path a real server's takes.
 */
export function needsGrubArm64(kinds: readonly LabNodeKind[]): boolean {
  return kinds.some((k) => SPECS[k].firmware.startsWith('aavmf'));
}

/** Which of Debian's signed chains the secureBoot kinds need: any (amd64's, installed always) and arm64's (fetched). */
export function secureBootChains(kinds: readonly LabNodeKind[]): { any: boolean; arm64: boolean } {
  const sb = kinds.filter((k) => SPECS[k].secureBoot === true);
  return { any: sb.length > 0, arm64: sb.some((k) => SPECS[k].arch === 'arm64') };
}

/** `amd64-bios,arm64-uefi` or with counts, `amd64-bios*3,pi4`. */
export function parseLabNodes(text: string): LabNodeKind[] {
  const out: LabNodeKind[] = [];
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [kind, countText] = item.split('*') as [string, string | undefined];
    if (!(LAB_NODE_KINDS as readonly string[]).includes(kind))
      throw new SetupError(
        `--nodes: unknown node kind ${JSON.stringify(kind)}; expected some of ${LAB_NODE_KINDS.join(', ')} (kind*N for several)`,
      );
    const count = countText === undefined ? 1 : Number(countText);
    if (!Number.isInteger(count) || count < 1 || count > 16) throw new SetupError(`--nodes: ${item}: expected a count 1-16 after *`);
    for (let i = 0; i < count; i++) out.push(kind as LabNodeKind);
  }
  if (out.length === 0) throw new SetupError(`--nodes: expected some of ${LAB_NODE_KINDS.join(', ')}`);
  return out;
}

/** The n-th node of a kind: the first keeps the base name and MAC, the others get -2, -3... */
export function specFor(kind: LabNodeKind, index: number): NodeSpec {
  const base = SPECS[kind];
  if (index === 0) return { kind, ...base };
  const mac = base.mac.split(':');
  mac[4] = (0xb0 + index).toString(16);
  return {
    kind,
    ...base,
    hostname: `${base.hostname}-${index + 1}`,
    mac: mac.join(':'),
    piSerial: base.piSerial ? (parseInt(base.piSerial, 16) + index).toString(16).padStart(8, '0') : undefined,
  };
}
