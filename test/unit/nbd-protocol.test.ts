// NBD handshake encoders byte for byte (the NBD protocol document, "Option
// haggling"): what a client parses out of a LIST reply.
import { describe, expect, it } from 'vitest';
import { listEntry } from '../../server/nbd/protocol.js';

describe('NBD protocol encoding', () => {
  it('a LIST entry is the name length in four bytes, then the UTF-8 name', () => {
    expect(listEntry('ab')).toEqual(Buffer.from([0, 0, 0, 2, 0x61, 0x62]));
    expect(listEntry('é')).toEqual(Buffer.from([0, 0, 0, 2, 0xc3, 0xa9]));
    expect(listEntry('')).toEqual(Buffer.from([0, 0, 0, 0]));
  });
});
