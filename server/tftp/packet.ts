// TFTP packet codec (RFC 1350 §5, RFC 2347 OACK). Pure functions over Buffers;
// parseTftpPacket never throws.

export const TftpOpcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const TftpError = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_NEGOTIATION: 8,
} as const;

export interface TftpRequest {
  op: 'rrq' | 'wrq';
  filename: string;
  mode: string;
  /** Options in request order, names as the client spelled them. */
  options: Array<[string, string]>;
}

export type TftpPacket =
  | TftpRequest
  | { op: 'data'; block: number; data: Buffer }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: Array<[string, string]> };

export type ParseResult = { ok: true; packet: TftpPacket } | { ok: false; reason: string };

/** Splits NUL-terminated strings; a missing final NUL is tolerated (some clients send trailing garbage). */
function cStrings(buf: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0) {
      out.push(buf.subarray(start, i).toString('latin1'));
      start = i + 1;
    }
  }
  if (start < buf.length) out.push(buf.subarray(start).toString('latin1'));
  return out;
}

function optionPairs(strings: string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < strings.length; i += 2) pairs.push([strings[i] as string, strings[i + 1] as string]);
  return pairs;
}

export function parseTftpPacket(buf: Buffer): ParseResult {
  if (buf.length < 2) return { ok: false, reason: `datagram of ${buf.length} bytes has no opcode` };
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ: {
      const strings = cStrings(buf.subarray(2));
      if (strings.length < 2 || !strings[0]) return { ok: false, reason: 'request without filename and mode' };
      return {
        ok: true,
        packet: {
          op: opcode === TftpOpcode.RRQ ? 'rrq' : 'wrq',
          filename: strings[0],
          mode: strings[1] as string,
          options: optionPairs(strings.slice(2)),
        },
      };
    }
    case TftpOpcode.DATA:
      if (buf.length < 4) return { ok: false, reason: 'DATA shorter than 4 bytes' };
      return { ok: true, packet: { op: 'data', block: buf.readUInt16BE(2), data: buf.subarray(4) } };
    case TftpOpcode.ACK:
      if (buf.length < 4) return { ok: false, reason: 'ACK shorter than 4 bytes' };
      return { ok: true, packet: { op: 'ack', block: buf.readUInt16BE(2) } };
    case TftpOpcode.ERROR:
      if (buf.length < 4) return { ok: false, reason: 'ERROR shorter than 4 bytes' };
      return { ok: true, packet: { op: 'error', code: buf.readUInt16BE(2), message: cStrings(buf.subarray(4))[0] ?? '' } };
    case TftpOpcode.OACK:
      return { ok: true, packet: { op: 'oack', options: optionPairs(cStrings(buf.subarray(2))) } };
    default:
      return { ok: false, reason: `unknown opcode ${opcode}` };
  }
}

export function dataHeader(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(TftpOpcode.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(TftpOpcode.ACK, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([0, TftpOpcode.ERROR, (code >> 8) & 0xff, code & 0xff]), Buffer.from(`${message}\0`, 'latin1')]);
}

export function encodeOack(options: Array<[string, string]>): Buffer {
  return Buffer.concat([Buffer.from([0, TftpOpcode.OACK]), ...options.map(([k, v]) => Buffer.from(`${k}\0${v}\0`, 'latin1'))]);
}

export function encodeRequest(op: 'rrq' | 'wrq', filename: string, mode: string, options: Array<[string, string]> = []): Buffer {
  const opcode = op === 'rrq' ? TftpOpcode.RRQ : TftpOpcode.WRQ;
  return Buffer.concat([
    Buffer.from([0, opcode]),
    Buffer.from(`${filename}\0${mode}\0`, 'latin1'),
    ...options.map(([k, v]) => Buffer.from(`${k}\0${v}\0`, 'latin1')),
  ]);
}
