// TPM_ALG_ID values (TPM 2.0 Part 2 §6.3) that bootfarm understands, and the
// Node hash each digest algorithm maps to.

export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

export interface HashAlg {
  id: number;
  /** The name node:crypto knows it by. */
  node: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  size: number;
}

const HASHES: readonly HashAlg[] = [
  { id: TPM_ALG.SHA1, node: 'sha1', size: 20 },
  { id: TPM_ALG.SHA256, node: 'sha256', size: 32 },
  { id: TPM_ALG.SHA384, node: 'sha384', size: 48 },
  { id: TPM_ALG.SHA512, node: 'sha512', size: 64 },
];

export function hashAlg(id: number): HashAlg | undefined {
  return HASHES.find((h) => h.id === id);
}
