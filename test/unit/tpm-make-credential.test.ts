import { readFileSync } from 'node:fs';
import { constants, createHash, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashAlg, TPM_ALG, type HashAlg } from '../../server/tpm/algorithms.js';
import { kdfa, kdfe } from '../../server/tpm/kdf.js';
import { TpmFormatError } from '../../server/tpm/marshal.js';
import { missingAttributes, objectName, parsePublic, type EccPublic, type RsaPublic } from '../../server/tpm/public-area.js';
import {
  EkUnsuitableError,
  eccSeed,
  makeCredential,
  protectCredential,
  rsaSeed,
  toolsCredentialFile,
} from '../../server/tpm/make-credential.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/tpm/${name}`, import.meta.url));
const sha256 = hashAlg(TPM_ALG.SHA256) as HashAlg;
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const CREDENTIAL = Buffer.from('bootfarm credential KAT 32 bytes');

describe('KDFa / KDFe', () => {
  // The TCG reference implementation's KDFa self-test vector (KdfTestData.h, SHA-256 case).
  const key = hex('271FA08BBDC5060EC3DFA928FF9B73123A12DA0C');
  const contextU = hex('CE244F395DCA7391');
  const contextV = hex('DA504031DDF12E83');

  it('matches the TCG self-test vector (160 bits, one HMAC block)', () => {
    expect(kdfa(sha256, key, 'KDFSELFTESTLABEL', contextU, contextV, 160).toString('hex')).toBe('bb0259e1c8ba607e6a2cd704b69a902e9ade84c4');
  });

  it('matches OpenSSL KBKDF (counter mode, HMAC-SHA256) over three blocks', () => {
    // `openssl kdf -keylen 80 -kdfopt mac:HMAC -kdfopt digest:SHA256 -kdfopt hexkey:<key>
    //  -kdfopt hexsalt:<label without NUL> -kdfopt hexinfo:<contextU||contextV> KBKDF`
    expect(kdfa(sha256, key, 'KDFSELFTESTLABEL', contextU, contextV, 640).toString('hex')).toBe(
      '048196b9adfd8487e9fc17198b6c430ebf030f7d22ad161c94f144f5a872be94231ece89e2671a8c5617294127eb336c5b878079d9f90637a890348224d02df3395a3ddb44cf377cfa06ec4dc336516b',
    );
  });

  it('clears the high bits of the first octet when bits is not a multiple of 8', () => {
    const whole = kdfa(sha256, key, 'X', Buffer.alloc(0), Buffer.alloc(0), 12);
    expect(whole.length).toBe(2);
    expect((whole[0] as number) & 0xf0).toBe(0);
  });

  it('KDFe is H(counter || Z || label NUL || partyU || partyV), blockwise', () => {
    const z = Buffer.alloc(32, 1);
    const one = kdfe(sha256, z, 'IDENTITY', Buffer.from('u'), Buffer.from('v'), 256);
    const expected = createHash('sha256').update(hex('00000001')).update(z).update(Buffer.from('IDENTITY\0uv')).digest();
    expect(one.equals(expected)).toBe(true);
    expect(kdfe(sha256, z, 'IDENTITY', Buffer.from('u'), Buffer.from('v'), 512).subarray(0, 32).equals(expected)).toBe(true);
  });
});

describe('TPM2B_PUBLIC parser and Names', () => {
  it('parses the RSA EK and AK that tpm2_createek/createak wrote, and computes the Name the TPM reported', () => {
    const ek = parsePublic(fixture('ek-rsa.pub')) as RsaPublic;
    expect(ek.type).toBe('rsa');
    expect(ek.keyBits).toBe(2048);
    expect(ek.exponent).toBe(65537);
    expect(ek.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    expect(ek.attributes).toBe(0x000300b2);
    const ak = parsePublic(fixture('ak-rsa.pub'));
    expect(missingAttributes(ak, ['fixedTPM', 'fixedParent', 'sign', 'restricted'])).toEqual([]);
    expect(missingAttributes(ek, ['sign'])).toEqual(['sign']);
    expect(objectName(ak).equals(fixture('ak-rsa.name'))).toBe(true);
  });

  it('parses the ECC P-256 EK and AK, with the Name the TPM reported', () => {
    const ek = parsePublic(fixture('ek-ecc.pub')) as EccPublic;
    expect(ek.type).toBe('ecc');
    expect(ek.curve.jwk).toBe('P-256');
    expect(objectName(parsePublic(fixture('ak-ecc.pub'))).equals(fixture('ak-ecc.name'))).toBe(true);
  });

  it('refuses every truncation and any trailing byte with a TpmFormatError, never another exception', () => {
    for (const file of ['ek-rsa.pub', 'ak-rsa.pub', 'ek-ecc.pub', 'ak-ecc.pub']) {
      const whole = fixture(file);
      for (let n = 0; n < whole.length; n++) {
        const cut = Buffer.from(whole.subarray(0, n));
        if (n >= 2) cut.writeUInt16BE(n - 2, 0); // keep the outer size consistent so the inner parser is reached
        expect(() => parsePublic(cut), `${file} cut at ${n}`).toThrow(TpmFormatError);
      }
      const longer = Buffer.concat([whole, Buffer.alloc(1)]);
      longer.writeUInt16BE(whole.length - 1, 0);
      expect(() => parsePublic(longer)).toThrow(/after the end/);
    }
  });

  it('refuses unknown algorithms, a modulus that disagrees with keyBits and symmetric (keyed-hash) objects', () => {
    const ek = fixture('ek-rsa.pub');
    const badHash = Buffer.from(ek);
    badHash.writeUInt16BE(0x0012, 4); // nameAlg SM3
    expect(() => parsePublic(badHash)).toThrow(/nameAlg/);
    const keyed = Buffer.from(ek);
    keyed.writeUInt16BE(TPM_ALG.KEYEDHASH, 2);
    expect(() => parsePublic(keyed)).toThrow(/not RSA or ECC/);
    const bits = Buffer.from(ek);
    bits.writeUInt16BE(1024, 2 + 2 + 2 + 4 + 2 + 32 + 6 + 2); // keyBits after authPolicy, symmetric (6), scheme (2)
    expect(() => parsePublic(bits)).toThrow(/modulus of 256 bytes for keyBits 1024/);
  });
});

describe('MakeCredential', () => {
  // Pinned after `tpm2_activatecredential` on the swtpm that wrote the fixtures
  // recovered CREDENTIAL from exactly these bytes (test/fixtures/tpm/README.md).
  it('RSA EK: the ID object for a fixed seed is byte for byte what the TPM accepted', () => {
    const ek = parsePublic(fixture('ek-rsa.pub'));
    const seed = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    expect(protectCredential(ek, fixture('ak-rsa.name'), CREDENTIAL, seed).toString('hex')).toBe(
      '00440020d8262e2e5d29b73c780e978e79b53e7c6c604bc4ee9e0e8a919deb39a461968eb57862bd8cef8d5d0cfa49b485f1e34bd0e2f7ab21b603b050611796c796c3114a7f',
    );
  });

  it('ECC EK: seed (KDFe over ECDH), ephemeral point and ID object for a fixed ephemeral key are what the TPM accepted', () => {
    const ek = parsePublic(fixture('ek-ecc.pub')) as EccPublic;
    const { seed, encrypted } = eccSeed(ek, Buffer.alloc(32, 0x7f));
    expect(seed.toString('hex')).toBe('76afe914e2e9dfc91a7ef61b2add9881c81959639bf8da01e4357ff00c17f11d');
    expect(encrypted.toString('hex')).toBe(
      '0020680b8b98b32f8e1b93ba0e54aa7c7a5c04b4395161eb4c8a4bc90a7834cc547200200ca90f63e54f5a9099ab3a4c01bf1cec22c90de1d1e19764630587b083671d46',
    );
    expect(protectCredential(ek, fixture('ak-ecc.name'), CREDENTIAL, seed).toString('hex')).toBe(
      '0044002003b2857231fb01f14a79dd9f32ac55bfc163822e2945d1de3dddfc017fc70ecb19df33f24a0f65448333a1277b26f5cb55388b2f8e5e2cb12e4072a3cbae658f426a',
    );
  });

  it('RSA seed: OAEP with SHA-256 and the label "IDENTITY\\0", to the EK', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n as string, 'base64url');
    const area = Buffer.from(fixture('ek-rsa.pub'));
    n.copy(area, area.length - 256);
    const ek = parsePublic(area) as RsaPublic;
    const seed = Buffer.alloc(32, 9);
    const { encrypted } = rsaSeed(ek, seed);
    expect(
      privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') },
        encrypted,
      ).equals(seed),
    ).toBe(true);
    expect(() =>
      privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY') },
        encrypted,
      ),
    ).toThrow();
  });

  it('writes the tpm2-tools file: magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET', () => {
    const made = makeCredential(parsePublic(fixture('ek-rsa.pub')), fixture('ak-rsa.name'), CREDENTIAL);
    const file = toolsCredentialFile(made);
    expect(file.subarray(0, 8).toString('hex')).toBe('badcc0de00000001');
    expect(file.readUInt16BE(8)).toBe(68); // TPM2B_DIGEST(32-byte HMAC) + encrypted TPM2B_DIGEST(32-byte credential)
    expect(file.readUInt16BE(8 + 70)).toBe(256);
    expect(file.length).toBe(8 + 70 + 258);
  });

  it('refuses an EK that is not a restricted decryption key, and credentials longer than the nameAlg digest', () => {
    const ak = parsePublic(fixture('ak-rsa.pub'));
    expect(() => makeCredential(ak, fixture('ak-rsa.name'), CREDENTIAL)).toThrow(EkUnsuitableError);
    const ek = parsePublic(fixture('ek-rsa.pub'));
    expect(() => makeCredential(ek, fixture('ak-rsa.name'), Buffer.alloc(33))).toThrow(RangeError);
  });

  it('refuses an ECC EK whose point is not on the curve', () => {
    const area = Buffer.from(fixture('ek-ecc.pub'));
    area[area.length - 1] = (area[area.length - 1] as number) ^ 1;
    expect(() => makeCredential(parsePublic(area), fixture('ak-ecc.name'), CREDENTIAL)).toThrow();
  });
});
