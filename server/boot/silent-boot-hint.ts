// A node that fetched its bootloader and then went silent: why, as far as its
// timeline can tell. Firmware that refuses a bootloader (Secure Boot "Access
// Denied", a binary for another CPU) says so only on the machine's console and
// never asks again, so the server's one clue is what did not happen next.
// Pure: the node's timeline (server/store/store.ts NodeEvent) and the first bytes
// of the file served in, a hint or nothing out. The timer and the store are at
// the edge (server/boot/silent-boot-watch.ts).
import type { NodeEvent } from '../store/store.js';
import { SECURE_BOOT_FILES } from './secure-boot-files.js';
import { SITE_SIGNED_IPXE } from './signing-files.js';

export type Cpu = 'x86_64' | 'i386' | 'arm64' | 'arm32';

export interface Bootloader {
  family: 'ipxe' | 'grub' | 'shim';
  /** Carries a signature Secure Boot firmware may trust (shim, Debian's signed GRUB, site-signed iPXE). */
  signed: boolean;
}

const SIGNED_PATHS = new Set<string>([...Object.values(SECURE_BOOT_FILES).flatMap((f) => [f.shim, f.grub]), SITE_SIGNED_IPXE]);

/** What a served path is, if it is a first- or second-stage bootloader bootfarm hands out. */
export function classifyBootloader(file: string): Bootloader | undefined {
  const signed = SIGNED_PATHS.has(file);
  const base = file.split('/').pop() ?? '';
  if (/^shim[a-z0-9]*\.efi$/.test(base)) return { family: 'shim', signed };
  if (file.endsWith('/core.efi') || /^grub[a-z0-9]*\.efi$/.test(base)) return { family: 'grub', signed };
  if (/\.(kpxe|pxe)$/.test(base) || /ipxe.*\.efi$|^snponly\.efi$/.test(base)) return { family: 'ipxe', signed };
  return undefined;
}

/** The CPU a PE/COFF image is built for (its COFF header's Machine), or undefined for anything else (a BIOS .kpxe). */
export function peCpu(head: Buffer): Cpu | undefined {
  if (head.length < 0x40 || head.readUInt16LE(0) !== 0x5a4d) return undefined;
  const pe = head.readUInt32LE(0x3c);
  if (pe + 6 > head.length || head.readUInt32LE(pe) !== 0x00004550) return undefined;
  const machine = head.readUInt16LE(pe + 4);
  const cpus: Record<number, Cpu> = { 0x8664: 'x86_64', 0x14c: 'i386', 0xaa64: 'arm64', 0x1c2: 'arm32', 0x1c4: 'arm32' };
  return cpus[machine];
}

/** The CPU a client's option 93 names (RFC 4578 and the IANA registry): the UEFI ones, the others undefined. */
export function option93Cpu(code: number | undefined): Cpu | undefined {
  switch (code) {
    case 6:
    case 15:
      return 'i386';
    case 7:
    case 9:
    case 16:
      return 'x86_64';
    case 10:
    case 18:
      return 'arm32';
    case 11:
    case 19:
      return 'arm64';
    default:
      return undefined;
  }
}

type HintKind = 'wrong-architecture' | 'secure-boot-refused' | 'bootloader-never-started' | 'no-config-request';

export interface SilentBootHint {
  kind: HintKind;
  message: string;
}

export interface SilentBootInput {
  /** The node's timeline, oldest first (what the store keeps). */
  events: NodeEvent[];
  /** Index in `events` of the bootloader fetch that went unanswered (the last one). */
  served: number;
  /** The CPU of the file served (peCpu of its first bytes), when known. */
  fileCpu: Cpu | undefined;
  /** The node's configured secureBoot. */
  secureBoot: boolean | 'site';
}

const fetched = (e: NodeEvent): string | undefined =>
  (e.type === 'tftp.file' || e.type === 'http.file') && typeof e.detail?.path === 'string' ? e.detail.path : undefined;

/** The bootloader's own first request: proof it ran. */
function startedBy(family: Bootloader['family'], e: NodeEvent): boolean {
  const file = fetched(e);
  if (family === 'ipxe')
    return (e.type.startsWith('dhcp.') && e.detail?.ipxe === true) || (file !== undefined && !classifyBootloader(file));
  if (family === 'shim') return file !== undefined && classifyBootloader(file)?.family === 'grub';
  return file !== undefined && !classifyBootloader(file);
}

/** The request for its configuration: the iPXE script or a grub.cfg. */
function askedConfig(family: Bootloader['family'], e: NodeEvent): boolean {
  const file = fetched(e);
  if (file === undefined) return false;
  return family === 'ipxe' ? /^boot\/[^/]+\.ipxe$/.test(file) : /(^|\/)grub\.cfg/.test(file);
}

/**
 * The hint for a node whose last bootloader fetch (`served`) was followed by
 * silence, or undefined when the timeline shows the bootloader got as far as
 * asking for its configuration (a later silence is the kernel's or the root's,
 * and has its own events).
 */
export function silentBootHint(input: SilentBootInput): SilentBootHint | undefined {
  const served = input.events[input.served];
  const file = served ? fetched(served) : undefined;
  const loader = file ? classifyBootloader(file) : undefined;
  if (!served || !file || !loader) return undefined;
  const after = input.events.slice(input.served + 1);
  // shim's config is its GRUB's: that fetch re-arms the watch as a GRUB fetch.
  if (after.some((e) => askedConfig(loader.family, e))) return undefined;
  const started = after.some((e) => startedBy(loader.family, e));
  if (started)
    return {
      kind: 'no-config-request',
      message: `${file} started but never asked for its configuration (${loader.family === 'ipxe' ? 'boot/<mac>.ipxe' : 'grub.cfg'}): check its console for the error`,
    };
  // The DHCP exchange that handed out this file says what the firmware is.
  const dhcp = input.events
    .slice(0, input.served)
    .reverse()
    .find((e) => e.type.startsWith('dhcp.') && e.detail?.ipxe !== true);
  const clientCpu = option93Cpu(typeof dhcp?.detail?.arch === 'number' ? dhcp.detail.arch : undefined);
  if (clientCpu && input.fileCpu && clientCpu !== input.fileCpu)
    return {
      kind: 'wrong-architecture',
      message: `the firmware reports ${clientCpu} (DHCP option 93 = ${String(dhcp?.detail?.arch)}) but ${file} is built for ${input.fileCpu}: check the node's arch and boot.uefiX64 / boot.uefiArm64`,
    };
  const uefi = clientCpu !== undefined || input.fileCpu !== undefined;
  if (uefi && !loader.signed)
    return {
      kind: 'secure-boot-refused',
      message: `firmware likely refused an unsigned bootloader (${file}; Secure Boot on?): set secureBoot: true on this node (docs/configuration.md, Secure Boot)`,
    };
  return {
    kind: 'bootloader-never-started',
    message: loader.signed
      ? `${file} is signed, but nothing came from it: the firmware may not trust its signer (${input.secureBoot === 'site' ? 'is the site key in its db?' : "is Microsoft's UEFI CA in its db?"}) or it stopped; check the console`
      : `nothing came from ${file} after it was fetched: check the machine's console`,
  };
}
