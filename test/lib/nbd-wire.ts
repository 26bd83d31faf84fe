// Client-side NBD messages for tests and attacker scripts: what a client sends,
// and a parser for what the server answers (option replies, simple replies).
export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};

/** Client flags: FIXED_NEWSTYLE | NO_ZEROES. */
export const CLIENT_FLAGS = u32(3);
export const GREETING_LENGTH = 18;

export const option = (o: number, data: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([Buffer.from('IHAVEOPT'), u32(o), u32(data.length), data]);
export const goOption = (name: string): Buffer => {
  const n = Buffer.from(name);
  return option(7, Buffer.concat([u32(n.length), n, u16(0)]));
};
export const listOption = (): Buffer => option(3);

export const REQUEST_MAGIC = 0x25609513;
export const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6 } as const;
export const request = (type: number, cookie: bigint, offset: bigint, length: number, magic = REQUEST_MAGIC): Buffer =>
  Buffer.concat([u32(magic), u16(0), u16(type), u64(cookie), u64(offset), u32(length)]);

const OPTION_REPLY_MAGIC = 0x0003e889045565a9n;
const SIMPLE_REPLY_MAGIC = 0x67446698;
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
} as const;

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}
export interface SimpleReply {
  error: number;
  cookie: bigint;
}

/** Splits the option replies out of `bytes` (after the greeting); stops at the first incomplete or non-option-reply bytes. */
export function parseOptionReplies(bytes: Buffer): { replies: OptionReply[]; rest: Buffer } {
  const replies: OptionReply[] = [];
  let at = 0;
  while (bytes.length - at >= 20 && bytes.readBigUInt64BE(at) === OPTION_REPLY_MAGIC) {
    const length = bytes.readUInt32BE(at + 16);
    if (bytes.length - at < 20 + length) break;
    replies.push({
      option: bytes.readUInt32BE(at + 8),
      type: bytes.readUInt32BE(at + 12),
      data: bytes.subarray(at + 20, at + 20 + length),
    });
    at += 20 + length;
  }
  return { replies, rest: bytes.subarray(at) };
}

/** Parses simple replies that carry no data (errors, FLUSH, or reads whose length the caller skips with `dataLength`). */
export function parseSimpleReplies(bytes: Buffer, dataLength: (r: SimpleReply) => number = () => 0): SimpleReply[] {
  const out: SimpleReply[] = [];
  let at = 0;
  while (bytes.length - at >= 16 && bytes.readUInt32BE(at) === SIMPLE_REPLY_MAGIC) {
    const reply = { error: bytes.readUInt32BE(at + 4), cookie: bytes.readBigUInt64BE(at + 8) };
    out.push(reply);
    at += 16 + (reply.error === 0 ? dataLength(reply) : 0);
  }
  return out;
}
