// kubernetes.admission: tpm's decision (server/join/tpm-admission.ts, the EK
// registry beside it) with real TPMs: two swtpm instances and tpm2-tools play
// the registered node's TPM and another machine's. Only the registered TPM's
// answer attests the boot; every refusal carries its reason on the timeline and
// in bootfarm_tpm_attestations_total.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { NetLab } from '../../server/lab/netlab.js';
import { parseConfig } from '../../server/config/load.js';
import { effectiveNode, type EffectiveNode } from '../../server/inventory/effective.js';
import { FileStore } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';
import { EkRegistry } from '../../server/join/tpm-ek-registry.js';
import { TpmAdmission, TpmRefusal, type Challenge } from '../../server/join/tpm-admission.js';
import { Swtpm, type TpmKeys } from '../lib/swtpm.js';

const MAC_A = '52:54:00:00:0a:01';
const MAC_T = '52:54:00:00:0a:02';

describe('TPM admission with swtpm', () => {
  let lab: NetLab;
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let keysA: TpmKeys;
  let keysB: TpmKeys;
  let dir: string;
  let store: FileStore;
  let metrics: Metrics;
  let nodeA: EffectiveNode;
  let nodeT: EffectiveNode;
  let counter = 0;

  const admission = (trustOnFirstUse: boolean, attested: string[] = []) =>
    new TpmAdmission({
      registry: EkRegistry.open(dir, path.join(dir, 'bootfarm.yaml')),
      trustOnFirstUse,
      store,
      metrics,
      logger: pino({ level: 'silent' }),
      onAttested: (mac, bootId) => attested.push(`${mac}/${bootId}`),
    });
  /** What the agent does with a challenge: tpm2_activatecredential on its TPM; undefined when the TPM refuses. */
  const activate = async (tpm: Swtpm, keys: TpmKeys, challenge: Challenge): Promise<Buffer | undefined> => {
    const file = path.join(dir, `challenge-${counter++}.bin`);
    writeFileSync(file, challenge.credential);
    return (await tpm.activate(keys, file)).secret;
  };
  const refusal = (fn: () => unknown): TpmRefusal => {
    try {
      fn();
    } catch (err) {
      if (err instanceof TpmRefusal) return err;
      throw err;
    }
    throw new Error('not refused');
  };
  const refusedAsync = async (p: Promise<unknown>): Promise<TpmRefusal> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof TpmRefusal)) throw new Error(`expected a refusal, got ${String(err)}`);
    return err;
  };
  const metric = async (outcome: string): Promise<number> =>
    Number(new RegExp(`bootfarm_tpm_attestations_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await metrics.registry.metrics())?.[1] ?? 0);
  const lastEvent = (mac: string) => store.events(mac).at(-1);

  beforeAll(async () => {
    lab = await NetLab.create('tpa');
    const host = await lab.addHost('tpms');
    [tpmA, tpmB] = [await Swtpm.start(lab, host.ns, 2321), await Swtpm.start(lab, host.ns, 2331)];
    [keysA, keysB] = [await tpmA.createKeys('rsa', 'a'), await tpmB.createKeys('rsa', 'b')];
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-tpm-adm-'));
    writeFileSync(path.join(dir, 'node-a-ek.pub'), keysA.ekPub);
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir}/state }
nodes:
  - { mac: "${MAC_A}", hostname: node-a, tpm: { ek: node-a-ek.pub } }
  - { mac: "${MAC_T}", hostname: node-t }
`,
      path.join(dir, 'bootfarm.yaml'),
    );
    store = (await FileStore.open(dir, config.nodes)).store;
    metrics = new Metrics();
    const nodes = config.nodes.map((n) => effectiveNode(n, config.layers, 'config'));
    [nodeA, nodeT] = [nodes[0] as EffectiveNode, nodes[1] as EffectiveNode];
  });

  afterAll(async () => {
    await tpmA?.stop();
    await tpmB?.stop();
    await store?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the registered TPM attests its boot: challenge, activation, answer', async () => {
    const attested: string[] = [];
    const tpm = admission(false, attested);
    const challenge = tpm.challenge(nodeA, 'boot-1', { akPublic: keysA.akPub, akName: keysA.akName, ekPublic: keysA.ekPub });
    expect(challenge.akName.equals(keysA.akName)).toBe(true);
    expect(lastEvent(MAC_A)).toMatchObject({ type: 'tpm.challenge', detail: { bootId: 'boot-1', ekSource: 'config' } });
    expect(tpm.isAttested(MAC_A, 'boot-1')).toBe(false);
    const secret = await activate(tpmA, keysA, challenge);
    expect(secret?.length).toBe(32);
    await tpm.answer(nodeA, 'boot-1', secret as Buffer);
    expect(tpm.isAttested(MAC_A, 'boot-1')).toBe(true);
    expect(tpm.isAttested(MAC_A, 'boot-2')).toBe(false);
    expect(attested).toEqual([`${MAC_A}/boot-1`]);
    expect(lastEvent(MAC_A)).toMatchObject({ type: 'tpm.attested', detail: { bootId: 'boot-1' } });
    expect(await metric('attested')).toBe(1);
    // The answer was single-use.
    expect((await refusedAsync(tpm.answer(nodeA, 'boot-1', secret as Buffer))).reason).toBe('no-challenge');

    // seal(): for this attested boot's TPM and AK only.
    const token = Buffer.from('abcdef.0123456789abcdef');
    const sealed = { credential: tpm.seal(MAC_A, 'boot-1', token) } as Challenge;
    expect((await activate(tpmA, keysA, sealed))?.equals(token)).toBe(true);
    expect(await activate(tpmB, keysB, sealed)).toBeUndefined();
    expect(() => tpm.seal(MAC_A, 'boot-2', token)).toThrow(/not attested/);
  });

  it("another machine's TPM is refused: by its EK when it sends it, by its wrong answer when it does not", async () => {
    const tpm = admission(false);
    const mismatch = refusal(() => tpm.challenge(nodeA, 'boot-3', { akPublic: keysB.akPub, ekPublic: keysB.ekPub }));
    expect(mismatch).toMatchObject({ status: 403, reason: 'ek-mismatch' });
    expect(mismatch.message).toContain("not node-a's registered EK");
    expect(lastEvent(MAC_A)).toMatchObject({ type: 'tpm.refused', detail: { bootId: 'boot-3', reason: 'ek-mismatch' } });
    expect(await metric('ek-mismatch')).toBe(1);

    // Silent about its EK: the credential is sealed to node-a's EK, which this TPM does not hold.
    const challenge = tpm.challenge(nodeA, 'boot-3', { akPublic: keysB.akPub });
    expect(await activate(tpmB, keysB, challenge)).toBeUndefined();
    const wrong = await refusedAsync(tpm.answer(nodeA, 'boot-3', Buffer.alloc(32, 1)));
    expect(wrong).toMatchObject({ status: 403, reason: 'wrong-answer' });
    expect(lastEvent(MAC_A)).toMatchObject({ type: 'tpm.refused', detail: { reason: 'wrong-answer' } });
    expect(tpm.isAttested(MAC_A, 'boot-3')).toBe(false);
    // One try per challenge: the right TPM's answer to a spent challenge is too late.
    expect((await refusedAsync(tpm.answer(nodeA, 'boot-3', Buffer.alloc(32, 1)))).reason).toBe('no-challenge');
  });

  it("refuses an AK that is not a restricted signing key bound to its TPM, and a Name that is not the AK's", () => {
    const tpm = admission(false);
    // The EK as "AK": a decryption key, not a signing one.
    const notAk = refusal(() => tpm.challenge(nodeA, 'boot-4', { akPublic: keysA.ekPub }));
    expect(notAk).toMatchObject({ reason: 'ak-attributes' });
    expect(notAk.message).toContain('missing sign');
    const flipped = Buffer.from(keysA.akPub);
    flipped.writeUInt32BE(flipped.readUInt32BE(6) & ~(1 << 1), 6); // clear fixedTPM (objectAttributes follow size, type, nameAlg)
    expect(refusal(() => tpm.challenge(nodeA, 'boot-4', { akPublic: flipped })).message).toContain('missing fixedTPM');
    expect(refusal(() => tpm.challenge(nodeA, 'boot-4', { akPublic: keysA.akPub, akName: keysB.akName })).reason).toBe('ak-name-mismatch');
    expect(refusal(() => tpm.challenge(nodeA, 'boot-4', { akPublic: keysA.akPub.subarray(0, 40) })).reason).toBe('ak-malformed');
    tpm.challenge(nodeA, 'boot-4', { akPublic: keysA.akPub }); // the fifth of this boot
    expect(refusal(() => tpm.challenge(nodeA, 'boot-4', { akPublic: keysA.akPub })).reason).toBe('too-many-challenges');
    tpm.challenge(nodeA, 'boot-5', { akPublic: keysA.akPub }); // the next boot starts afresh
  });

  it('trust on first use: off, a node without an EK is refused; on, its first attested EK is kept and binds it', async () => {
    expect(refusal(() => admission(false).challenge(nodeT, 'boot-5', { akPublic: keysB.akPub, ekPublic: keysB.ekPub })).reason).toBe(
      'no-ek-registered',
    );
    const tofu = admission(true);
    expect(refusal(() => tofu.challenge(nodeT, 'boot-5', { akPublic: keysB.akPub })).reason).toBe('no-ek-registered');
    const challenge = tofu.challenge(nodeT, 'boot-5', { akPublic: keysB.akPub, ekPublic: keysB.ekPub });
    expect(lastEvent(MAC_T)).toMatchObject({ type: 'tpm.challenge', detail: { ekSource: 'trust-on-first-use' } });
    await tofu.answer(nodeT, 'boot-5', (await activate(tpmB, keysB, challenge)) as Buffer);
    expect(tofu.isAttested(MAC_T, 'boot-5')).toBe(true);
    // Kept in the state directory, 0600, and binding from then on (a new process reads it).
    const file = path.join(dir, 'tpm-eks.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, eks: { [MAC_T]: keysB.ekPub.toString('base64') } });
    const later = admission(true);
    expect(refusal(() => later.challenge(nodeT, 'boot-6', { akPublic: keysA.akPub, ekPublic: keysA.ekPub })).reason).toBe('ek-mismatch');
    const again = later.challenge(nodeT, 'boot-6', { akPublic: keysB.akPub });
    expect(again.ekName.toString('hex')).toBe(challenge.ekName.toString('hex'));
  });

  it('an ECC EK registered, an RSA EK offered: the challenge is for the registered ECC EK, and only its TPM answers', async () => {
    const ecc = await tpmA.createKeys('ecc', 'a-ecc');
    const node = { ...nodeA, tpm: { ek: ecc.ekPub.toString('base64') } };
    const tpm = admission(false);
    const challenge = tpm.challenge(node, 'boot-8', { akPublic: keysA.akPub, ekPublic: keysA.ekPub });
    expect(challenge.ekType).toBe('ecc');
    expect(await activate(tpmA, { ...keysA, ekCtx: ecc.ekCtx }, challenge)).toBeDefined();
    // Same type, another TPM's: still a mismatch.
    const otherEcc = await tpmB.createKeys('ecc', 'b-ecc');
    expect(refusal(() => tpm.challenge(node, 'boot-8', { akPublic: keysB.akPub, ekPublic: otherEcc.ekPub })).reason).toBe('ek-mismatch');
  });

  it('a registered EK that cannot be used is a refusal with the reason, not a crash', () => {
    const broken = { ...nodeA, tpm: { ek: 'bm90IGFuIEVL' } }; // base64 of "not an EK"
    const err = refusal(() => admission(false).challenge(broken, 'boot-7', { akPublic: keysA.akPub }));
    expect(err).toMatchObject({ status: 409, reason: 'ek-unusable' });
    // The detail (is not a TPM2B_PUBLIC, is not base64) is the log's: the agent gets a fixed reason.
    expect(err.message).toBe(`${nodeA.hostname}'s registered EK cannot be used (see the server log)`);
    const api = { ...nodeA, origin: 'api' as const, tpm: { ek: 'node-a-ek.pub' } };
    expect(refusal(() => admission(false).challenge(api, 'boot-7', { akPublic: keysA.akPub }))).toMatchObject({
      status: 409,
      reason: 'ek-unusable',
    });
  });
});
