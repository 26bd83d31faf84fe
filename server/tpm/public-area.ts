// TPMT_PUBLIC / TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2) for the asymmetric keys an
// attestation uses, an endorsement key (EK) and an attestation key (AK), and an
// object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC). Files from
// `tpm2_createek -u`, `tpm2_createak -u` and `tpm2_readpublic -f tss` hold a
// TPM2B_PUBLIC. Only RSA and ECC objects are accepted.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TPM_ALG, hashAlg, type HashAlg } from './algorithms.js';
import { TpmFormatError, TpmReader, u16 } from './marshal.js';

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

export type AttributeName = keyof typeof TPMA;

interface SymmetricDef {
  /** TPM_ALG_NULL when the key has none. */
  algorithm: number;
  keyBits: number;
  mode: number;
}

interface EccCurve {
  id: number;
  node: 'prime256v1' | 'secp384r1' | 'secp521r1';
  jwk: 'P-256' | 'P-384' | 'P-521';
  size: number;
}

const CURVES: readonly EccCurve[] = [
  { id: 0x0003, node: 'prime256v1', jwk: 'P-256', size: 32 },
  { id: 0x0004, node: 'secp384r1', jwk: 'P-384', size: 48 },
  { id: 0x0005, node: 'secp521r1', jwk: 'P-521', size: 66 },
];

interface PublicCommon {
  nameAlg: HashAlg;
  attributes: number;
  authPolicy: Buffer;
  symmetric: SymmetricDef;
  /** The scheme selector (TPM_ALG_NULL for a storage key such as an EK). */
  scheme: number;
  /** The marshaled TPMT_PUBLIC: what the Name hashes. */
  area: Buffer;
}

export interface RsaPublic extends PublicCommon {
  type: 'rsa';
  keyBits: number;
  exponent: number;
  modulus: Buffer;
}

export interface EccPublic extends PublicCommon {
  type: 'ecc';
  curve: EccCurve;
  x: Buffer;
  y: Buffer;
}

export type TpmPublic = RsaPublic | EccPublic;

const MAX_DIGEST = 64;
const MAX_RSA_KEY_BYTES = 512;
const MAX_ECC_KEY_BYTES = 128;

function nameAlgOf(r: TpmReader, field: string): HashAlg {
  const id = r.u16(field);
  const found = hashAlg(id);
  if (!found)
    throw new TpmFormatError(`${field} 0x${id.toString(16).padStart(4, '0')} is not a hash bootfarm supports (SHA-1/256/384/512)`);
  return found;
}

function symmetricDef(r: TpmReader): SymmetricDef {
  const algorithm = r.u16('symmetric algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm, keyBits: 0, mode: TPM_ALG.NULL };
  if (algorithm !== TPM_ALG.AES) throw new TpmFormatError(`symmetric algorithm 0x${algorithm.toString(16)} is not AES or NULL`);
  return { algorithm, keyBits: r.u16('symmetric key bits'), mode: r.u16('symmetric mode') };
}

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: the selector, then its details (a hash for every scheme but RSAES; ECDAA adds a count). */
function scheme(r: TpmReader, type: 'rsa' | 'ecc'): number {
  const selector = r.u16('scheme');
  const withHash: readonly number[] =
    type === 'rsa'
      ? [TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP]
      : [TPM_ALG.ECDSA, TPM_ALG.ECDH, TPM_ALG.ECSCHNORR, TPM_ALG.SM2, TPM_ALG.ECDAA];
  if (selector === TPM_ALG.NULL || (type === 'rsa' && selector === TPM_ALG.RSAES)) return selector;
  if (!withHash.includes(selector)) throw new TpmFormatError(`${type} scheme 0x${selector.toString(16)} is not known`);
  r.u16('scheme hash');
  if (selector === TPM_ALG.ECDAA) r.u16('ECDAA count');
  return selector;
}

function kdfScheme(r: TpmReader): void {
  const selector = r.u16('kdf scheme');
  if (selector === TPM_ALG.NULL) return;
  if (![0x0007, TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108].includes(selector))
    throw new TpmFormatError(`kdf scheme 0x${selector.toString(16)} is not known`);
  r.u16('kdf hash');
}

function readTpmtPublic(r: TpmReader): TpmPublic {
  const start = r.position;
  const typeId = r.u16('type');
  if (typeId !== TPM_ALG.RSA && typeId !== TPM_ALG.ECC) throw new TpmFormatError(`object type 0x${typeId.toString(16)} is not RSA or ECC`);
  const nameAlg = nameAlgOf(r, 'nameAlg');
  const attributes = r.u32('objectAttributes');
  const authPolicy = Buffer.from(r.sized('authPolicy', MAX_DIGEST));
  const symmetric = symmetricDef(r);
  if (typeId === TPM_ALG.RSA) {
    const sch = scheme(r, 'rsa');
    const keyBits = r.u16('keyBits');
    const exponent = r.u32('exponent') || 65537;
    const modulus = Buffer.from(r.sized('modulus', MAX_RSA_KEY_BYTES));
    if (keyBits < 1024 || keyBits % 8 !== 0 || modulus.length !== keyBits / 8)
      throw new TpmFormatError(`RSA modulus of ${modulus.length} bytes for keyBits ${keyBits}`);
    const area = Buffer.from(r.bytesBetween(start, r.position));
    return { type: 'rsa', nameAlg, attributes, authPolicy, symmetric, scheme: sch, keyBits, exponent, modulus, area };
  }
  const sch = scheme(r, 'ecc');
  const curveId = r.u16('curveID');
  const curve = CURVES.find((c) => c.id === curveId);
  if (!curve) throw new TpmFormatError(`ECC curve 0x${curveId.toString(16)} is not NIST P-256/384/521`);
  kdfScheme(r);
  const x = Buffer.from(r.sized('x', MAX_ECC_KEY_BYTES));
  const y = Buffer.from(r.sized('y', MAX_ECC_KEY_BYTES));
  if (x.length !== curve.size || y.length !== curve.size)
    throw new TpmFormatError(`ECC point of ${x.length}/${y.length} bytes on ${curve.jwk}`);
  const area = Buffer.from(r.bytesBetween(start, r.position));
  return { type: 'ecc', nameAlg, attributes, authPolicy, symmetric, scheme: sch, curve, x, y, area };
}

/** Parses a TPM2B_PUBLIC (what tpm2-tools writes with `-f tss`, their default). */
export function parsePublic(buf: Buffer): TpmPublic {
  const r = new TpmReader(buf, 'TPM2B_PUBLIC');
  const size = r.u16('size');
  if (size !== r.remaining) throw new TpmFormatError(`TPM2B_PUBLIC: size field ${size}, ${r.remaining} bytes follow`);
  const pub = readTpmtPublic(r);
  r.end();
  return pub;
}

/** The object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC). */
export function objectName(pub: TpmPublic): Buffer {
  return Buffer.concat([u16(pub.nameAlg.id), createHash(pub.nameAlg.node).update(pub.area).digest()]);
}

/** Which of `names` the object lacks. */
export function missingAttributes(pub: TpmPublic, names: readonly AttributeName[]): AttributeName[] {
  return names.filter((n) => (pub.attributes & TPMA[n]) === 0);
}

/** The public key as node:crypto sees it (for OAEP, ECDH). Throws if the bytes are no valid key (e.g. a point off the curve). */
export function publicKeyObject(pub: TpmPublic): KeyObject {
  if (pub.type === 'rsa') {
    const hex = pub.exponent.toString(16);
    const e = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
    return createPublicKey({ key: { kty: 'RSA', n: pub.modulus.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  }
  return createPublicKey({
    key: { kty: 'EC', crv: pub.curve.jwk, x: pub.x.toString('base64url'), y: pub.y.toString('base64url') },
    format: 'jwk',
  });
}
