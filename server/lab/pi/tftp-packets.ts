// TFTP packets from the client side (RFC 1350, options RFC 2347-2349): building the
// Pi's RRQ/ACK/ERROR, parsing what the server sends, checking its OACK. Pure, and
// independent of bootfarm's own TFTP codec.

export const TftpOp = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export type TftpPacket =
  | { op: 'RRQ' | 'WRQ'; filename: string; mode: string; options: Array<[string, string]> }
  | { op: 'DATA'; block: number; data: Buffer }
  | { op: 'ACK'; block: number }
  | { op: 'ERROR'; code: number; message: string }
  | { op: 'OACK'; options: Array<[string, string]> }
  | { op: 'invalid'; reason: string };

/** RRQ: 00 01 path 00 mode 00 [name 00 value 00]... */
export function buildRrq(filename: string, options: ReadonlyArray<readonly [string, string]> = [], mode = 'octet'): Buffer {
  const fields = [filename, mode, ...options.flatMap(([k, v]) => [k, v])];
  for (const f of fields) if (f.includes('\0')) throw new Error('NUL in a TFTP request field');
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'latin1');
  const out = Buffer.concat([Buffer.of(0, TftpOp.RRQ), body]);
  if (out.length > 512) throw new Error(`RRQ for ${filename} is ${out.length} bytes, over RFC 2347's 512`);
  return out;
}

/** The Pi's RRQ: octet, tsize 0, blksize N. */
export function buildPiRrq(filename: string, blksize: number): Buffer {
  return buildRrq(filename, [
    ['tsize', '0'],
    ['blksize', String(blksize)],
  ]);
}

export function buildAck(block: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16BE(TftpOp.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function buildError(code: number, message: string): Buffer {
  const out = Buffer.alloc(4 + Buffer.byteLength(message, 'latin1') + 1);
  out.writeUInt16BE(TftpOp.ERROR, 0);
  out.writeUInt16BE(code, 2);
  out.write(message, 4, 'latin1');
  return out;
}

function splitNulFields(buf: Buffer): string[] | undefined {
  if (buf.length === 0) return [];
  if (buf[buf.length - 1] !== 0) return undefined;
  return buf
    .subarray(0, buf.length - 1)
    .toString('latin1')
    .split('\0');
}

export function parseTftpPacket(buf: Buffer): TftpPacket {
  if (buf.length < 2) return { op: 'invalid', reason: `${buf.length}-byte packet` };
  const op = buf.readUInt16BE(0);
  switch (op) {
    case TftpOp.DATA:
      if (buf.length < 4) return { op: 'invalid', reason: 'DATA shorter than 4 bytes' };
      return { op: 'DATA', block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case TftpOp.ACK:
      if (buf.length !== 4) return { op: 'invalid', reason: `ACK of ${buf.length} bytes` };
      return { op: 'ACK', block: buf.readUInt16BE(2) };
    case TftpOp.ERROR: {
      if (buf.length < 4) return { op: 'invalid', reason: 'ERROR shorter than 4 bytes' };
      const rest = buf.subarray(4);
      const nul = rest.indexOf(0);
      // A missing terminating NUL is tolerated in the message; the code is what matters.
      return { op: 'ERROR', code: buf.readUInt16BE(2), message: rest.subarray(0, nul < 0 ? rest.length : nul).toString('latin1') };
    }
    case TftpOp.OACK: {
      const fields = splitNulFields(buf.subarray(2));
      if (!fields) return { op: 'invalid', reason: 'OACK not NUL-terminated' };
      if (fields.length % 2 !== 0) return { op: 'invalid', reason: `OACK has an odd number of fields (${fields.length})` };
      const options: Array<[string, string]> = [];
      for (let i = 0; i < fields.length; i += 2) options.push([fields[i] as string, fields[i + 1] as string]);
      return { op: 'OACK', options };
    }
    case TftpOp.RRQ:
    case TftpOp.WRQ: {
      const fields = splitNulFields(buf.subarray(2));
      if (!fields || fields.length < 2 || fields.length % 2 !== 0) return { op: 'invalid', reason: 'malformed request' };
      const options: Array<[string, string]> = [];
      for (let i = 2; i < fields.length; i += 2) options.push([fields[i] as string, fields[i + 1] as string]);
      return { op: op === TftpOp.RRQ ? 'RRQ' : 'WRQ', filename: fields[0] as string, mode: fields[1] as string, options };
    }
    default:
      return { op: 'invalid', reason: `opcode ${op}` };
  }
}

export type OackVerdict = { ok: true; blksize: number; tsize: number | undefined; accepted: string[] } | { ok: false; reason: string };

/**
 * RFC 2347/2348/2349 from the client side: the OACK may only carry options the
 * client asked for, each once; blksize within 8..requested; tsize a whole number.
 */
export function checkOack(
  requested: ReadonlyArray<readonly [string, string]>,
  oack: ReadonlyArray<readonly [string, string]>,
): OackVerdict {
  const asked = new Map(requested.map(([k, v]) => [k.toLowerCase(), v]));
  const seen = new Set<string>();
  let blksize = 512;
  let tsize: number | undefined;
  for (const [rawName, value] of oack) {
    const name = rawName.toLowerCase();
    if (!asked.has(name)) return { ok: false, reason: `OACK carries option "${rawName}" that was not requested (RFC 2347)` };
    if (seen.has(name)) return { ok: false, reason: `OACK repeats option "${rawName}"` };
    seen.add(name);
    if (!/^\d+$/.test(value)) return { ok: false, reason: `OACK ${rawName}="${value}" is not a decimal number` };
    const n = Number(value);
    if (name === 'blksize') {
      const want = Number(asked.get(name));
      if (n < 8 || n > want) return { ok: false, reason: `OACK blksize ${n} outside 8..${want} (RFC 2348)` };
      blksize = n;
    } else if (name === 'tsize') {
      tsize = n;
    } else if (name === 'timeout') {
      if (String(n) !== asked.get(name))
        return { ok: false, reason: `OACK timeout ${n} differs from the requested ${asked.get(name)} (RFC 2349)` };
    }
  }
  return { ok: true, blksize, tsize, accepted: [...seen] };
}
