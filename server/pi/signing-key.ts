// The RSA-2048 key that signs every Pi node's boot.img (server/pi/boot-sig.ts):
// `pi.signingKey` (a PEM file the operator keeps), or else one bootfarm generates
// on first use into server.stateDir (pi-signing-key.pem, mode 0600). Its public
// half is what `bootfarm pi eeprom-config` prints for `rpi-eeprom-config --pubkey`:
// a Pi 4/5 EEPROM with a custom HTTP_HOST boots only an image signed by the key
// programmed into it (boot-http.adoc, "Keys").
import { constants, createPrivateKey, createPublicKey, generateKeyPair, privateEncrypt, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/** The generated key's file inside server.stateDir. */
export const GENERATED_KEY_FILE = 'pi-signing-key.pem';

/** Where the key is: pi.signingKey, or the generated one in the state directory. */
export function signingKeyFile(config: { server: { stateDir: string }; pi: { signingKey: string | undefined } }): string {
  return config.pi.signingKey ?? path.join(config.server.stateDir, GENERATED_KEY_FILE);
}

/** The key in a PEM text, if it is an RSA-2048 private key (all the bootloader verifies); else why not. */
export function parseSigningKey(pem: string | Buffer): KeyObject | string {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    return `not a PEM private key (${(err as Error).message})`;
  }
  if (key.asymmetricKeyType !== 'rsa')
    return `a ${key.asymmetricKeyType ?? 'non-RSA'} key, expected RSA (the Pi bootloader verifies RSA-2048 only)`;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits !== 2048) return `an RSA-${bits ?? '?'} key, expected RSA-2048 (the Pi bootloader verifies RSA-2048 only)`;
  return key;
}

/**
 * For `config check`: why the key at `file` cannot sign, or undefined when it can.
 * A missing generated key is fine (it is made on first use); a missing configured one is not.
 */
export function signingKeyProblem(file: string, generated: boolean): string | undefined {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (generated && code === 'ENOENT') return undefined;
    return `cannot read ${file}: ${code ?? (err as Error).message}`;
  }
  const key = parseSigningKey(pem);
  return typeof key === 'string' ? `${file} is ${key}` : undefined;
}

const generate = promisify(generateKeyPair);

/** The signing key, generated into the state directory when pi.signingKey is unset and none is there yet. */
export async function loadOrCreateSigningKey(config: Parameters<typeof signingKeyFile>[0]): Promise<KeyObject> {
  const file = signingKeyFile(config);
  let pem: Buffer | undefined;
  try {
    pem = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || config.pi.signingKey !== undefined)
      throw new Error(`Pi signing key ${file}: ${(err as Error).message}`);
  }
  if (pem === undefined) {
    const { privateKey } = await generate('rsa', { modulusLength: 2048 });
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const text = privateKey.export({ type: 'pkcs8', format: 'pem' });
    try {
      // 'wx': a key another process wrote meanwhile is kept, never replaced (its public half may be in EEPROMs already).
      await writeFile(file, text, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`Pi signing key ${file}: ${(err as Error).message}`);
    }
    pem = await readFile(file);
  }
  const key = parseSigningKey(pem);
  if (typeof key === 'string') throw new Error(`Pi signing key ${file} is ${key}`);
  return key;
}

/** The public key as PEM (SubjectPublicKeyInfo), the form `rpi-eeprom-config --pubkey` reads. */
export function publicKeyPem(key: KeyObject): string {
  return createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
}

// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1): what PKCS#1 v1.5 signs before the digest.
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * The PKCS#1 v1.5 signature of a SHA-256 already computed: the same bytes as
 * `openssl dgst -sha256 -sign` over the data, without holding the data (boot.img
 * is hashed incrementally, server/pi/boot-image.ts).
 */
export function signSha256(key: KeyObject, digest: Buffer): Buffer {
  if (digest.length !== 32) throw new Error(`a SHA-256 is 32 bytes, got ${digest.length}`);
  return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
}
