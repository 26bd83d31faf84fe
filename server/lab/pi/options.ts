// What a run can be told (the command line maps onto these), the defaults the
// EEPROM uses, and the prefix and required-file rules that follow from the model.
import { formatMac, formatSerial, type PiIdentity, type PiModel } from './model.js';

export interface PiBootOptions {
  iface: string;
  mac: string;
  /** Serial, hex (8 digits as used in the TFTP prefix). */
  serial: string;
  model?: PiModel;
  boardRevision?: number;
  /** DHCP_TIMEOUT: the whole DHCP phase. Default 45000. */
  dhcpTimeoutMs?: number;
  /** DHCP_REQ_TIMEOUT: DISCOVER retransmit interval and ACK wait. Default 4000. */
  dhcpRetryMs?: number;
  /** Set the BOOTP broadcast flag. Default true (captured Pi 4s send 0). */
  broadcastFlag?: boolean;
  /** PXE_OPTION43. Default "Raspberry Pi Boot". */
  option43Match?: string;
  /** Accept the match string anywhere in option 43, not only in a sub-option 9 menu. */
  lenientOption43?: boolean;
  /** TFTP_IP: overrides options 66/54. */
  tftpServer?: string;
  /**
   * HTTP boot (BOOT_ORDER nibble 7, Pi 4/5): after DHCP for an address, boot.sig and
   * boot.img from http://host:port/path/, checked with the programmed public key
   * (server/lab/pi/http-phase.ts); nothing over TFTP. The kernel, initramfs and
   * cmdline.txt are copied out of the image into outDir/boot/.
   */
  http?: { host: string; port: number; path: string; publicKeyPem: string; hostname: string };
  tftpPort?: number;
  /** TFTP_PREFIX: 'serial' (default), 'mac', 'none' or 'str:NAME'. */
  prefix?: string;
  /** Replaces the file sequence after the prefix probe. Tokens: @kernel @initramfs @dtb @cmdline @overlays. */
  files?: string[];
  /** Names (unprefixed) or @role tokens whose absence fails the run. */
  required?: string[];
  outDir?: string;
  blksize?: number;
  tftpTimeoutMs?: number;
  tftpRetries?: number;
  /** TFTP_FILE_TIMEOUT per file; 0 disables. Default 30000. */
  fileTimeoutMs?: number;
  /** Emulate "probe, Early terminate, re-request" for every fetched file. */
  probeEach?: boolean;
  /** Run `ip` to add the broadcast route and the leased address. Default true. */
  configureIp?: boolean;
  keepAddress?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export const DEFAULTS = {
  dhcpTimeoutMs: 45_000,
  dhcpRetryMs: 4_000,
  tftpTimeoutMs: 1_000,
  tftpRetries: 5,
  fileTimeoutMs: 30_000,
  tftpPort: 69,
};

/** Files that must arrive (after the Pi 3 ROM's bootcode.bin, which it always requires). */
export function defaultRequired(model: PiModel): string[] {
  if (model === 3) return ['config.txt', 'start.elf', 'fixup.dat', 'cmdline.txt', '@kernel'];
  return model === 4 ? ['config.txt', 'start4.elf', 'cmdline.txt', '@kernel'] : ['config.txt', 'cmdline.txt', '@kernel'];
}

/** The TFTP_PREFIX directory, with trailing slash, or undefined for none. */
export function tftpPrefix(mode: string, id: PiIdentity): string | undefined {
  if (mode === 'none') return undefined;
  if (mode === 'serial') return `${formatSerial(id.serial)}/`;
  if (mode === 'mac') return `${formatMac(id.mac, '-')}/`;
  if (mode.startsWith('str:') && mode.length > 4) return `${mode.slice(4).replace(/\/+$/, '')}/`;
  throw new Error(`--prefix must be serial, mac, none or str:NAME, got ${JSON.stringify(mode)}`);
}

/** Thrown when the run's AbortSignal fires; reported as the failure "aborted". */
export class Aborted extends Error {}
