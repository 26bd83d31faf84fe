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
