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

  // The option areas at their limits (548 bytes of DHCP for a 576-byte client):
  // 307 bytes of options fit the options field, 304 once option 52 needs its 3.
  // Sizes below are on the wire: code, length, value.
  /** Options 53 and one 297-byte value: 3 + 301 = 304 bytes, the field full once 52 is needed. */
  const fullField = (p: DhcpPacket): void => {
    p.options.set(53, Buffer.of(2));
    p.options.set(43, Buffer.alloc(297, 0x2b));
  };

  it('fills the options field to its last byte (307 of 548) without overloading', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    p.options.set(43, Buffer.alloc(300, 0x2b)); // 2 instances: 304 bytes, 307 with option 53
    const { buffer, dropped } = encodePacket(p, 576);
    expect(dropped).toEqual([]);
    expect(buffer.length).toBe(548);
    const back = decodeOk(buffer);
    expect(back.options.has(52)).toBe(false);
    expect(back.options.get(43)).toEqual(Buffer.alloc(300, 0x2b));
    expect(back.file).toBe('undionly.kpxe');
  });

  it('one byte over the options field keeps 3 bytes for option 52 and the reply within 548', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    for (let code = 200; code < 207; code++) p.options.set(code, Buffer.alloc(40, code)); // 7 x 42 bytes
    p.options.set(210, Buffer.alloc(6, 210)); // 305 so far: over the 304 left beside option 52
    p.options.set(211, Buffer.alloc(2, 211)); // 309 in all
    const { buffer, dropped } = encodePacket(p, 576);
    expect(dropped).toEqual([]);
    expect(buffer.length).toBeLessThanOrEqual(548);
    const back = decodeOk(buffer);
    expect(back.options.get(52)).toEqual(Buffer.of(2));
    expect(back.options.get(210)).toEqual(Buffer.alloc(6, 210));
    expect(back.options.get(211)).toEqual(Buffer.alloc(2, 211));
  });

  it('counts an empty option as two bytes toward the limit', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    for (let code = 200; code < 207; code++) p.options.set(code, Buffer.alloc(40, code)); // 297 with 53
    p.options.set(80, Buffer.alloc(0)); // rapid commit: 2 bytes, 299
    p.options.set(211, Buffer.alloc(4, 211)); // 6 bytes: 305 in all, 2 bytes short of the field's 307
    const { buffer, dropped } = encodePacket(p, 576);
    expect(dropped).toEqual([]);
    expect(buffer.length).toBeLessThanOrEqual(548);
    const back = decodeOk(buffer);
    expect(back.options.get(80)).toEqual(Buffer.alloc(0));
    expect(back.options.get(211)).toEqual(Buffer.alloc(4, 211));
  });

  it('writes an empty option as its code and a zero length', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    p.options.set(80, Buffer.alloc(0));
    p.options.set(54, Buffer.from([10, 9, 0, 1]));
    const { buffer } = encodePacket(p);
    expect(buffer.subarray(240, 252).toString('hex')).toBe('350102' + '5000' + '36040a090001' + 'ff');
  });

  it('writes a 255-byte value as one instance, 510 bytes as two', () => {
    const p = base();
    p.options.set(53, Buffer.of(2));
    p.options.set(43, Buffer.alloc(255, 1));
    p.options.set(54, Buffer.from([10, 9, 0, 1]));
    const one = encodePacket(p, 1500).buffer;
    expect([one[243], one[244], one[243 + 257]]).toEqual([43, 255, 54]);
    p.options.set(43, Buffer.alloc(510, 1));
    const two = encodePacket(p, 1500).buffer;
    expect([two[243], two[244], two[243 + 257], two[243 + 258], two[243 + 514]]).toEqual([43, 255, 43, 255, 54]);
  });

  it('never writes PAD, END or a caller-set option 52 as options', () => {
    const p = base();
    p.options.set(0, Buffer.of(1));
    p.options.set(255, Buffer.of(1));
    p.options.set(52, Buffer.of(3));
    p.options.set(53, Buffer.of(2));
    const { buffer } = encodePacket(p);
    expect(buffer.subarray(240, 248).toString('hex')).toBe('350102ff00000000');
  });

  it('overflows into an empty file field up to its 127 bytes and END, and drops what does not fit', () => {
    const p = { ...base(), file: '', sname: 'srv' };
    fullField(p);
    p.options.set(120, Buffer.alloc(125, 120)); // 127 bytes: the file field with its END
    p.options.set(121, Buffer.of(1)); // no room left: the file is full, sname holds text
    const fits = encodePacket(p, 576);
    expect(fits.dropped).toEqual([121]);
    const back = decodeOk(fits.buffer);
    expect(back.options.get(52)).toEqual(Buffer.of(1));
    expect(back.options.get(120)).toEqual(Buffer.alloc(125, 120));
    expect(back.options.get(43)).toEqual(Buffer.alloc(297, 0x2b));
    expect([back.file, back.sname]).toEqual(['', 'srv']);

    p.options.delete(121);
    p.options.set(120, Buffer.alloc(126, 120)); // 128 bytes: no room for END
    const over = encodePacket(p, 576);
    expect(over.dropped).toEqual([120]);
    expect(decodeOk(over.buffer).options.has(52)).toBe(false);
  });

  it('overflows into an empty sname field up to its 63 bytes and END when the file field holds a name', () => {
    const p = base();
    fullField(p);
    p.options.set(120, Buffer.alloc(61, 120)); // 63 bytes
    p.options.set(121, Buffer.of(1));
    const fits = encodePacket(p, 576);
    expect(fits.dropped).toEqual([121]);
    const back = decodeOk(fits.buffer);
    expect(back.options.get(52)).toEqual(Buffer.of(2));
    expect(back.options.get(120)).toEqual(Buffer.alloc(61, 120));
    expect([back.file, back.sname]).toEqual(['undionly.kpxe', '']);

    p.options.delete(121);
    p.options.set(120, Buffer.alloc(62, 120)); // 64 bytes: no room for END
    const over = encodePacket(p, 576);
    expect(over.dropped).toEqual([120]);
    expect(decodeOk(over.buffer).file).toBe('undionly.kpxe');
  });

  it('never moves option 82 out of the options field: dropped rather than overloaded', () => {
    const p = { ...base(), file: '' };
    fullField(p);
    p.options.set(82, Buffer.from('0102aabb', 'hex'));
    const { buffer, dropped } = encodePacket(p, 576);
    expect(dropped).toEqual([82]);
    const back = decodeOk(buffer);
    expect(back.options.has(52)).toBe(false);
    expect(back.options.has(82)).toBe(false);
  });

  it('writes option 52 after the others when there is no message type', () => {
    const p = base();
    p.options.set(43, Buffer.alloc(300, 0x2b)); // 304 bytes: the field full once 52 is needed
    p.options.set(120, Buffer.alloc(10, 120));
    const { buffer, dropped } = encodePacket(p, 576);
    expect(dropped).toEqual([]);
    const back = decodeOk(buffer);
    expect(back.options.get(52)).toEqual(Buffer.of(2));
    expect(back.options.get(120)).toEqual(Buffer.alloc(10, 120));
  });

  it('truncates sname to 63 and file to 127 characters, each NUL-terminated, and chaddr to 16 bytes', () => {
    const p = { ...base(), sname: 'x'.repeat(100), file: 'y'.repeat(200) };
    p.options.set(53, Buffer.of(2));
    const back = decodeOk(encodePacket(p).buffer);
    expect([back.sname, back.file]).toEqual(['x'.repeat(63), 'y'.repeat(127)]);

    const long = { ...base(), chaddr: Buffer.alloc(20, 0x41), hlen: 16 };
    long.options.set(53, Buffer.of(2));
    const chaddrBack = decodeOk(encodePacket(long).buffer);
    expect(chaddrBack.chaddr).toEqual(Buffer.alloc(16, 0x41));
    expect(chaddrBack.sname).toBe('');
  });
});

describe('decoder: fields and option areas at their limits', () => {
  it('reads sname and file as NUL-terminated text, or the whole field when no NUL ends it', () => {
    const short = decodeOk(
      request([53, 1, 1, 255], (b) => {
        b.write('pxe.example', 44, 'latin1');
        b.write('bootx64.efi', 108, 'latin1');
      }),
    );
    expect([short.sname, short.file]).toEqual(['pxe.example', 'bootx64.efi']);
    const full = decodeOk(
      request([53, 1, 1, 255], (b) => {
        b.fill(0x62, 44, 108);
        b.fill(0x61, 108, 236);
      }),
    );
    expect([full.sname, full.file]).toEqual(['b'.repeat(64), 'a'.repeat(128)]);
  });

  it('accepts a message of header and cookie only (240 bytes), and hlen 16 (the whole chaddr field)', () => {
    const bare = decodeOk(request([]));
    expect(bare.options.size).toBe(0);
    const wide = decodeOk(
      request([53, 1, 1, 255], (b) => {
        b[2] = 16;
        b.fill(0x41, 28, 44);
      }),
    );
    expect(wide.chaddr).toEqual(Buffer.alloc(16, 0x41));
  });

  it('accepts an options area that ends at the last byte of the datagram without END', () => {
    const p = decodeOk(request([53, 1, 1, 61, 2, 1, 2]));
    expect(p.options.get(61)?.toString('hex')).toBe('0102');
  });

  it('overload 1 reads options from file only, to its last byte (PAD before, no END); sname stays text', () => {
    const p = decodeOk(
      request([53, 1, 1, 52, 1, 1, 255], (b) => {
        b.write('srv', 44, 'latin1');
        Buffer.from([12, 2, 0x68, 0x69]).copy(b, 232); // PAD from 108, the option in the field's last 4 bytes
      }),
    );
    expect([...p.options.keys()]).toEqual([53, 52, 12]);
    expect([p.sname, p.file]).toEqual(['srv', '']);
  });

  it('overload 2 reads options from sname only (no END, PAD to its end); file stays text', () => {
    const p = decodeOk(
      request([53, 1, 1, 52, 1, 2, 255], (b) => {
        Buffer.from([12, 2, 0x68, 0x69]).copy(b, 44);
        b.write('boot.efi', 108, 'latin1');
      }),
    );
    expect([...p.options.keys()]).toEqual([53, 52, 12]);
    expect([p.sname, p.file]).toEqual(['', 'boot.efi']);
  });

  it('refuses option 52 of 0 or of two bytes, accepts 1, and names the overloaded field a bad option is in', () => {
    const outcome = (opts: number[], extra?: (b: Buffer) => void): string => {
      const r = decodePacket(request(opts, extra));
      return r.ok ? 'ok' : r.reason;
    };
    expect(outcome([53, 1, 1, 52, 1, 0, 255])).toBe('option 52 (overload) must be one byte of 1, 2 or 3');
    expect(outcome([53, 1, 1, 52, 2, 1, 0, 255])).toBe('option 52 (overload) must be one byte of 1, 2 or 3');
    expect(outcome([53, 1, 1, 52, 1, 1, 255])).toBe('ok');
    expect(outcome([53, 1, 1, 52, 1, 1, 255], (b) => Buffer.from([12, 200, 1]).copy(b, 108))).toBe(
      'in overloaded file field: option 12 length 200 runs past the end of the packet',
    );
    expect(outcome([53, 1, 1, 52, 1, 2, 255], (b) => Buffer.from([12, 200, 1]).copy(b, 44))).toBe(
      'in overloaded sname field: option 12 length 200 runs past the end of the packet',
    );
  });
});
