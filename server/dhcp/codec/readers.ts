// Typed, bounds-checked readers for the options a netboot server decides on.
// Each returns undefined when the option is absent *or* malformed: a wrong-length
// option is treated as not sent (real ROMs send broken 97s: pixiecore's
// README.booting, "Known deviations"), and
// `describeMalformed` reports which ones were malformed for the log.
import { Opt, type DhcpOptions } from './options.js';
import { readIpv4 } from '../../util/ipv4.js';

function ipv4Option(options: DhcpOptions, code: number): string | undefined {
  const v = options.get(code);
  return v && v.length === 4 ? readIpv4(v, 0) : undefined;
}

/** Option 53. */
export function readMessageType(options: DhcpOptions): number | undefined {
  const v = options.get(Opt.MESSAGE_TYPE);
  const type = v?.length === 1 ? v[0] : undefined;
  return type !== undefined && type >= 1 && type <= 8 ? type : undefined;
}

/** Option 50. */
export function readRequestedIp(options: DhcpOptions): string | undefined {
  return ipv4Option(options, Opt.REQUESTED_IP);
}

/** Option 54. */
export function readServerId(options: DhcpOptions): string | undefined {
  return ipv4Option(options, Opt.SERVER_ID);
}

/** Option 55: the codes the client asks for, in its order. */
export function readParameterRequestList(options: DhcpOptions): number[] | undefined {
  const v = options.get(Opt.PARAMETER_REQUEST_LIST);
  return v && v.length > 0 ? [...v] : undefined;
}

/** Option 57: at least 576 per RFC 2132 §9.10; smaller values are ignored. */
export function readMaxMessageSize(options: DhcpOptions): number | undefined {
  const v = options.get(Opt.MAX_MESSAGE_SIZE);
  if (!v || v.length !== 2) return undefined;
  const size = v.readUInt16BE(0);
  return size >= 576 ? size : undefined;
}

/** Option 60 as text. */
export function readVendorClass(options: DhcpOptions): string | undefined {
  const v = options.get(Opt.VENDOR_CLASS);
  return v && v.length > 0 ? v.toString('latin1') : undefined;
}

/** Option 61: type byte plus identifier, returned as lower-case hex of the whole value. */
export function readClientId(options: DhcpOptions): string | undefined {
  const v = options.get(Opt.CLIENT_ID);
  return v && v.length >= 2 ? v.toString('hex') : undefined;
}

/**
 * Option 77. RFC 3004 encodes a list of length-prefixed class names, but iPXE
 * sends the bare string "iPXE" (ipxe.org/cfg/user-class calls it a long-standing
 * bug). Like dnsmasq, parse the RFC form when its lengths add up exactly and fall
 * back to one raw string otherwise.
 */
export function readUserClass(options: DhcpOptions): string[] | undefined {
  const v = options.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return undefined;
  const classes: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i] as number;
    if (len === 0 || i + 1 + len > v.length) return [v.toString('latin1')];
    classes.push(v.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return classes;
}

/** Option 93: one or more 16-bit architecture codes (RFC 4578 §2.1). */
export function readClientArch(options: DhcpOptions): number[] | undefined {
  const v = options.get(Opt.CLIENT_ARCH);
  if (!v || v.length < 2 || v.length % 2 !== 0) return undefined;
  const arches: number[] = [];
  for (let i = 0; i < v.length; i += 2) arches.push(v.readUInt16BE(i));
  return arches;
}

export interface ClientNdi {
  type: number;
  major: number;
  minor: number;
}

/** Option 94: type (1 = UNDI), major, minor (RFC 4578 §2.2). */
export function readClientNdi(options: DhcpOptions): ClientNdi | undefined {
  const v = options.get(Opt.CLIENT_NDI);
  if (!v || v.length !== 3) return undefined;
  return { type: v[0] as number, major: v[1] as number, minor: v[2] as number };
}

/** Option 97: type 0 followed by a 16-byte machine identifier (RFC 4578 §2.3). */
export function readClientMachineId(options: DhcpOptions): Buffer | undefined {
  const v = options.get(Opt.CLIENT_MACHINE_ID);
  return v && v.length === 17 && v[0] === 0 ? v.subarray(1) : undefined;
}

export interface RaspberryPiMachineId {
  /** "RPi4" or "RPi5": the EEPROM's FourCC. */
  fourcc: string;
  model: 4 | 5;
  boardRevision: number;
  /** The low four bytes of the Ethernet MAC, as hex. */
  macLow: string;
  /** The serial as the bootloader writes it in its TFTP prefix: 8 lower-case hex digits. */
  serial: string;
}

/**
 * A Pi 4/5 EEPROM fills option 97's 16 bytes with the FourCC "RPi4"/"RPi5"
 * (little-endian 0x34695052/0x35695052), the board revision (LE u32), the low 4
 * bytes of the MAC and the serial (LE u32) (eeprom-bootloader DHCP_OPTION97).
 * Older EEPROMs, or DHCP_OPTION97=0, repeat the serial four times instead: that
 * form is recognised too, but only when the MAC already says Raspberry Pi.
 */
export function readRaspberryPiMachineId(options: DhcpOptions): RaspberryPiMachineId | undefined {
  const id = readClientMachineId(options);
  if (!id) return undefined;
  const fourcc = id.subarray(0, 4).toString('latin1');
  if (fourcc !== 'RPi4' && fourcc !== 'RPi5') return undefined;
  return {
    fourcc,
    model: fourcc === 'RPi4' ? 4 : 5,
    boardRevision: id.readUInt32LE(4),
    macLow: id.subarray(8, 12).toString('hex'),
    serial: id.readUInt32LE(12).toString(16).padStart(8, '0'),
  };
}

/**
 * The Pi 3B ROM's option 97 is 16 x 0x44, the same on every board
 * (docs/protocol-notes.md §2.1): it has the shape of a repeated serial but is
 * none, and read as 44444444 it would give every Pi 3B one serial directory.
 */
const PI3B_CONSTANT_MACHINE_ID = 0x44444444;

/** The legacy Pi option 97: the 32-bit serial repeated four times (a Pi 3B+ ROM). */
export function readRepeatedSerialMachineId(options: DhcpOptions): string | undefined {
  const id = readClientMachineId(options);
  if (!id) return undefined;
  const first = id.readUInt32LE(0);
  for (let i = 4; i < 16; i += 4) if (id.readUInt32LE(i) !== first) return undefined;
  if (first === PI3B_CONSTANT_MACHINE_ID) return undefined;
  return first.toString(16).padStart(8, '0');
}

/** Option 175: iPXE's encapsulated options (feature flags, etc.) as code -> value. */
export function readIpxeEncapsulated(options: DhcpOptions): Map<number, Buffer> | undefined {
  const v = options.get(Opt.IPXE_ENCAP);
  if (!v) return undefined;
  const out = new Map<number, Buffer>();
  let i = 0;
  while (i < v.length) {
    const code = v[i] as number;
    if (code === Opt.PAD) {
      i += 1;
      continue;
    }
    if (code === Opt.END) break;
    if (i + 1 >= v.length) return undefined;
    const len = v[i + 1] as number;
    if (i + 2 + len > v.length) return undefined;
    out.set(code, v.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return out;
}

const FIXED_LENGTHS: ReadonlyArray<[number, number]> = [
  [Opt.REQUESTED_IP, 4],
  [Opt.MESSAGE_TYPE, 1],
  [Opt.SERVER_ID, 4],
  [Opt.MAX_MESSAGE_SIZE, 2],
  [Opt.CLIENT_NDI, 3],
  [Opt.CLIENT_MACHINE_ID, 17],
];

/** Names the options present with an invalid length or value, for a log line. */
export function describeMalformed(options: DhcpOptions): string[] {
  const problems: string[] = [];
  for (const [code, length] of FIXED_LENGTHS) {
    const v = options.get(code);
    if (v && v.length !== length) problems.push(`option ${code} has length ${v.length}, expected ${length}`);
  }
  const arch = options.get(Opt.CLIENT_ARCH);
  if (arch && (arch.length < 2 || arch.length % 2 !== 0)) problems.push(`option 93 has odd length ${arch.length}`);
  const size = options.get(Opt.MAX_MESSAGE_SIZE);
  if (size && size.length === 2 && size.readUInt16BE(0) < 576) problems.push(`option 57 is ${size.readUInt16BE(0)}, below 576`);
  return problems;
}
