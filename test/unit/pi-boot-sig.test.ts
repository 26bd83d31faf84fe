// boot.sig as rpi-eeprom-digest writes it (server/pi/boot-sig.ts), byte for byte,
// and the signature bootfarm computes from a digest alone (server/pi/signing-key.ts)
// against Node's own RSA-SHA256 over the whole data.
import { describe, expect, it } from 'vitest';
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { decodeBootSig, encodeBootSig } from '../../server/pi/boot-sig.js';
import { parseSigningKey, publicKeyPem, signSha256 } from '../../server/pi/signing-key.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const data = Buffer.from('a boot.img stand-in\n'.repeat(1000));
const digest = createHash('sha256').update(data).digest();

describe('boot.sig codec', () => {
  it('writes the three lines of rpi-eeprom-digest -k: sha256sum, ts, rsa2048 as one hex line', () => {
    const rsa = signSha256(privateKey, digest);
    const text = encodeBootSig({ sha256: digest, ts: 1733500000, rsa2048: rsa }).toString('ascii');
    expect(text).toBe(`${digest.toString('hex')}\nts: 1733500000\nrsa2048: ${rsa.toString('hex')}\n`);
    expect(text.split('\n').map((l) => l.length)).toEqual([64, 14, 9 + 512, 0]);
  });

  it('writes the two lines of an unsigned digest (rpi-eeprom-digest without -k)', () => {
    expect(encodeBootSig({ sha256: Buffer.alloc(32, 0xab), ts: 0 }).toString('ascii')).toBe(`${'ab'.repeat(32)}\nts: 0\n`);
  });

  it('reads back what it writes', () => {
    const rsa = signSha256(privateKey, digest);
    const decoded = decodeBootSig(encodeBootSig({ sha256: digest, ts: 42, rsa2048: rsa }));
    expect(decoded).toEqual({ ok: true, sig: { sha256: digest, ts: 42, rsa2048: rsa } });
  });

  it.each([
    ['upper-case hex', (t: string) => t.replace(/^[0-9a-f]{64}/, (h) => h.toUpperCase())],
    ['CRLF line ends', (t: string) => t.replace(/\n/g, '\r\n')],
    ['no final newline', (t: string) => t.slice(0, -1)],
    ['a short signature', (t: string) => t.replace(/rsa2048: ([0-9a-f]{2})/, 'rsa2048: ')],
    ['a fourth line', (t: string) => `${t}extra: 1\n`],
    ['a missing ts', (t: string) => t.replace(/ts: \d+\n/, '')],
    ['a NUL byte', (t: string) => t.replace('ts:', 'ts\0')],
    ['a 5000-byte file', (t: string) => t + ' '.repeat(5000)],
  ])('refuses %s', (_what, mutate) => {
    const good = encodeBootSig({ sha256: digest, ts: 7, rsa2048: signSha256(privateKey, digest) }).toString('ascii');
    expect(decodeBootSig(Buffer.from(mutate(good), 'ascii')).ok).toBe(false);
  });
});

describe('signing from a digest', () => {
  it('gives the bytes of RSA-SHA256 PKCS#1 v1.5 over the data (openssl dgst -sha256 -sign)', () => {
    expect(signSha256(privateKey, digest).equals(sign('sha256', data, privateKey))).toBe(true);
    expect(verify('sha256', data, createPublicKey(publicKeyPem(privateKey)), signSha256(privateKey, digest))).toBe(true);
  });

  it('takes RSA-2048 only', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    expect(parseSigningKey(small)).toMatch(/RSA-1024 key, expected RSA-2048/);
    expect(parseSigningKey(ec)).toMatch(/ec key, expected RSA/);
    expect(parseSigningKey('not a key')).toMatch(/not a PEM private key/);
    expect(typeof parseSigningKey(privateKey.export({ type: 'pkcs1', format: 'pem' }))).toBe('object');
  });
});
