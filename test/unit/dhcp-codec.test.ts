// The DHCP codec against packets captured from real clients (test/fixtures/dhcp,
// decoded independently by tshark into expected.json), and against the edge cases
// of RFC 2131/2132/3396 built by hand.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodePacket, encodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import {
  readClientArch,
  readClientId,
  readClientNdi,
  readMaxMessageSize,
  readMessageType,
  readParameterRequestList,
  readUserClass,
  readVendorClass,
  readClientMachineId,
  readIpxeEncapsulated,
  describeMalformed,
} from '../../server/dhcp/codec/readers.js';
import { macFromBuffer } from '../../server/util/mac.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

interface ExpectedFixture {
  file: string;
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: string;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  chaddr: string;
  sname: string;
  bootFile: string;
  messageType: number;
  options: number[];
  optionsRaw: Array<{ code: number; hex: string }>;
  endOffset: number;
  size: number;
  vendorClass?: string;
  arch?: number[];
  userClass?: string;
  maxMessageSize?: number;
  paramRequestList?: number[];
  clientId?: string;
  clientNdi?: { type: number; major: number; minor: number };
  uuidOption?: { hex: string; type: number };
}

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/dhcp');
const expected = (JSON.parse(readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as { fixtures: ExpectedFixture[] }).fixtures;

function decodeOk(buf: Buffer): DhcpPacket {
  const r = decodePacket(buf);
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

describe.each(expected)('captured $file', (fx) => {
  const bytes = readFileSync(path.join(FIXTURES, fx.file));

  it('decodes every header field and option as tshark does', () => {
    expect(bytes.length).toBe(fx.size);
    const p = decodeOk(bytes);
    expect({ op: p.op, htype: p.htype, hlen: p.hlen, hops: p.hops, secs: p.secs, flags: p.flags }).toEqual({
      op: fx.op,
      htype: fx.htype,
      hlen: fx.hlen,
      hops: fx.hops,
      secs: fx.secs,
      flags: fx.flags,
    });
    expect(`0x${p.xid.toString(16).padStart(8, '0')}`).toBe(fx.xid);
    expect([p.ciaddr, p.yiaddr, p.siaddr, p.giaddr]).toEqual([fx.ciaddr, fx.yiaddr, fx.siaddr, fx.giaddr]);
    expect(macFromBuffer(p.chaddr)).toBe(fx.chaddr);
    expect(p.sname).toBe(fx.sname);
    expect(p.file).toBe(fx.bootFile);
    expect([...p.options.keys()]).toEqual(fx.options);
    expect([...p.options].map(([code, v]) => ({ code, hex: v.toString('hex') }))).toEqual(fx.optionsRaw);
    expect(readMessageType(p.options)).toBe(fx.messageType);
  });

  it('reads the typed options', () => {
    const o = decodeOk(bytes).options;
    expect(readVendorClass(o)).toBe(fx.vendorClass);
    expect(readClientArch(o)).toEqual(fx.arch);
    expect(readMaxMessageSize(o)).toBe(fx.maxMessageSize);
    expect(readParameterRequestList(o)).toEqual(fx.paramRequestList);
    expect(readClientId(o)).toBe(fx.clientId);
    expect(readClientNdi(o)).toEqual(fx.clientNdi);
    expect(readUserClass(o)?.[0]).toBe(fx.userClass);
    expect(readClientMachineId(o)?.toString('hex')).toBe(fx.uuidOption?.hex);
    expect(describeMalformed(o)).toEqual([]);
  });

  it('re-encodes to the same bytes', () => {
    const out = encodePacket(decodeOk(bytes), 1500);
    expect(out.dropped).toEqual([]);
    const end = fx.endOffset + 1;
    expect(out.buffer.subarray(0, end).toString('hex')).toBe(bytes.subarray(0, end).toString('hex'));
    expect(out.buffer.length).toBe(Math.max(300, end));
    expect(out.buffer.subarray(end).every((b) => b === 0)).toBe(true);
  });
});

/** A minimal valid BOOTREQUEST with the given options area (after the cookie). */
function request(optionBytes: number[], extra?: (buf: Buffer) => void): Buffer {
  const buf = Buffer.alloc(240 + optionBytes.length);
  buf[0] = 1;
  buf[1] = 1;
  buf[2] = 6;
  buf.writeUInt32BE(0xdeadbeef, 4);
  Buffer.from([0x02, 0, 0, 0, 0, 0x42]).copy(buf, 28);
  buf.writeUInt32BE(0x63825363, 236);
  Buffer.from(optionBytes).copy(buf, 240);
  extra?.(buf);
  return buf;
}

describe('decoder edge cases', () => {
  it('skips PAD anywhere and stops at END', () => {
    const p = decodeOk(request([0, 0, 53, 1, 1, 0, 61, 2, 1, 2, 255, 99, 99]));
    expect(readMessageType(p.options)).toBe(1);
    expect(p.options.get(61)?.toString('hex')).toBe('0102');
    expect(p.options.has(99)).toBe(false);
  });

  it('concatenates repeated options in order (RFC 3396)', () => {
    const p = decodeOk(request([53, 1, 1, 43, 2, 0xaa, 0xbb, 60, 1, 0x58, 43, 1, 0xcc, 255]));
    expect(p.options.get(43)?.toString('hex')).toBe('aabbcc');
    expect([...p.options.keys()]).toEqual([53, 43, 60]);
  });

  it('reads options from overloaded file and sname fields, file first (RFC 2131 §4.1)', () => {
    const buf = request([53, 1, 1, 52, 1, 3, 12, 1, 0x61, 255], (b) => {
      Buffer.from([12, 1, 0x62, 60, 3, 0x41, 0x42, 0x43, 255]).copy(b, 108);
      Buffer.from([12, 1, 0x63, 255]).copy(b, 44);
    });
    const p = decodeOk(buf);
    expect(p.options.get(12)?.toString()).toBe('abc');
    expect(readVendorClass(p.options)).toBe('ABC');
    expect(p.file).toBe('');
    expect(p.sname).toBe('');
  });

  it('rejects what it cannot frame, with a reason, and never throws', () => {
    const reasons = [
      decodePacket(Buffer.alloc(10)),
      decodePacket(request([53, 1, 1, 255], (b) => b.writeUInt32BE(0, 236))),
      decodePacket(
        request([53, 1, 1, 255], (b) => {
          b[0] = 7;
        }),
      ),
      decodePacket(
        request([53, 1, 1, 255], (b) => {
          b[2] = 17;
        }),
      ),
      decodePacket(request([53, 1, 1, 61, 9, 1, 2])),
      decodePacket(request([53])),
      decodePacket(request([53, 1, 1, 52, 1, 9, 255])),
    ].map((r) => (r.ok ? 'ok' : r.reason));
    expect(reasons).toEqual([
      'packet is 10 bytes, shorter than the 240-byte header and cookie',
      'magic cookie missing',
      'op 7 is neither BOOTREQUEST nor BOOTREPLY',
      'hlen 17 exceeds the 16-byte chaddr field',
      'option 61 length 9 runs past the end of the packet',
      'option 53 has no length byte',
      'option 52 (overload) must be one byte of 1, 2 or 3',
    ]);
  });

  it('treats malformed fixed-length options as absent and names them', () => {
    const o = decodeOk(request([53, 2, 1, 1, 50, 3, 10, 0, 0, 57, 2, 0x01, 0x00, 93, 3, 0, 0, 7, 97, 5, 0, 1, 2, 3, 4, 255])).options;
    expect(readMessageType(o)).toBeUndefined();
    expect(readMaxMessageSize(o)).toBeUndefined();
    expect(readClientArch(o)).toBeUndefined();
    expect(readClientMachineId(o)).toBeUndefined();
    expect(describeMalformed(o)).toEqual([
      'option 50 has length 3, expected 4',
      'option 53 has length 2, expected 1',
      'option 97 has length 5, expected 17',
      'option 93 has odd length 3',
      'option 57 is 256, below 576',
    ]);
  });

  it("reads option 77 in RFC 3004 form and in iPXE's raw form", () => {
    const rfc = decodeOk(request([53, 1, 1, 77, 9, 3, 0x66, 0x6f, 0x6f, 4, 0x69, 0x50, 0x58, 0x45, 255])).options;
    expect(readUserClass(rfc)).toEqual(['foo', 'iPXE']);
    const raw = decodeOk(request([53, 1, 1, 77, 4, 0x69, 0x50, 0x58, 0x45, 255])).options;
    expect(readUserClass(raw)).toEqual(['iPXE']);
  });

  it('reads iPXE encapsulated options (175)', () => {
    const o = decodeOk(request([53, 1, 1, 175, 9, 0x13, 1, 1, 0x24, 1, 1, 0xb1, 0, 0, 255])).options;
    expect([...(readIpxeEncapsulated(o)?.keys() ?? [])]).toEqual([0x13, 0x24, 0xb1]);
  });
});

describe('encoder', () => {
  const base = (): DhcpPacket => ({
    op: 2,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 1,
    secs: 0,
    flags: 0x8000,
    ciaddr: '0.0.0.0',
    yiaddr: '10.9.0.5',
    siaddr: '10.9.0.1',
    giaddr: '0.0.0.0',
    chaddr: Buffer.from('020000000042', 'hex'),
    sname: '',
    file: 'undionly.kpxe',
    options: new Map(),
  });

  it('pads replies to 300 bytes after END, puts 53 first and 82 last', () => {
    const p = base();
    p.options.set(82, Buffer.from('0104aabbccdd', 'hex'));
    p.options.set(54, Buffer.from([10, 9, 0, 1]));
    p.options.set(53, Buffer.of(2));
    const { buffer } = encodePacket(p);
    expect(buffer.length).toBe(300);
    expect(buffer.subarray(240, 258).toString('hex')).toBe('350102' + '36040a090001' + '52060104aabbccdd' + 'ff');
    expect(buffer.subarray(258).every((b) => b === 0)).toBe(true);
    expect(buffer.subarray(108, 121).toString()).toBe('undionly.kpxe');
  });

  it('splits values longer than 255 bytes into instances that decode back whole', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    const long = Buffer.alloc(300, 7);
    p.options.set(43, long);
    const { buffer } = encodePacket(p, 1500);
    expect(buffer[243]).toBe(43);
    expect(buffer[244]).toBe(255);
    expect(buffer[243 + 257]).toBe(43);
    expect(buffer[243 + 258]).toBe(45);
    expect(decodeOk(buffer).options.get(43)).toEqual(long);
  });

  it("keeps within the client's maximum size by overloading sname (option 52), and reports what cannot fit", () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    // 576-byte datagram = 548 bytes of DHCP: 7 of these fit the options field, the 8th goes to sname.
    for (let code = 200; code < 208; code++) p.options.set(code, Buffer.alloc(40, code));
    const fits = encodePacket(p, 576);
    expect(fits.buffer.length).toBeLessThanOrEqual(548);
    expect(fits.dropped).toEqual([]);
    const back = decodeOk(fits.buffer);
    expect(back.options.get(52)).toEqual(Buffer.of(2));
    for (let code = 200; code < 208; code++) expect(back.options.get(code)).toEqual(Buffer.alloc(40, code));
    expect(back.file).toBe('undionly.kpxe');

    p.options.set(208, Buffer.alloc(40, 208));
    p.options.set(209, Buffer.alloc(40, 209));
    const over = encodePacket(p, 576);
    expect(over.buffer.length).toBeLessThanOrEqual(548);
    expect(over.dropped).toEqual([208, 209]);
    // A client allowing larger messages gets everything in the options field.
    const large = encodePacket(p, 1500);
    expect(large.dropped).toEqual([]);
    expect(decodeOk(large.buffer).options.has(52)).toBe(false);
  });
});
