// DHCPv4 message codec (RFC 2131 §2, RFC 2132, RFC 3396). Pure functions over
// Buffers: decodePacket never throws, encodePacket never reads anything but its
// arguments. Wire layout: RFC 2131 §2, Figure 1.
import { Opt, walkOptionArea, optionInstancesLength, writeOption, type DhcpOptions } from './options.js';
import { readIpv4, writeIpv4 } from '../../util/ipv4.js';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
const MAGIC_COOKIE = 0x63825363;
const HEADER_LENGTH = 236;
const OPTIONS_OFFSET = HEADER_LENGTH + 4;
const SNAME_OFFSET = 44;
const SNAME_LENGTH = 64;
const FILE_OFFSET = 108;
const FILE_LENGTH = 128;
/** Replies shorter than this are ignored by the Linux in-kernel client (dnsmasq MIN_PACKETSZ). */
const MIN_REPLY_LENGTH = 300;
/** RFC 2131 §2: every client accepts a 576-byte IP datagram, i.e. 548 bytes of DHCP. */
const DEFAULT_MAX_MESSAGE = 576;
const IP_UDP_HEADERS = 28;
export const BROADCAST_FLAG = 0x8000;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The first `hlen` bytes of the chaddr field. */
  chaddr: Buffer;
  /** Server host name field; empty when the field carried overloaded options. */
  sname: string;
  /** Boot file field; empty when the field carried overloaded options. */
  file: string;
  options: DhcpOptions;
}

export type DecodeResult = { ok: true; packet: DhcpPacket } | { ok: false; reason: string };

function readCString(buf: Buffer, offset: number, length: number): string {
  const field = buf.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('latin1');
}

export function decodePacket(buf: Buffer): DecodeResult {
  if (buf.length < OPTIONS_OFFSET) {
    return { ok: false, reason: `packet is ${buf.length} bytes, shorter than the ${OPTIONS_OFFSET}-byte header and cookie` };
  }
  const op = buf[0] as number;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) return { ok: false, reason: `op ${op} is neither BOOTREQUEST nor BOOTREPLY` };
  const hlen = buf[2] as number;
  if (hlen > 16) return { ok: false, reason: `hlen ${hlen} exceeds the 16-byte chaddr field` };
  if (buf.readUInt32BE(HEADER_LENGTH) !== MAGIC_COOKIE) return { ok: false, reason: 'magic cookie missing' };

  const parts = new Map<number, Buffer[]>();
  const main = walkOptionArea(buf.subarray(OPTIONS_OFFSET), parts);
  if (!main.ok) return { ok: false, reason: main.reason };

  // Option overload (RFC 2131 §4.1, RFC 2132 §9.3): the file field, then sname, carry
  // more options. Their instances are appended after the main area's (RFC 3396 order).
  let overload = 0;
  const overloadParts = parts.get(Opt.OVERLOAD);
  if (overloadParts) {
    const value = overloadParts[0] as Buffer;
    if (value.length !== 1 || (value[0] as number) < 1 || (value[0] as number) > 3) {
      return { ok: false, reason: 'option 52 (overload) must be one byte of 1, 2 or 3' };
    }
    overload = value[0] as number;
    if (overload & 1) {
      const r = walkOptionArea(buf.subarray(FILE_OFFSET, FILE_OFFSET + FILE_LENGTH), parts);
      if (!r.ok) return { ok: false, reason: `in overloaded file field: ${r.reason}` };
    }
    if (overload & 2) {
      const r = walkOptionArea(buf.subarray(SNAME_OFFSET, SNAME_OFFSET + SNAME_LENGTH), parts);
      if (!r.ok) return { ok: false, reason: `in overloaded sname field: ${r.reason}` };
    }
  }

  const options: DhcpOptions = new Map();
  for (const [code, values] of parts) {
    // Values are views into the datagram (node:dgram hands each message its own Buffer).
    options.set(code, values.length === 1 ? (values[0] as Buffer) : Buffer.concat(values));
  }

  return {
    ok: true,
    packet: {
      op,
      htype: buf[1] as number,
      hlen,
      hops: buf[3] as number,
      xid: buf.readUInt32BE(4),
      secs: buf.readUInt16BE(8),
      flags: buf.readUInt16BE(10),
      ciaddr: readIpv4(buf, 12),
      yiaddr: readIpv4(buf, 16),
      siaddr: readIpv4(buf, 20),
      giaddr: readIpv4(buf, 24),
      chaddr: buf.subarray(28, 28 + hlen),
      sname: overload & 2 ? '' : readCString(buf, SNAME_OFFSET, SNAME_LENGTH),
      file: overload & 1 ? '' : readCString(buf, FILE_OFFSET, FILE_LENGTH),
      options,
    },
  };
}

export interface EncodeResult {
  buffer: Buffer;
  /** Options that fit in none of the areas and were left out. */
  dropped: number[];
}

/**
 * Encodes a message. `maxMessageSize` is the client's option 57 (whole IP datagram);
 * the DHCP payload is kept within it, minimum 576 per RFC 2131 §2. Options that do
 * not fit overflow into `file`, then `sname`, when those fields are empty (overload
 * 52); option 82 is written last, as relay agents expect (RFC 3046 §2.2); replies
 * are padded after END to 300 bytes.
 */
export function encodePacket(packet: DhcpPacket, maxMessageSize: number = DEFAULT_MAX_MESSAGE): EncodeResult {
  const limit = Math.max(DEFAULT_MAX_MESSAGE, maxMessageSize) - IP_UDP_HEADERS;
  const ordered: Array<[number, Buffer]> = [];
  let relayInfo: Buffer | undefined;
  for (const [code, value] of packet.options) {
    if (code === Opt.PAD || code === Opt.END || code === Opt.OVERLOAD) continue;
    if (code === Opt.RELAY_AGENT_INFO) relayInfo = value;
    else if (code === Opt.MESSAGE_TYPE) ordered.unshift([code, value]);
    else ordered.push([code, value]);
  }
  if (relayInfo) ordered.push([Opt.RELAY_AGENT_INFO, relayInfo]);

  // Room in the main area, keeping 3 bytes for a possible overload option and 1 for END.
  const mainRoom = limit - OPTIONS_OFFSET - 1;
  const main: Array<[number, Buffer]> = [];
  const inFile: Array<[number, Buffer]> = [];
  const inSname: Array<[number, Buffer]> = [];
  const dropped: number[] = [];
  let mainUsed = 0;
  let fileUsed = 0;
  let snameUsed = 0;
  const fileFree = packet.file.length === 0;
  const snameFree = packet.sname.length === 0;
  const total = ordered.reduce((sum, [, v]) => sum + optionInstancesLength(v), 0);
  const needOverload = total > mainRoom;
  const mainBudget = needOverload ? mainRoom - 3 : mainRoom;
  for (const entry of ordered) {
    const size = optionInstancesLength(entry[1]);
    // Option 82 must stay in the main area so relays find it (RFC 3046).
    if (mainUsed + size <= mainBudget) {
      main.push(entry);
      mainUsed += size;
    } else if (entry[0] !== Opt.RELAY_AGENT_INFO && fileFree && fileUsed + size <= FILE_LENGTH - 1) {
      inFile.push(entry);
      fileUsed += size;
    } else if (entry[0] !== Opt.RELAY_AGENT_INFO && snameFree && snameUsed + size <= SNAME_LENGTH - 1) {
      inSname.push(entry);
      snameUsed += size;
    } else {
      dropped.push(entry[0]);
    }
  }
  const overload = (inFile.length > 0 ? 1 : 0) | (inSname.length > 0 ? 2 : 0);

  const length = Math.max(MIN_REPLY_LENGTH, OPTIONS_OFFSET + mainUsed + (overload ? 3 : 0) + 1);
  const out = Buffer.alloc(length);
  out[0] = packet.op;
  out[1] = packet.htype;
  out[2] = packet.hlen;
  out[3] = packet.hops;
  out.writeUInt32BE(packet.xid >>> 0, 4);
  out.writeUInt16BE(packet.secs, 8);
  out.writeUInt16BE(packet.flags, 10);
  writeIpv4(out, 12, packet.ciaddr);
  writeIpv4(out, 16, packet.yiaddr);
  writeIpv4(out, 20, packet.siaddr);
  writeIpv4(out, 24, packet.giaddr);
  packet.chaddr.copy(out, 28, 0, Math.min(16, packet.chaddr.length));
  if (overload & 2) writeArea(out, SNAME_OFFSET, inSname);
  else out.write(packet.sname.slice(0, SNAME_LENGTH - 1), SNAME_OFFSET, 'latin1');
  if (overload & 1) writeArea(out, FILE_OFFSET, inFile);
  else out.write(packet.file.slice(0, FILE_LENGTH - 1), FILE_OFFSET, 'latin1');
  out.writeUInt32BE(MAGIC_COOKIE, HEADER_LENGTH);
  let pos = OPTIONS_OFFSET;
  for (const [code, value] of main) {
    pos = writeOption(out, pos, code, value);
    // The overload option goes right after message type, before anything that spilled.
    if (code === Opt.MESSAGE_TYPE && overload) pos = writeOption(out, pos, Opt.OVERLOAD, Buffer.of(overload));
  }
  if (overload && main[0]?.[0] !== Opt.MESSAGE_TYPE) pos = writeOption(out, pos, Opt.OVERLOAD, Buffer.of(overload));
  out[pos] = Opt.END;
  return { buffer: out, dropped };
}

function writeArea(out: Buffer, offset: number, entries: Array<[number, Buffer]>): void {
  let pos = offset;
  for (const [code, value] of entries) pos = writeOption(out, pos, code, value);
  out[pos] = Opt.END;
}
