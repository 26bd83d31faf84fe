// boot.sig, the file a Raspberry Pi 4/5 EEPROM fetches beside boot.img in HTTP
// boot (BOOT_ORDER nibble 7), in the exact form rpi-eeprom-digest writes it
// (raspberrypi/rpi-eeprom: rpi-eeprom-digest, writeSig):
//
//   <sha256 of boot.img, 64 lower-case hex digits>\n
//   ts: <unix time, decimal>\n
//   rsa2048: <PKCS#1 v1.5 RSA-2048 signature of that SHA-256, 512 lower-case hex digits>\n
//
// The first line is `sha256sum | awk '{print $1}'`, the last `xxd -c 4096 -p` of
// `openssl dgst -sign KEY -sha256`. Pure over Buffers. The decoder meets a file
// from the network (the scripted EEPROM, server/lab/pi/http-phase.ts): it accepts
// that form and nothing else, within a small size bound.

export interface BootSig {
  /** SHA-256 of boot.img, 32 bytes. */
  sha256: Buffer;
  /** Seconds since the epoch when it was signed. */
  ts: number;
  /** The RSA-2048 signature, 256 bytes; absent in an unsigned digest file. */
  rsa2048?: Buffer | undefined;
}

/** The largest boot.sig read: the three lines are under 700 bytes. */
const BOOT_SIG_MAX_BYTES = 4096;

export function encodeBootSig(sig: BootSig): Buffer {
  if (sig.sha256.length !== 32) throw new Error(`boot.sig: a SHA-256 is 32 bytes, got ${sig.sha256.length}`);
  if (!Number.isSafeInteger(sig.ts) || sig.ts < 0) throw new Error(`boot.sig: ts must be a whole number of seconds, got ${sig.ts}`);
  if (sig.rsa2048 !== undefined && sig.rsa2048.length !== 256)
    throw new Error(`boot.sig: an RSA-2048 signature is 256 bytes, got ${sig.rsa2048.length}`);
  const lines = [sig.sha256.toString('hex'), `ts: ${sig.ts}`];
  if (sig.rsa2048) lines.push(`rsa2048: ${sig.rsa2048.toString('hex')}`);
  return Buffer.from(`${lines.join('\n')}\n`, 'ascii');
}

export type DecodedBootSig = { ok: true; sig: BootSig } | { ok: false; reason: string };

const HEX64 = /^[0-9a-f]{64}$/;
const TS = /^ts: (\d{1,15})$/;
const RSA = /^rsa2048: ([0-9a-f]{512})$/;

/** Reads boot.sig as rpi-eeprom-digest writes it; anything else (extra lines, upper-case hex, CRLF, a short signature) is refused. */
export function decodeBootSig(data: Buffer): DecodedBootSig {
  if (data.length > BOOT_SIG_MAX_BYTES) return { ok: false, reason: `boot.sig is ${data.length} bytes, more than ${BOOT_SIG_MAX_BYTES}` };
  for (const byte of data)
    if (byte !== 0x0a && (byte < 0x20 || byte > 0x7e)) return { ok: false, reason: 'boot.sig holds a byte that is not printable ASCII' };
  const text = data.toString('ascii');
  if (!text.endsWith('\n')) return { ok: false, reason: 'boot.sig does not end with a newline' };
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 2 || lines.length > 3) return { ok: false, reason: `boot.sig has ${lines.length} lines, expected 2 or 3` };
  const [digest, ts, rsa] = lines as [string, string, string | undefined];
  if (!HEX64.test(digest)) return { ok: false, reason: 'boot.sig line 1 is not a SHA-256 as 64 lower-case hex digits' };
  const tsMatch = TS.exec(ts);
  if (!tsMatch) return { ok: false, reason: 'boot.sig line 2 is not "ts: <unix time>"' };
  let signature: Buffer | undefined;
  if (rsa !== undefined) {
    const rsaMatch = RSA.exec(rsa);
    if (!rsaMatch) return { ok: false, reason: 'boot.sig line 3 is not "rsa2048: <512 lower-case hex digits>"' };
    signature = Buffer.from(rsaMatch[1] as string, 'hex');
  }
  return { ok: true, sig: { sha256: Buffer.from(digest, 'hex'), ts: Number(tsMatch[1]), rsa2048: signature } };
}
