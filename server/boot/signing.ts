// `secureBoot: site`: a site that enrolled its own db key in its machines'
// firmware keeps iPXE under Secure Boot by signing it with that key
// (boot.signingKey). Signing happens in `bootfarm bootloaders`, next to the
// install of the unsigned iPXE, not at `bootfarm serve` start: the serving
// process faces the network segment and so never needs the private key (it may
// stay on the machine that installs bootloaders); docs/design.md, "Site-signed iPXE".
// Edge: reads the key files and runs sbsign (package sbsigntool), which takes an
// unencrypted key only, so an encrypted key is decrypted into a private
// temporary directory for the one sbsign run.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SigningKey } from '../config/types.js';
import { SetupError } from '../errors.js';
import type { InstalledBootloader } from './bootloaders.js';
import { SITE_SIGNED_IPXE } from './signing-files.js';

/** What is wrong with one of the signing key's files, with the file named. */
export class SigningKeyError extends Error {
  constructor(
    readonly file: string,
    readonly key: 'key' | 'cert' | 'passphraseFile',
    message: string,
  ) {
    super(message);
  }
}

function readOrExplain(file: string, key: SigningKeyError['key'], what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SigningKeyError(
      file,
      key,
      `cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** The key and certificate, parsed and checked to be one pair; throws SigningKeyError naming the file at fault. */
export function loadSigningKey(signing: SigningKey): { key: KeyObject; cert: X509Certificate } {
  const passphrase = signing.passphraseFile
    ? readOrExplain(signing.passphraseFile, 'passphraseFile', 'passphrase file')
        .toString('utf8')
        .replace(/\r?\n$/, '')
    : undefined;
  const keyPem = readOrExplain(signing.key, 'key', 'signing key');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem', passphrase });
  } catch (err) {
    const reason = (err as Error).message;
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem.toString('latin1'));
    const hint = encrypted
      ? signing.passphraseFile
        ? ' (wrong passphrase in boot.signingKey.passphraseFile?)'
        : ' (an encrypted key needs boot.signingKey.passphraseFile)'
      : '';
    throw new SigningKeyError(signing.key, 'key', `${signing.key} is not a usable PEM private key: ${reason}${hint}`);
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new SigningKeyError(
      signing.key,
      'key',
      `${signing.key} is a ${key.asymmetricKeyType ?? 'unknown'} key; UEFI db signatures are RSA`,
    );
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readOrExplain(signing.cert, 'cert', 'certificate'));
  } catch (err) {
    if (err instanceof SigningKeyError) throw err;
    throw new SigningKeyError(signing.cert, 'cert', `${signing.cert} is not a PEM X.509 certificate: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key))
    throw new SigningKeyError(
      signing.cert,
      'cert',
      `${signing.cert} (${cert.subject.replace(/\n/g, ', ')}) is not the certificate of the key ${signing.key}: their public keys differ`,
    );
  return { key, cert };
}

function sbsign(key: string, cert: string, input: string, output: string): void {
  try {
    execFileSync('sbsign', ['--key', key, '--cert', cert, '--output', output, input], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new SetupError('sbsign not found: apt-get install sbsigntool (boot.signingKey signs iPXE with it)');
    throw new SetupError(`sbsign ${input} failed: ${e.stderr?.toString().trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/**
 * Signs tftpRoot/<ipxe> (installed by installIpxe) into tftpRoot/secureboot/ipxe-site.efi.
 * Written beside the target and renamed, so a booting node never reads half a file.
 */
export function signIpxe(tftpRoot: string, signing: SigningKey, ipxe = 'ipxe.efi'): InstalledBootloader {
  const { key } = loadSigningKey(signing);
  const scratch = mkdtempSync(path.join(tmpdir(), 'bootfarm-sign-'));
  try {
    // 0600 in a 0700 directory (mkdtemp), removed in finally: the only copy of the decrypted key.
    const plainKey = path.join(scratch, 'key.pem');
    writeFileSync(plainKey, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const target = path.join(tftpRoot, SITE_SIGNED_IPXE);
    mkdirSync(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp`);
    sbsign(plainKey, signing.cert, path.join(tftpRoot, ipxe), tmp);
    renameSync(tmp, target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { file: SITE_SIGNED_IPXE, source: `${path.join(tftpRoot, ipxe)} signed with ${signing.key}` };
}

/** Whether `file` carries a signature that verifies against `cert` (`sbverify --cert`). */
export function signedBy(file: string, cert: string): boolean {
  try {
    execFileSync('sbverify', ['--cert', cert, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw new SetupError('sbverify not found: apt-get install sbsigntool');
    return false;
  }
}
