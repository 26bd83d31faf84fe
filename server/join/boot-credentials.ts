// A boot's two credentials, the one-time nonce (in the kernel command line the
// node's boot script carries) and the phone-home secret (handed out once, for
// the nonce), are kept by bootfarm only as SHA-256 digests: the state directory,
// a backup of it or a log never holds one that works. Both are 192-bit random
// values, so a plain digest is enough (nothing to brute-force).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface IssuedCredential {
  /** What the node gets; never stored, never logged. */
  value: string;
  /** What bootfarm keeps. */
  digest: string;
}

function digestOf(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

export function issueCredential(): IssuedCredential {
  const value = randomBytes(24).toString('base64url');
  return { value, digest: digestOf(value) };
}

/** True when `given` is the credential whose digest is `digest` (constant time). */
export function credentialMatches(given: string | undefined, digest: string | undefined): boolean {
  if (given === undefined || digest === undefined || given.length === 0 || given.length > 256) return false;
  const a = Buffer.from(digestOf(given), 'hex');
  const b = Buffer.from(digest, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The credential in `Authorization: Bearer <value>`, if well formed. */
export function bearerOf(authorization: string | undefined): string | undefined {
  return /^Bearer ([A-Za-z0-9_-]{1,256})$/i.exec(authorization ?? '')?.[1];
}
