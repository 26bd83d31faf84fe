// The option readers of server/dhcp/codec/readers.ts treat a wrong-length or
// out-of-range option as not sent: every byte of a DHCP packet is the
// sender's word. Each case is one length or value on either side of the rule.
import { describe, expect, it } from 'vitest';
import {
  readClientId,
  readMaxMessageSize,
  readMessageType,
  readParameterRequestList,
  readRequestedIp,
  readServerId,
  readVendorClass,
} from '../../server/dhcp/codec/readers.js';
import {
  describeMalformed,
  readClientArch,
  readClientMachineId,
  readClientNdi,
  readIpxeEncapsulated,
  readRepeatedSerialMachineId,
  readUserClass,
} from '../../server/dhcp/codec/readers.js';

const opts = (code: number, bytes: number[]) => new Map([[code, Buffer.from(bytes)]]);

describe('DHCP option readers: a malformed option reads as not sent', () => {
  it('options 50 and 54 are an address only at exactly 4 bytes', () => {
    expect(readRequestedIp(opts(50, [10, 9, 0, 7]))).toBe('10.9.0.7');
    expect(readRequestedIp(opts(50, [10, 9, 0]))).toBeUndefined();
    expect(readRequestedIp(opts(50, [10, 9, 0, 7, 1]))).toBeUndefined();
    expect(readServerId(opts(54, [10, 9, 0, 1]))).toBe('10.9.0.1');
    expect(readServerId(opts(54, [10, 9, 0, 1, 0]))).toBeUndefined();
    expect(readRequestedIp(new Map())).toBeUndefined();
  });

  it('option 53 is a message type only as one byte from 1 to 8', () => {
    expect(readMessageType(opts(53, [1]))).toBe(1);
    expect(readMessageType(opts(53, [8]))).toBe(8);
    expect(readMessageType(opts(53, [0]))).toBeUndefined();
    expect(readMessageType(opts(53, [9]))).toBeUndefined();
    expect(readMessageType(opts(53, [1, 1]))).toBeUndefined();
    expect(readMessageType(new Map())).toBeUndefined();
  });

  it('options 55 and 60 count only when not empty; 61 needs a type byte and an identifier', () => {
    expect(readParameterRequestList(opts(55, [1, 3, 67]))).toEqual([1, 3, 67]);
    expect(readParameterRequestList(opts(55, []))).toBeUndefined();
    expect(readVendorClass(opts(60, [...Buffer.from('PXEClient')]))).toBe('PXEClient');
    expect(readVendorClass(opts(60, []))).toBeUndefined();
    expect(readClientId(opts(61, [1, 0xaa]))).toBe('01aa');
    expect(readClientId(opts(61, [1]))).toBeUndefined();
  });

  it('option 57 is a size only as 2 bytes of at least 576 (RFC 2132 §9.10)', () => {
    expect(readMaxMessageSize(opts(57, [0x02, 0x40]))).toBe(576);
    expect(readMaxMessageSize(opts(57, [0x02, 0x3f]))).toBeUndefined();
    expect(readMaxMessageSize(opts(57, [0x02, 0x40, 0x00]))).toBeUndefined();
  });
});

describe('DHCP option readers: lists, identifiers and encapsulated options', () => {
  const text = (t: string) => [...Buffer.from(t, 'latin1')];

  it("option 77 is RFC 3004's list only when its lengths add up exactly, else one raw string; empty is not sent", () => {
    expect(readUserClass(opts(77, [3, ...text('foo'), 4, ...text('iPXE')]))).toEqual(['foo', 'iPXE']);
    expect(readUserClass(opts(77, [3, ...text('foo'), 4, ...text('iPX')]))).toEqual(['\x03foo\x04iPX']);
    expect(readUserClass(opts(77, [4, ...text('iPXE'), 0]))).toEqual(['\x04iPXE\x00']);
    expect(readUserClass(opts(77, []))).toBeUndefined();
  });

  it('option 93 is one or more 16-bit codes: not empty, not an odd length', () => {
    expect(readClientArch(opts(93, [0, 7]))).toEqual([7]);
    expect(readClientArch(opts(93, [0, 7, 0, 11]))).toEqual([7, 11]);
    expect(readClientArch(opts(93, [0, 7, 0]))).toBeUndefined();
    expect(readClientArch(opts(93, []))).toBeUndefined();
  });

  it('option 94 is exactly 3 bytes; option 97 is type 0 and 16 bytes', () => {
    expect(readClientNdi(opts(94, [1, 3, 16]))).toEqual({ type: 1, major: 3, minor: 16 });
    expect(readClientNdi(opts(94, [1, 3]))).toBeUndefined();
    expect(readClientNdi(opts(94, [1, 3, 16, 0]))).toBeUndefined();
    const id = Array.from({ length: 16 }, (_, i) => i);
    expect(readClientMachineId(opts(97, [0, ...id]))).toEqual(Buffer.from(id));
    expect(readClientMachineId(opts(97, [1, ...id]))).toBeUndefined();
  });

  it('option 97 is a repeated serial only when all four words match', () => {
    const word = [0x78, 0x56, 0x34, 0x12];
    expect(readRepeatedSerialMachineId(opts(97, [0, ...word, ...word, ...word, ...word]))).toBe('12345678');
    expect(readRepeatedSerialMachineId(opts(97, [0, ...word, ...word, ...word, 0, 0, 0, 0]))).toBeUndefined();
    expect(readRepeatedSerialMachineId(opts(97, [0, ...word, 0, 0, 0, 0, ...word, ...word]))).toBeUndefined();
  });

  it('option 175 skips PAD, stops at END, and is refused whole when a sub-option runs past its end', () => {
    const read = (bytes: number[]) => {
      const m = readIpxeEncapsulated(opts(175, bytes));
      return m && Object.fromEntries([...m].map(([code, v]) => [code, [...v]]));
    };
    expect(read([0x13, 1, 1, 0x24, 2, 5, 6])).toEqual({ 0x13: [1], 0x24: [5, 6] });
    expect(read([0, 0x13, 1, 1, 255, 0x24, 1, 1])).toEqual({ 0x13: [1] });
    expect(read([0x13, 1, 1, 0x24])).toBeUndefined();
    expect(read([0x13, 1, 1, 0x24, 2, 5])).toBeUndefined();
    expect(readIpxeEncapsulated(new Map())).toBeUndefined();
  });

  it('describeMalformed names nothing in a well-formed or empty set of options', () => {
    expect(describeMalformed(new Map())).toEqual([]);
    const good = new Map([
      [50, Buffer.from([10, 9, 0, 7])],
      [53, Buffer.of(1)],
      [57, Buffer.from([0x05, 0xdc])],
      [93, Buffer.from([0, 7])],
      [94, Buffer.from([1, 3, 16])],
    ]);
    expect(describeMalformed(good)).toEqual([]);
    expect(describeMalformed(opts(93, []))).toEqual(['option 93 has odd length 0']);
    expect(describeMalformed(opts(94, [1, 3]))).toEqual(['option 94 has length 2, expected 3']);
    expect(describeMalformed(opts(57, [0x01, 0x00, 0x00]))).toEqual(['option 57 has length 3, expected 2']);
  });
});
