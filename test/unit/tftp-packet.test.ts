// The TFTP packet codec byte for byte (RFC 1350 §5, RFC 2347): what each
// datagram decodes to, the refusals of short or unknown ones, and the exact
// bytes of what bootfarm sends.
import { describe, expect, it } from 'vitest';
import { dataHeader, encodeAck, encodeError, encodeOack, encodeRequest, parseTftpPacket, TftpError } from '../../server/tftp/packet.js';

const bytes = (...parts: Array<number[] | string>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

describe('TFTP packet decoding', () => {
  it('a read request: file name, mode and options in order, names as spelled', () => {
    expect(parseTftpPacket(bytes([0, 1], 'pxelinux.0\0octet\0BlkSize\x001468\0tsize\x000\0'))).toEqual({
      ok: true,
      packet: {
        op: 'rrq',
        filename: 'pxelinux.0',
        mode: 'octet',
        options: [
          ['BlkSize', '1468'],
          ['tsize', '0'],
        ],
      },
    });
  });

  it('a write request is told apart from a read request', () => {
    expect(parseTftpPacket(bytes([0, 2], 'f\0netascii\0'))).toEqual({
      ok: true,
      packet: { op: 'wrq', filename: 'f', mode: 'netascii', options: [] },
    });
  });

  it('a request whose last string lacks its NUL still decodes; an option name without a value is dropped', () => {
    expect(parseTftpPacket(bytes([0, 1], 'a\0octet\0blksize\x00512'))).toEqual({
      ok: true,
      packet: { op: 'rrq', filename: 'a', mode: 'octet', options: [['blksize', '512']] },
    });
    expect(parseTftpPacket(bytes([0, 1], 'a\0octet\0blksize\0'))).toEqual({
      ok: true,
      packet: { op: 'rrq', filename: 'a', mode: 'octet', options: [] },
    });
  });

  it('refuses a request without a file name or a mode, and datagrams too short for their opcode', () => {
    expect(parseTftpPacket(bytes([0, 1], '\0octet\0'))).toEqual({ ok: false, reason: 'request without filename and mode' });
    expect(parseTftpPacket(bytes([0, 1], 'file\0'))).toEqual({ ok: false, reason: 'request without filename and mode' });
    expect(parseTftpPacket(bytes([0]))).toEqual({ ok: false, reason: 'datagram of 1 bytes has no opcode' });
    expect(parseTftpPacket(bytes([]))).toEqual({ ok: false, reason: 'datagram of 0 bytes has no opcode' });
    expect(parseTftpPacket(bytes([0, 3, 0]))).toEqual({ ok: false, reason: 'DATA shorter than 4 bytes' });
    expect(parseTftpPacket(bytes([0, 4, 0]))).toEqual({ ok: false, reason: 'ACK shorter than 4 bytes' });
    expect(parseTftpPacket(bytes([0, 5, 0]))).toEqual({ ok: false, reason: 'ERROR shorter than 4 bytes' });
    expect(parseTftpPacket(bytes([0, 7, 0, 0]))).toEqual({ ok: false, reason: 'unknown opcode 7' });
    expect(parseTftpPacket(bytes([1, 1, 0, 0]))).toEqual({ ok: false, reason: 'unknown opcode 257' });
  });

  it('DATA, ACK, ERROR and OACK carry their block, code, message and options', () => {
    expect(parseTftpPacket(bytes([0, 3, 0x12, 0x34, 9, 8]))).toEqual({
      ok: true,
      packet: { op: 'data', block: 0x1234, data: Buffer.from([9, 8]) },
    });
    expect(parseTftpPacket(bytes([0, 3, 0, 1]))).toEqual({ ok: true, packet: { op: 'data', block: 1, data: Buffer.alloc(0) } });
    expect(parseTftpPacket(bytes([0, 4, 0xff, 0xfe]))).toEqual({ ok: true, packet: { op: 'ack', block: 0xfffe } });
    expect(parseTftpPacket(bytes([0, 5, 0, 8], 'no\0junk'))).toEqual({ ok: true, packet: { op: 'error', code: 8, message: 'no' } });
    expect(parseTftpPacket(bytes([0, 5, 1, 2]))).toEqual({ ok: true, packet: { op: 'error', code: 0x102, message: '' } });
    expect(parseTftpPacket(bytes([0, 6], 'blksize\x001024\0'))).toEqual({
      ok: true,
      packet: { op: 'oack', options: [['blksize', '1024']] },
    });
    // Two bytes are an opcode: each decides for itself what the rest must hold.
    expect(parseTftpPacket(bytes([0, 6]))).toEqual({ ok: true, packet: { op: 'oack', options: [] } });
    expect(parseTftpPacket(bytes([0, 4]))).toEqual({ ok: false, reason: 'ACK shorter than 4 bytes' });
  });
});

describe('TFTP packet encoding', () => {
  it('DATA header and ACK carry the block number modulo 65536', () => {
    expect(dataHeader(1)).toEqual(Buffer.from([0, 3, 0, 1]));
    expect(dataHeader(0x10203)).toEqual(Buffer.from([0, 3, 2, 3]));
    expect(encodeAck(0)).toEqual(Buffer.from([0, 4, 0, 0]));
    expect(encodeAck(0x1fffe)).toEqual(Buffer.from([0, 4, 0xff, 0xfe]));
  });

  it('ERROR: the code in two bytes, then the message and its NUL', () => {
    expect(encodeError(TftpError.OPTION_NEGOTIATION, 'bad')).toEqual(bytes([0, 5, 0, 8], 'bad\0'));
    expect(encodeError(0x1234, '')).toEqual(bytes([0, 5, 0x12, 0x34, 0]));
  });

  it('OACK and requests: NUL-terminated strings after the opcode', () => {
    expect(
      encodeOack([
        ['tsize', '10'],
        ['blksize', '512'],
      ]),
    ).toEqual(bytes([0, 6], 'tsize\x0010\0blksize\x00512\0'));
    expect(encodeOack([])).toEqual(Buffer.from([0, 6]));
    expect(encodeRequest('rrq', 'a/b', 'octet', [['tsize', '0']])).toEqual(bytes([0, 1], 'a/b\0octet\0tsize\x000\0'));
    expect(encodeRequest('wrq', 'f', 'octet')).toEqual(bytes([0, 2], 'f\0octet\0'));
  });
});
