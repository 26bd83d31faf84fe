// kubernetes.admission: tpm's decisions (server/join/tpm-admission.ts) in-process:
// EKs are key pairs made here with node:crypto, written into the public areas of
// test/fixtures/tpm (made by swtpm), and the agent's TPM2_ActivateCredential is
// done in software with the EK's private key (`activate` below: the seed, the
// HMAC that binds the AK's Name, the AES-CFB unwrap, as Part 1 §24 has the TPM do
// it). Every refusal is checked by what the agent and the operator see: the
// TpmRefusal's status and reason, the count in bootfarm_tpm_attestations_total,
// the node's timeline and the log line. The same with swtpm:
// test/integration/tpm-admission.test.ts.
import { constants, createDecipheriv, createECDH, createHmac, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { TpmAdmission, TpmRefusal, type TpmAdmissionDeps } from '../../server/join/tpm-admission.js';
import { EkRegistry } from '../../server/join/tpm-ek-registry.js';
import { Metrics } from '../../server/metrics.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';
import type { NodeEvent } from '../../server/store/store.js';
import { hashAlg, TPM_ALG, type HashAlg } from '../../server/tpm/algorithms.js';
import { kdfa, kdfe } from '../../server/tpm/kdf.js';
import { objectName, parsePublic, TPMA } from '../../server/tpm/public-area.js';

const DEADLINE_MS = 20_000;
const MAC = '52:54:00:7a:00:01';
const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);
const sha256 = hashAlg(TPM_ALG.SHA256) as HashAlg;
const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/tpm/${name}`, import.meta.url));
const hex = (b: Buffer): string => b.toString('hex');

/** An EK made here: its TPM2B_PUBLIC (the fixture's, with this key in it) and its private key, the "TPM". */
interface SoftEk {
  pub: Buffer;
  key: KeyObject;
  type: 'rsa' | 'ecc';
  name: Buffer;
}

function rsaEk(): SoftEk {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = Buffer.from(publicKey.export({ format: 'jwk' }).n as string, 'base64url');
  const pub = Buffer.from(fixture('ek-rsa.pub'));
  n.copy(pub, pub.length - 256);
  return { pub, key: privateKey, type: 'rsa', name: objectName(parsePublic(pub)) };
}

function eccEk(): SoftEk {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const pub = Buffer.from(fixture('ek-ecc.pub'));
  // TPMS_ECC_POINT at the end: TPM2B x (2 + 32), TPM2B y (2 + 32).
  Buffer.from(jwk.x as string, 'base64url').copy(pub, pub.length - 66);
  Buffer.from(jwk.y as string, 'base64url').copy(pub, pub.length - 32);
  return { pub, key: privateKey, type: 'ecc', name: objectName(parsePublic(pub)) };
}

/**
 * TPM2_ActivateCredential in software over tpm2-tools' credential file: what a
 * TPM holding `ek`, with an object of Name `akName` loaded, recovers; undefined
 * where the TPM fails (the seed does not decrypt, the HMAC over the Name is wrong).
 */
function activate(file: Buffer, ek: SoftEk, akName: Buffer): Buffer | undefined {
  expect(file.readUInt32BE(0)).toBe(0xbadcc0de);
  expect(file.readUInt32BE(4)).toBe(1);
  const idSize = file.readUInt16BE(8);
  const id = file.subarray(10, 10 + idSize);
  const secretSize = file.readUInt16BE(10 + idSize);
  const encrypted = file.subarray(12 + idSize, 12 + idSize + secretSize);
  expect(file.length).toBe(12 + idSize + secretSize);
  const outer = id.subarray(2, 2 + id.readUInt16BE(0));
  const encIdentity = id.subarray(2 + outer.length);
  let seed: Buffer;
  if (ek.type === 'rsa') {
    try {
      seed = privateDecrypt(
        { key: ek.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0') },
        encrypted,
      );
    } catch {
      return undefined;
    }
  } else {
    const x = encrypted.subarray(2, 2 + encrypted.readUInt16BE(0));
    const y = encrypted.subarray(4 + x.length);
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(ek.key.export({ format: 'jwk' }).d as string, 'base64url'));
    let z: Buffer;
    try {
      z = ecdh.computeSecret(Buffer.concat([Buffer.from([4]), x, y]));
    } catch {
      return undefined;
    }
    const ekX = (parsePublic(ek.pub) as { x: Buffer }).x;
    seed = kdfe(sha256, z, 'IDENTITY', x, ekX, 256);
  }
  const hmacKey = kdfa(sha256, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256);
  if (!createHmac('sha256', hmacKey).update(encIdentity).update(akName).digest().equals(outer)) return undefined;
  const symKey = kdfa(sha256, seed, 'STORAGE', akName, Buffer.alloc(0), 128);
  const decipher = createDecipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const inner = Buffer.concat([decipher.update(encIdentity), decipher.final()]);
  return inner.subarray(2, 2 + inner.readUInt16BE(0));
}

// Made once per file: a 2048-bit RSA key takes a few hundred milliseconds, and
// Stryker runs this file once per mutant.
const RSA_EKS = [rsaEk(), rsaEk(), rsaEk()] as const;
const ECC_EKS = [eccEk(), eccEk(), eccEk()] as const;
const [OTHER_RSA, THIRD_RSA] = [RSA_EKS[1], RSA_EKS[2]];

const AK = fixture('ak-rsa.pub');
const AK_NAME = fixture('ak-rsa.name');
const AK_ECC = fixture('ak-ecc.pub');
const AK_ECC_NAME = fixture('ak-ecc.name');

/** The AK with objectAttributes changed (they follow size, type and nameAlg). */
function akWith(set: number, clear: number): Buffer {
  const area = Buffer.from(AK);
  area.writeUInt32BE(((area.readUInt32BE(6) | set) & ~clear) >>> 0, 6);
  return area;
}

const node = (over: Partial<EffectiveNode> = {}): EffectiveNode =>
  ({ mac: MAC, hostname: 'node-a', origin: 'config', ...over }) as EffectiveNode;

/** The thrown TpmRefusal; fails when `run` succeeds or throws anything else. */
async function refusal(run: () => unknown): Promise<TpmRefusal> {
  try {
    await run();
  } catch (err) {
    if (err instanceof TpmRefusal) return err;
    throw err;
  }
  throw new Error('expected a TpmRefusal, got none');
}

describe('TPM admission decisions', () => {
  let dir: string;
  let events: NodeEvent[];
  let logs: Array<Record<string, unknown>>;
  let metrics: Metrics;
  let attested: string[];
  let clock: number;
  let registered: SoftEk;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-tpm-unit-'));
    events = [];
    logs = [];
    metrics = new Metrics();
    attested = [];
    clock = T0;
    registered = RSA_EKS[0];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const registry = (): EkRegistry => EkRegistry.open(dir, path.join(dir, 'bootfarm.yaml'));
  const admission = (over: Partial<TpmAdmissionDeps> = {}): TpmAdmission =>
    new TpmAdmission({
      registry: registry(),
      trustOnFirstUse: false,
      store: { recordEvent: (e) => void events.push(e) },
      metrics,
      logger: pino(
        { level: 'info' },
        new Writable({
          write(chunk: Buffer, _enc, done) {
            logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
            done();
          },
        }),
      ),
      onAttested: (mac, bootId) => void attested.push(`${mac}/${bootId}`),
      now: () => clock,
      ...over,
    });
  /** node-a with `registered`'s EK in its tpm.ek (base64). */
  const nodeA = (over: Partial<EffectiveNode> = {}): EffectiveNode => node({ tpm: { ek: registered.pub.toString('base64') }, ...over });
  const count = async (outcome: string): Promise<number> =>
    (await metrics.tpmAttestations.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  /** pino writes synchronously to the Writable only after a tick. */
  const settled = () => new Promise((r) => setImmediate(r));

  it(
    "the registered EK's holder attests its boot: the credential opens only with that EK and AK, and the answer admits it once",
    async () => {
      const tpm = admission();
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
      const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK, akName: AK_NAME, ekPublic: registered.pub });
      expect(challenge.ekType).toBe('rsa');
      expect(hex(challenge.ekName)).toBe(hex(registered.name));
      expect(hex(challenge.akName)).toBe(hex(AK_NAME));
      expect(events).toEqual([
        {
          at: new Date(T0).toISOString(),
          mac: MAC,
          type: 'tpm.challenge',
          detail: { bootId: 'boot-1', ek: hex(registered.name), ak: hex(AK_NAME), ekSource: 'config' },
        },
      ]);
      // Another machine's TPM cannot open it, nor the right TPM with another AK loaded.
      expect(activate(challenge.credential, OTHER_RSA, AK_NAME)).toBeUndefined();
      expect(activate(challenge.credential, registered, AK_ECC_NAME)).toBeUndefined();
      const secret = activate(challenge.credential, registered, AK_NAME) as Buffer;
      expect(secret.length).toBe(32);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);

      clock = T0 + 5000;
      await tpm.answer(nodeA(), 'boot-1', secret);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(true);
      expect(tpm.isAttested(MAC, 'boot-2')).toBe(false);
      expect(tpm.isAttested('52:54:00:7a:00:02', 'boot-1')).toBe(false);
      expect(attested).toEqual([`${MAC}/boot-1`]);
      expect(await count('attested')).toBe(1);
      expect(events[1]).toEqual({
        at: new Date(T0 + 5000).toISOString(),
        mac: MAC,
        type: 'tpm.attested',
        detail: { bootId: 'boot-1', ek: hex(registered.name), ak: hex(AK_NAME), ekSource: 'config' },
      });
      await settled();
      expect(logs).toContainEqual(
        expect.objectContaining({
          level: 30,
          msg: 'boot attested by its TPM',
          node: 'node-a',
          mac: MAC,
          bootId: 'boot-1',
          ek: hex(registered.name),
          ekSource: 'config',
        }),
      );

      // Replayed: the challenge was spent by its answer.
      const replay = await refusal(() => tpm.answer(nodeA(), 'boot-1', secret));
      expect(replay).toMatchObject({ name: 'TpmRefusal', status: 409, reason: 'no-challenge' });
      expect(replay.message).toBe('no TPM challenge of this boot is waiting for an answer');
      expect(await count('no-challenge')).toBe(1);
      expect(attested).toEqual([`${MAC}/boot-1`]);
    },
    DEADLINE_MS,
  );

  it(
    'a wrong answer is refused and spends the challenge: the right secret after it is too late',
    async () => {
      const tpm = admission();
      const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const secret = activate(challenge.credential, registered, AK_NAME) as Buffer;
      const wrong = Buffer.from(secret);
      wrong[31] = (wrong[31] as number) ^ 1;
      clock = T0 + 1000;
      const err = await refusal(() => tpm.answer(nodeA(), 'boot-1', wrong));
      expect(err).toMatchObject({ status: 403, reason: 'wrong-answer' });
      expect(err.message).toBe(
        `the answer is not the secret sealed to node-a's EK ${hex(registered.name)}: this machine's TPM does not hold it, or the AK is not in it`,
      );
      expect(events.at(-1)).toEqual({
        at: new Date(T0 + 1000).toISOString(),
        mac: MAC,
        type: 'tpm.refused',
        detail: { bootId: 'boot-1', reason: 'wrong-answer', message: err.message },
      });
      expect(await count('wrong-answer')).toBe(1);
      await settled();
      expect(logs).toContainEqual(
        expect.objectContaining({
          level: 40,
          msg: `TPM attestation refused: ${err.message}`,
          node: 'node-a',
          mac: MAC,
          bootId: 'boot-1',
          reason: 'wrong-answer',
        }),
      );
      expect((await refusal(() => tpm.answer(nodeA(), 'boot-1', secret))).reason).toBe('no-challenge');
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
      expect(attested).toEqual([]);
      expect(await count('attested')).toBe(0);
    },
    DEADLINE_MS,
  );

  it(
    'an answer of another length (short, empty, longer) is a wrong answer, not a crash',
    async () => {
      const tpm = admission();
      for (const answer of [Buffer.alloc(31), Buffer.alloc(0), Buffer.alloc(64)]) {
        const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
        const secret = activate(challenge.credential, registered, AK_NAME) as Buffer;
        // The right secret as its prefix or with a byte after it is still not it.
        const candidate = answer.length > 32 ? Buffer.concat([secret, Buffer.alloc(32)]) : secret.subarray(0, answer.length);
        expect((await refusal(() => tpm.answer(nodeA(), 'boot-1', candidate))).reason).toBe('wrong-answer');
      }
      expect(await count('wrong-answer')).toBe(3);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    "a superseded challenge is dead: a new challenge replaces it, a new boot's challenge ends the old boot's",
    async () => {
      const tpm = admission();
      const first = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const second = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const oldSecret = activate(first.credential, registered, AK_NAME) as Buffer;
      // The first challenge's secret answers nothing now (the second has a fresh one).
      expect((await refusal(() => tpm.answer(nodeA(), 'boot-1', oldSecret))).reason).toBe('wrong-answer');
      expect(activate(second.credential, registered, AK_NAME)?.equals(oldSecret)).toBe(false);

      // A challenge of boot-1, then boot-2 boots: boot-1's answer has no challenge, and does not spend boot-2's.
      const ofBoot1 = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const ofBoot2 = tpm.challenge(nodeA(), 'boot-2', { akPublic: AK });
      const err = await refusal(() => tpm.answer(nodeA(), 'boot-1', activate(ofBoot1.credential, registered, AK_NAME) as Buffer));
      expect(err).toMatchObject({ status: 409, reason: 'no-challenge' });
      expect(events.at(-1)?.detail).toMatchObject({ bootId: 'boot-1', reason: 'no-challenge' });
      await tpm.answer(nodeA(), 'boot-2', activate(ofBoot2.credential, registered, AK_NAME) as Buffer);
      expect(tpm.isAttested(MAC, 'boot-2')).toBe(true);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
      // An answer with no challenge ever made for the node.
      expect((await refusal(() => tpm.answer(node({ mac: '52:54:00:7a:00:09' }), 'boot-1', Buffer.alloc(32)))).reason).toBe('no-challenge');
    },
    DEADLINE_MS,
  );

  it(
    'an answer for one node does not attest another, and the next boot of an attested node is not attested',
    async () => {
      const other = OTHER_RSA;
      const tpm = admission();
      const b = node({ mac: '52:54:00:7a:00:02', hostname: 'node-b', tpm: { ek: other.pub.toString('base64') } });
      const ca = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const cb = tpm.challenge(b, 'boot-1', { akPublic: AK });
      // node-b's TPM answers node-a's challenge with its own secret: refused, and node-b's challenge is untouched.
      const err = await refusal(() => tpm.answer(nodeA(), 'boot-1', activate(cb.credential, other, AK_NAME) as Buffer));
      expect(err.reason).toBe('wrong-answer');
      expect(activate(ca.credential, other, AK_NAME)).toBeUndefined();
      await tpm.answer(b, 'boot-1', activate(cb.credential, other, AK_NAME) as Buffer);
      expect(tpm.isAttested('52:54:00:7a:00:02', 'boot-1')).toBe(true);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
      expect(() => tpm.seal(MAC, 'boot-1', Buffer.from('token'))).toThrow(`boot boot-1 of ${MAC} is not attested`);
    },
    DEADLINE_MS,
  );

  it(
    "seal(): data only the attested boot's TPM, with its AK, recovers",
    async () => {
      const ecc = ECC_EKS[0];
      const tpm = admission();
      const n = nodeA({ tpm: { ek: ecc.pub.toString('base64') } });
      const challenge = tpm.challenge(n, 'boot-1', { akPublic: AK_ECC, akName: AK_ECC_NAME });
      expect(challenge.ekType).toBe('ecc');
      await tpm.answer(n, 'boot-1', activate(challenge.credential, ecc, AK_ECC_NAME) as Buffer);
      const token = Buffer.from('abcdef.0123456789abcdef');
      const sealed = tpm.seal(MAC, 'boot-1', token);
      expect(activate(sealed, ecc, AK_ECC_NAME)?.equals(token)).toBe(true);
      expect(activate(sealed, ecc, AK_NAME)).toBeUndefined();
      expect(activate(sealed, ECC_EKS[1], AK_ECC_NAME)).toBeUndefined();
      expect(() => tpm.seal(MAC, 'boot-2', token)).toThrow(`boot boot-2 of ${MAC} is not attested`);
      expect(() => tpm.seal('52:54:00:7a:00:03', 'boot-1', token)).toThrow('not attested');
    },
    DEADLINE_MS,
  );

  it(
    'an EK of the same type that is not the registered one is refused 403 ek-mismatch, naming both; the registered one itself passes',
    async () => {
      const tpm = admission();
      const foreign = OTHER_RSA;
      const err = await refusal(() => tpm.challenge(nodeA(), 'boot-1', { akPublic: AK, ekPublic: foreign.pub }));
      expect(err).toMatchObject({ status: 403, reason: 'ek-mismatch' });
      expect(err.message).toBe(
        `this machine's TPM has EK ${hex(foreign.name)} (rsa), not node-a's registered EK ${hex(registered.name)} (rsa, config)`,
      );
      expect(events).toEqual([
        {
          at: new Date(T0).toISOString(),
          mac: MAC,
          type: 'tpm.refused',
          detail: { bootId: 'boot-1', reason: 'ek-mismatch', message: err.message },
        },
      ]);
      expect(await count('ek-mismatch')).toBe(1);
      // Registered through the API: the source says so.
      const api = await refusal(() => tpm.challenge(nodeA({ origin: 'api' }), 'boot-1', { akPublic: AK, ekPublic: foreign.pub }));
      expect(api.message).toContain('(rsa, api)');
      // ECC against ECC too.
      const ecc = ECC_EKS[0];
      const foreignEcc = ECC_EKS[1];
      const eccNode = nodeA({ tpm: { ek: ecc.pub.toString('base64') } });
      expect((await refusal(() => tpm.challenge(eccNode, 'boot-1', { akPublic: AK, ekPublic: foreignEcc.pub }))).message).toContain(
        `EK ${hex(foreignEcc.name)} (ecc), not node-a's registered EK ${hex(ecc.name)} (ecc, config)`,
      );
      expect(tpm.challenge(eccNode, 'boot-1', { akPublic: AK, ekPublic: ecc.pub }).ekType).toBe('ecc');
    },
    DEADLINE_MS,
  );

  it(
    'an EK of the other type says nothing: the credential is for the registered EK, which only its TPM opens',
    async () => {
      const tpm = admission();
      const ecc = ECC_EKS[0];
      const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK, ekPublic: ecc.pub });
      expect(challenge.ekType).toBe('rsa');
      expect(hex(challenge.ekName)).toBe(hex(registered.name));
      expect(activate(challenge.credential, ecc, AK_NAME)).toBeUndefined();
      await tpm.answer(nodeA(), 'boot-1', activate(challenge.credential, registered, AK_NAME) as Buffer);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(true);
    },
    DEADLINE_MS,
  );

  it(
    'a node without a registered EK: refused 409 with trust on first use off, 400 with it on and no ekPublic',
    async () => {
      const bare = node({ hostname: 'node-t' });
      const off = await refusal(() => admission().challenge(bare, 'boot-1', { akPublic: AK, ekPublic: registered.pub }));
      expect(off).toMatchObject({ status: 409, reason: 'no-ek-registered' });
      expect(off.message).toBe(
        'node-t has no registered EK (tpm.ek, `bootfarm node enrol --ek FILE`) and kubernetes.tpm.trustOnFirstUse is off',
      );
      const on = await refusal(() => admission({ trustOnFirstUse: true }).challenge(bare, 'boot-1', { akPublic: AK }));
      expect(on).toMatchObject({ status: 400, reason: 'no-ek-registered' });
      expect(on.message).toBe("node-t has no registered EK yet: trust on first use needs the agent's ekPublic");
      expect(await count('no-ek-registered')).toBe(2);
      expect(events.map((e) => e.type)).toEqual(['tpm.refused', 'tpm.refused']);
      expect(existsSync(path.join(dir, 'tpm-eks.json'))).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    'trust on first use: the EK is kept only once its answer is right, and binds the node from then on',
    async () => {
      const bare = node({ hostname: 'node-t' });
      const file = path.join(dir, 'tpm-eks.json');
      const tofu = admission({ trustOnFirstUse: true });
      // A wrong answer keeps nothing.
      tofu.challenge(bare, 'boot-1', { akPublic: AK, ekPublic: registered.pub });
      expect((await refusal(() => tofu.answer(bare, 'boot-1', Buffer.alloc(32)))).reason).toBe('wrong-answer');
      expect(existsSync(file)).toBe(false);

      const challenge = tofu.challenge(bare, 'boot-1', { akPublic: AK, ekPublic: registered.pub });
      expect(events.at(-1)).toMatchObject({ type: 'tpm.challenge', detail: { ekSource: 'trust-on-first-use', ek: hex(registered.name) } });
      await tofu.answer(bare, 'boot-1', activate(challenge.credential, registered, AK_NAME) as Buffer);
      expect(tofu.isAttested(MAC, 'boot-1')).toBe(true);
      expect(events.at(-1)).toMatchObject({ type: 'tpm.attested', detail: { ekSource: 'trust-on-first-use' } });
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, eks: { [MAC]: registered.pub.toString('base64') } });

      // Another process: the kept EK is the node's now.
      const later = admission({ trustOnFirstUse: true });
      const foreign = OTHER_RSA;
      const err = await refusal(() => later.challenge(bare, 'boot-2', { akPublic: AK, ekPublic: foreign.pub }));
      expect(err.message).toContain(`(rsa, trust-on-first-use)`);
      const again = later.challenge(bare, 'boot-2', { akPublic: AK });
      expect(events.at(-1)).toMatchObject({ detail: { ekSource: 'trust-on-first-use' } });
      await later.answer(bare, 'boot-2', activate(again.credential, registered, AK_NAME) as Buffer);
      expect(later.isAttested(MAC, 'boot-2')).toBe(true);
    },
    DEADLINE_MS,
  );

  it(
    'trust on first use: an EK registered for the node while the challenge was out decides; the first-use EK is not kept',
    async () => {
      const offered = OTHER_RSA;
      const file = path.join(dir, 'tpm-eks.json');
      const tofu = admission({ trustOnFirstUse: true });
      const challenge = tofu.challenge(node(), 'boot-1', { akPublic: AK, ekPublic: offered.pub });
      const err = await refusal(() => tofu.answer(nodeA(), 'boot-1', activate(challenge.credential, offered, AK_NAME) as Buffer));
      expect(err).toMatchObject({ status: 403, reason: 'ek-mismatch' });
      expect(err.message).toBe(
        `node-a's registered EK is now ${hex(registered.name)} (config), not ${hex(offered.name)}, the EK this challenge was sealed to`,
      );
      expect(tofu.isAttested(MAC, 'boot-1')).toBe(false);
      expect(existsSync(file)).toBe(false);

      // Registered meanwhile, and it is the very EK offered: attested, and nothing kept (the configuration has it).
      const again = tofu.challenge(node(), 'boot-1', { akPublic: AK, ekPublic: registered.pub });
      await tofu.answer(nodeA(), 'boot-1', activate(again.credential, registered, AK_NAME) as Buffer);
      expect(tofu.isAttested(MAC, 'boot-1')).toBe(true);
      expect(existsSync(file)).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    "a registered EK replaced or removed while the challenge was out: the old EK's answer attests nothing",
    async () => {
      const tpm = admission();
      const replacement = THIRD_RSA;
      const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const secret = activate(challenge.credential, registered, AK_NAME) as Buffer;
      const replaced = await refusal(() => tpm.answer(nodeA({ tpm: { ek: replacement.pub.toString('base64') } }), 'boot-1', secret));
      expect(replaced).toMatchObject({ status: 403, reason: 'ek-mismatch' });
      expect(replaced.message).toContain(`is now ${hex(replacement.name)} (config), not ${hex(registered.name)}`);

      // The agent sent its EK too: with the registered one gone, that is still no first use to trust.
      const next = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK, ekPublic: registered.pub });
      const removed = await refusal(() => tpm.answer(node(), 'boot-1', activate(next.credential, registered, AK_NAME) as Buffer));
      expect(removed).toMatchObject({ status: 409, reason: 'no-ek-registered' });
      expect(removed.message).toBe(`node-a's registered EK ${hex(registered.name)} was removed while this challenge was out`);

      const broken = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const unusable = await refusal(() =>
        tpm.answer(node({ tpm: { ek: 'bm90IGFuIEVL' } }), 'boot-1', activate(broken.credential, registered, AK_NAME) as Buffer),
      );
      expect(unusable).toMatchObject({ status: 409, reason: 'ek-unusable' });
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(false);
      expect(attested).toEqual([]);
    },
    DEADLINE_MS,
  );

  it(
    'refuses an AK that is not a restricted signing key bound to its TPM, saying what is wrong',
    async () => {
      const tpm = admission();
      const cases: Array<[Buffer, string]> = [
        [registered.pub, 'missing sign'], // the EK as AK: a decryption key
        [akWith(0, TPMA.fixedTPM), 'missing fixedTPM)'],
        [akWith(0, TPMA.fixedParent | TPMA.restricted), 'missing fixedParent, restricted)'],
        [akWith(TPMA.decrypt, 0), 'decrypt is set'],
      ];
      for (const [akPublic, what] of cases) {
        const err = await refusal(() => tpm.challenge(nodeA(), `boot-${what}`, { akPublic }));
        expect(err).toMatchObject({ status: 400, reason: 'ak-attributes' });
        expect(err.message).toBe(`the AK is not a restricted signing key bound to its TPM (${what.endsWith(')') ? what : `${what})`}`);
      }
      expect(await count('ak-attributes')).toBe(4);
      // The AK with harmless extra attributes is one.
      expect(tpm.challenge(nodeA(), 'boot-x', { akPublic: akWith(TPMA.noDA, 0) }).ekType).toBe('rsa');
    },
    DEADLINE_MS,
  );

  it(
    "refuses a Name that is not the AK's, and malformed public areas, with the field named",
    async () => {
      const tpm = admission();
      const name = await refusal(() => tpm.challenge(nodeA(), 'boot-1', { akPublic: AK, akName: AK_ECC_NAME }));
      expect(name).toMatchObject({ status: 400, reason: 'ak-name-mismatch' });
      expect(name.message).toBe(`akName ${hex(AK_ECC_NAME)} is not the Name of akPublic (${hex(AK_NAME)})`);
      const ak = await refusal(() => tpm.challenge(nodeA(), 'boot-2', { akPublic: AK.subarray(0, 40) }));
      expect(ak).toMatchObject({ status: 400, reason: 'ak-malformed' });
      expect(ak.message).toMatch(/^akPublic: /);
      const ek = await refusal(() => tpm.challenge(nodeA(), 'boot-3', { akPublic: AK, ekPublic: Buffer.from([0, 1, 0]) }));
      expect(ek).toMatchObject({ status: 400, reason: 'ek-unusable' });
      expect(ek.message).toMatch(/^ekPublic: /);
      expect(events.map((e) => e.detail?.reason)).toEqual(['ak-name-mismatch', 'ak-malformed', 'ek-unusable']);
      // None of them left a challenge to answer.
      expect((await refusal(() => tpm.answer(nodeA(), 'boot-3', Buffer.alloc(32)))).reason).toBe('no-challenge');
    },
    DEADLINE_MS,
  );

  it(
    'an EK that cannot protect a credential is refused ek-unusable: a registered one that does not parse, a signing key, an off-curve point',
    async () => {
      const tpm = admission();
      const notEk = await refusal(() => tpm.challenge(nodeA({ tpm: { ek: 'bm90IGFuIEVL' } }), 'boot-1', { akPublic: AK }));
      expect(notEk).toMatchObject({ status: 409, reason: 'ek-unusable' });
      expect(notEk.message).toBe("node-a's registered EK cannot be used (see the server log)");
      // The AK registered as the EK: parses, but is a signing key.
      const sign = await refusal(() => tpm.challenge(nodeA({ tpm: { ek: AK.toString('base64') } }), 'boot-2', { akPublic: AK }));
      expect(sign).toMatchObject({ status: 400, reason: 'ek-unusable' });
      expect(sign.message).toContain('not a restricted decryption (storage) key');
      // Trust on first use hands the agent's EK to MakeCredential: a point off the curve is the agent's fault.
      const offCurve = Buffer.from(ECC_EKS[2].pub);
      offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
      const curve = await refusal(() =>
        admission({ trustOnFirstUse: true }).challenge(node(), 'boot-3', { akPublic: AK, ekPublic: offCurve }),
      );
      expect(curve).toMatchObject({ status: 400, reason: 'ek-unusable' });
      expect(curve.message).toMatch(/^the EK's public key cannot be used: /);
      expect(await count('ek-unusable')).toBe(3);
    },
    DEADLINE_MS,
  );

  it(
    "a registered EK's error reaches the log, not the agent: no path or error of this host in the refusal",
    async () => {
      // A configured tpm.ek naming a directory: the registry's error has the path and errno.
      mkdirSync(path.join(dir, 'eks', 'node-a.pub'), { recursive: true });
      const tpm = admission();
      const err = await refusal(() => tpm.challenge(nodeA({ tpm: { ek: 'eks/node-a.pub' } }), 'boot-1', { akPublic: AK }));
      expect(err).toMatchObject({ status: 409, reason: 'ek-unusable' });
      // What tpm-routes.ts sends the agent (its message) is fixed.
      expect(err.message).toBe("node-a's registered EK cannot be used (see the server log)");
      expect(events.at(-1)?.detail).toEqual({ bootId: 'boot-1', reason: 'ek-unusable', message: err.message });
      await settled();
      const line = logs.find((l) => l.reason === 'ek-unusable');
      expect(line?.detail).toBe('tpm.ek eks/node-a.pub: EISDIR');
      expect(line?.msg).toBe(`TPM attestation refused: ${err.message}`);
      // A longer one is cut at 500 characters in the log too.
      const deep = ['a', 'b', 'c'].map((c) => c.repeat(200)).join('/');
      mkdirSync(path.join(dir, 'eks', deep, 'node-a.pub'), { recursive: true });
      await refusal(() => tpm.challenge(nodeA({ tpm: { ek: `eks/${deep}/node-a.pub` } }), 'boot-2', { akPublic: AK }));
      await settled();
      expect(logs.filter((l) => l.reason === 'ek-unusable').at(-1)?.detail).toBe(`tpm.ek eks/${deep}/node-a.pub: EISDIR`.slice(0, 500));
    },
    DEADLINE_MS,
  );

  it(
    'an error of the registry that is not about the EK is not turned into a refusal',
    async () => {
      const reg = registry();
      vi.spyOn(reg, 'registered').mockImplementation(() => {
        throw new Error('state directory gone');
      });
      const tpm = admission({ registry: reg });
      expect(() => tpm.challenge(nodeA(), 'boot-1', { akPublic: AK })).toThrow('state directory gone');
      expect(events).toEqual([]);
      expect(await count('ek-unusable')).toBe(0);
    },
    DEADLINE_MS,
  );

  it(
    'at most five challenges per boot: the sixth is refused 409, counted but not put on the timeline; the next boot starts afresh',
    async () => {
      const tpm = admission();
      // Refused challenges count too: an agent looping on a bad AK is still a loop.
      await refusal(() => tpm.challenge(nodeA(), 'boot-1', { akPublic: AK.subarray(0, 10) }));
      for (let i = 0; i < 3; i++) tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const fifth = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      const onTimeline = events.length;
      const err = await refusal(() => tpm.challenge(nodeA(), 'boot-1', { akPublic: AK }));
      expect(err).toMatchObject({ status: 409, reason: 'too-many-challenges' });
      expect(err.message).toBe('at most 5 TPM challenges per boot');
      expect(await count('too-many-challenges')).toBe(1);
      expect(events.length).toBe(onTimeline);
      // Another node's count is its own.
      expect(tpm.challenge(node({ mac: '52:54:00:7a:00:02', tpm: nodeA().tpm }), 'boot-1', { akPublic: AK }).ekType).toBe('rsa');
      const fresh = tpm.challenge(nodeA(), 'boot-2', { akPublic: AK });
      for (let i = 0; i < 4; i++) tpm.challenge(nodeA(), 'boot-2', { akPublic: AK });
      expect((await refusal(() => tpm.challenge(nodeA(), 'boot-2', { akPublic: AK }))).reason).toBe('too-many-challenges');
      expect(await count('too-many-challenges')).toBe(2);
      // The refusals took nothing away: boot-2's last challenge is answered, and boot-1's fifth was the one out before it.
      expect(activate(fifth.credential, registered, AK_NAME)).toBeDefined();
      expect(activate(fresh.credential, registered, AK_NAME)).toBeDefined();
    },
    DEADLINE_MS,
  );

  it(
    'works without onAttested and without a clock of its own (events stamped now)',
    async () => {
      const tpm = admission({ onAttested: undefined, now: undefined });
      const before = Date.now();
      const challenge = tpm.challenge(nodeA(), 'boot-1', { akPublic: AK });
      await tpm.answer(nodeA(), 'boot-1', activate(challenge.credential, registered, AK_NAME) as Buffer);
      expect(tpm.isAttested(MAC, 'boot-1')).toBe(true);
      const at = Date.parse(events.at(-1)?.at ?? '');
      expect(at).toBeGreaterThanOrEqual(before - 1000);
      expect(at).toBeLessThanOrEqual(Date.now() + 1000);
    },
    DEADLINE_MS,
  );
});
