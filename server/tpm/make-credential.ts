// TPM2_MakeCredential done by bootfarm instead of a TPM (TPM 2.0 Part 1 §24,
// "Credential Protection"; Part 3 §12.6). A random seed is sealed to the
// endorsement key (RSA: OAEP with the EK's nameAlg and label "IDENTITY"; ECC: an
// ephemeral ECDH key and KDFe); the credential is then wrapped so that only a TPM
// holding that EK, with an object of the given Name loaded beside it, recovers
// it with TPM2_ActivateCredential:
//   symKey  = KDFa(nameAlg, seed, "STORAGE", Name, "", EK symmetric key bits)
//   encId   = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential))
//   hmacKey = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
//   outer   = HMAC(hmacKey, encId || Name)
//   TPM2B_ID_OBJECT = TPM2B(TPM2B_DIGEST(outer) || encId)
import { constants, createCipheriv, createECDH, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
import { TPM_ALG } from './algorithms.js';
import { kdfa, kdfe } from './kdf.js';
import { sized, u32 } from './marshal.js';
import { TPMA, missingAttributes, publicKeyObject, type EccPublic, type RsaPublic, type TpmPublic } from './public-area.js';

export interface MadeCredential {
  /** TPM2B_ID_OBJECT, marshaled. */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET, marshaled. */
  secret: Buffer;
}

/** Why an EK cannot protect a credential; thrown before any secret is derived. */
export class EkUnsuitableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EkUnsuitableError';
  }
}

const IDENTITY = 'IDENTITY';

function checkEk(ek: TpmPublic): void {
  const missing = missingAttributes(ek, ['restricted', 'decrypt']);
  if (missing.length > 0 || (ek.attributes & TPMA.sign) !== 0)
    throw new EkUnsuitableError(
      `the EK is not a restricted decryption (storage) key (missing: ${missing.join(', ') || 'none'}; sign must be clear)`,
    );
  if (ek.symmetric.algorithm !== TPM_ALG.AES || ek.symmetric.mode !== TPM_ALG.CFB || ![128, 192, 256].includes(ek.symmetric.keyBits)) {
    throw new EkUnsuitableError("the EK's symmetric definition is not AES-128/192/256 in CFB mode");
  }
}

/** The seed and its encryption to an RSA EK: OAEP(nameAlg), label "IDENTITY\0". A test passes a fixed seed. */
export function rsaSeed(ek: RsaPublic, seed: Buffer = randomBytes(ek.nameAlg.size)): { seed: Buffer; encrypted: Buffer } {
  const encrypted = publicEncrypt(
    {
      key: publicKeyObject(ek),
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: ek.nameAlg.node,
      oaepLabel: Buffer.from(`${IDENTITY}\0`, 'latin1'),
    },
    seed,
  );
  return { seed, encrypted };
}

/**
 * The seed from an ephemeral ECDH key on the EK's curve (Part 1 §C.6.4):
 * seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral x, EK x); the ephemeral public
 * point is the encrypted secret (a TPMS_ECC_POINT). A test passes a fixed ephemeral key.
 */
export function eccSeed(ek: EccPublic, ephemeralPrivate?: Buffer): { seed: Buffer; encrypted: Buffer } {
  const ecdh = createECDH(ek.curve.node);
  if (ephemeralPrivate) ecdh.setPrivateKey(ephemeralPrivate);
  else ecdh.generateKeys();
  // computeSecret refuses a point that is not on the curve.
  const z = ecdh.computeSecret(Buffer.concat([Buffer.from([4]), ek.x, ek.y]));
  const point = ecdh.getPublicKey();
  const size = ek.curve.size;
  const x = point.subarray(1, 1 + size);
  const y = point.subarray(1 + size);
  return { seed: kdfe(ek.nameAlg, z, IDENTITY, x, ek.x, ek.nameAlg.size * 8), encrypted: Buffer.concat([sized(x), sized(y)]) };
}

/** The TPM2B_ID_OBJECT for `credential` under `seed`, bound to `name` (deterministic: the part a test can pin byte for byte). */
export function protectCredential(ek: TpmPublic, name: Buffer, credential: Buffer, seed: Buffer): Buffer {
  checkEk(ek);
  if (credential.length === 0 || credential.length > ek.nameAlg.size)
    throw new RangeError(`a credential is 1..${ek.nameAlg.size} bytes for this EK, not ${credential.length}`);
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', name, Buffer.alloc(0), ek.symmetric.keyBits);
  const cipher = createCipheriv(`aes-${ek.symmetric.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(sized(credential)), cipher.final()]);
  const hmacKey = kdfa(ek.nameAlg, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), ek.nameAlg.size * 8);
  const outer = createHmac(ek.nameAlg.node, hmacKey).update(encIdentity).update(name).digest();
  return sized(Buffer.concat([sized(outer), encIdentity]));
}

/** TPM2_MakeCredential(EK public, credential, objectName). */
export function makeCredential(ek: TpmPublic, name: Buffer, credential: Buffer): MadeCredential {
  checkEk(ek);
  let sealed: { seed: Buffer; encrypted: Buffer };
  try {
    sealed = ek.type === 'rsa' ? rsaSeed(ek) : eccSeed(ek);
  } catch (err) {
    // OpenSSL refuses a modulus or point that is no public key (an ECC point off its
    // curve, an RSA modulus of zeros): bytes an agent sent, so a refusal, not a crash.
    throw new EkUnsuitableError(`the EK's public key cannot be used: ${(err as Error).message}`);
  }
  const { seed, encrypted } = sealed;
  return { credentialBlob: protectCredential(ek, name, credential, seed), secret: sized(encrypted) };
}

/** tpm2-tools' file for `tpm2_activatecredential -i`: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
export function toolsCredentialFile(made: MadeCredential): Buffer {
  return Buffer.concat([u32(0xbadcc0de), u32(1), made.credentialBlob, made.secret]);
}
