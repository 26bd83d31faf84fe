// Parsing the server's DHCP replies, independent of bootfarm's own codec (RFC 2131
// header, RFC 2132 options with overload, RFC 3396 concatenation). Pure.
import { readIp } from './ipv4.js';
import { DHCP_MAGIC } from './dhcp-build.js';

export interface DhcpMessage {
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
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Options by code; repeated instances concatenated (RFC 3396). */
  options: Map<number, Buffer>;
  /** Option codes in wire order (main area, then file, then sname). */
  order: number[];
  /** A Pad (0) appeared before End: early Pi 4 EEPROMs dropped such replies (rpi-eeprom#82). */
  padBeforeEnd: boolean;
  length: number;
}

export type DhcpParseResult = { ok: true; message: DhcpMessage } | { ok: false; reason: string };

function walkArea(
  area: Buffer,
  into: Map<number, Buffer[]>,
  order: number[],
  where: string,
): { ok: true; pad: boolean } | { ok: false; reason: string } {
  let i = 0;
  let pad = false;
  while (i < area.length) {
    const code = area[i] as number;
    if (code === 255) return { ok: true, pad };
    if (code === 0) {
      pad = true;
      i++;
      continue;
    }
    if (i + 1 >= area.length) return { ok: false, reason: `option ${code} in ${where} has no length byte` };
    const len = area[i + 1] as number;
    if (i + 2 + len > area.length) return { ok: false, reason: `option ${code} in ${where} (length ${len}) runs past the end` };
    const list = into.get(code) ?? [];
    list.push(area.subarray(i + 2, i + 2 + len));
    into.set(code, list);
    order.push(code);
    i += 2 + len;
  }
  return { ok: false, reason: `no End option in ${where}` };
}

function cString(buf: Buffer, offset: number, length: number): string {
  const f = buf.subarray(offset, offset + length);
  const nul = f.indexOf(0);
  return f.subarray(0, nul < 0 ? f.length : nul).toString('latin1');
}

export function parseDhcpMessage(buf: Buffer): DhcpParseResult {
  if (buf.length < 241) return { ok: false, reason: `only ${buf.length} bytes` };
  if (buf.readUInt32BE(236) !== DHCP_MAGIC) return { ok: false, reason: 'no magic cookie' };
  const hlen = buf[2] as number;
  if (hlen > 16) return { ok: false, reason: `hlen ${hlen}` };
  const parts = new Map<number, Buffer[]>();
  const order: number[] = [];
  const main = walkArea(buf.subarray(240), parts, order, 'the options field');
  if (!main.ok) return { ok: false, reason: main.reason };
  let pad = main.pad;
  let overload = 0;
  const ov = parts.get(52)?.[0];
  if (ov) {
    if (ov.length !== 1 || (ov[0] as number) < 1 || (ov[0] as number) > 3) return { ok: false, reason: 'bad option 52' };
    overload = ov[0] as number;
    if (overload & 1) {
      const r = walkArea(buf.subarray(108, 236), parts, order, 'the overloaded file field');
      if (!r.ok) return { ok: false, reason: r.reason };
      pad ||= r.pad;
    }
    if (overload & 2) {
      const r = walkArea(buf.subarray(44, 108), parts, order, 'the overloaded sname field');
      if (!r.ok) return { ok: false, reason: r.reason };
      pad ||= r.pad;
    }
  }
  const options = new Map<number, Buffer>();
  for (const [code, list] of parts) options.set(code, Buffer.concat(list));
  return {
    ok: true,
    message: {
      op: buf[0] as number,
      htype: buf[1] as number,
      hlen,
      hops: buf[3] as number,
      xid: buf.readUInt32BE(4),
      secs: buf.readUInt16BE(8),
      flags: buf.readUInt16BE(10),
      ciaddr: readIp(buf, 12),
      yiaddr: readIp(buf, 16),
      siaddr: readIp(buf, 20),
      giaddr: readIp(buf, 24),
      chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
      sname: overload & 2 ? '' : cString(buf, 44, 64),
      file: overload & 1 ? '' : cString(buf, 108, 128),
      options,
      order,
      padBeforeEnd: pad,
      length: buf.length,
    },
  };
}
