// The token and session decisions of server/join/boot-sessions.ts, in-process
// over the real FileStore with a scripted token minter and a clock the test
// moves: the one-time nonce and its handout, the one-time join token, expiry,
// revocation, what a restart keeps, and every refusal (its status, its count in
// bootfarm_agent_credential_refused_total and its alarm on the timeline). The
// same paths over HTTP with a real agent: test/integration/join.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino, { type Logger } from 'pino';
import { AgentError, BootSessions, type BootSessionDeps, type CredentialRefusal } from '../../server/join/boot-sessions.js';
import { FileStore, type BootSessionRecord, type NodeEvent } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';
import type { MintedToken, TokenMinter } from '../../server/kube/minter.js';
import type { ResolvedKubernetes } from '../../server/config/types.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';

const TEST_TIMEOUT_MS = 10_000;
const MAC = '52:54:00:5e:00:01';
const ADDRESS = '10.9.0.50';
const OTHER = '10.9.0.66';
const T0 = 1_800_000_000_000;
const TTL_SECONDS = 3600;

const node = (over: Partial<EffectiveNode> = {}): EffectiveNode =>
  ({ mac: MAC, hostname: 'n1', join: true, origin: 'config', ...over }) as EffectiveNode;

const kubernetes = (over: Partial<ResolvedKubernetes> = {}): ResolvedKubernetes => ({
  apiServer: 'https://10.9.0.1:6443',
  caCertHashes: [],
  kubeconfig: undefined,
  staticToken: undefined,
  tokenTtlSeconds: TTL_SECONDS,
  version: 'v1.31',
  kubeadmApiVersion: 'kubeadm.k8s.io/v1beta4',
  admission: 'auto',
  tpm: { trustOnFirstUse: false },
  ...over,
});

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

/** Mints `tok000`, `tok001`...; a mint can be held (gate) or fail; records every revoke. */
class ScriptedMinter implements TokenMinter {
  readonly mints: Array<{ hostname: string; ttlSeconds: number }> = [];
  readonly revoked: string[] = [];
  failMint: Error | undefined;
  failRevoke = false;
  gate: Promise<void> | undefined;
  constructor(
    readonly kind: 'kubernetes-api' | 'static',
    private readonly clock: () => number,
  ) {}
  async mint(n: { hostname: string; mac: string }, ttlSeconds: number): Promise<MintedToken> {
    const id = `tok${String(this.mints.length).padStart(3, '0')}`;
    this.mints.push({ hostname: n.hostname, ttlSeconds });
    if (this.gate) await this.gate;
    if (this.failMint) throw this.failMint;
    return { id, secret: 'abcdefghijklmnop', token: `${id}.abcdefghijklmnop`, expiresAt: this.clock() + ttlSeconds * 1000 };
  }
  revoke(tokenId: string): Promise<void> {
    if (this.failRevoke) return Promise.reject(new Error('the API server is down'));
    this.revoked.push(tokenId);
    return Promise.resolve();
  }
}

/** The AgentError `run` throws or rejects with; fails the test when it throws nothing or something else. */
async function refusal(run: () => unknown): Promise<AgentError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof AgentError) return err;
    throw err;
  }
  throw new Error('expected an AgentError, got none');
}

describe('boot sessions: nonce, secret, join token', () => {
  let dir: string;
  let store: FileStore;
  let metrics: Metrics;
  let minter: ScriptedMinter;
  let clock: number;
  let logs: Array<Record<string, unknown>>;
  let logger: Logger;
  let attested: Set<string>;
  let sessions: BootSessions;

  const deps = (over: Partial<BootSessionDeps> = {}): BootSessionDeps => ({
    store,
    kubernetes: kubernetes(),
    minter,
    metrics,
    logger,
    now: () => clock,
    attested: (mac, bootId) => attested.has(`${mac} ${bootId}`),
    nodeByMac: (mac) => (mac === MAC ? node() : undefined),
    ...over,
  });
  const record = (): BootSessionRecord => {
    const s = store.sessions().find((r) => r.mac === MAC);
    if (!s) throw new Error('no session recorded');
    return s;
  };
  const events = (type?: string): NodeEvent[] => store.events(MAC).filter((e) => type === undefined || e.type === type);
  const refused = async (reason: CredentialRefusal) =>
    (await metrics.agentCredentialRefused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  const inFlight = async () => (await metrics.bootsInFlight.get()).values[0]?.value ?? 0;
  const mismatches = async () => (await metrics.agentAddressMismatch.get()).values[0]?.value ?? 0;
  const minted = async (outcome: string) => (await metrics.tokensMinted.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  const logged = (msg: string) => logs.filter((l) => l.msg === msg);
  /** Nonce served to ADDRESS, nonce spent: the secret. */
  const openBoot = async (s = sessions, n = node()) => {
    const nonce = await s.issueBootNonce(n, ADDRESS);
    return (await s.openConfig(n, { nonce, authorization: undefined }, ADDRESS)).secret;
  };
  const bearer = (secret: string) => `Bearer ${secret}`;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-boot-sessions-'));
    store = (await FileStore.open(dir, [], false)).store;
    metrics = new Metrics();
    clock = T0;
    minter = new ScriptedMinter('kubernetes-api', () => clock);
    logs = [];
    logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    attested = new Set();
    sessions = new BootSessions(deps());
  });
  afterEach(async () => {
    vi.useRealTimers();
    // A mint a test left running writes its token id before the store closes.
    await new Promise((resolve) => setImmediate(resolve));
    await sessions.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('the boot script opens a boot bound to its address', () => {
    it(
      'a first script: a fresh nonce whose digest only is kept, the boot bound to the address, one boot in flight',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
        const s = record();
        expect(s).toMatchObject({
          state: 'booting',
          address: ADDRESS,
          nonceDigest: sha256(nonce),
          nonceUsedAt: undefined,
          secretDigest: undefined,
          joinServed: false,
          tokenId: undefined,
          openedAt: T0,
          startedAt: T0,
        });
        expect(s.bootId).toMatch(/^[0-9a-f]{16}$/);
        expect(JSON.stringify(store.sessions())).not.toContain(nonce);
        expect(await inFlight()).toBe(1);
        expect(events('boot.session')).toEqual([
          { at: new Date(T0).toISOString(), mac: MAC, type: 'boot.session', detail: { bootId: s.bootId, join: true, address: ADDRESS } },
        ]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the boot says it will not join when the node does not, or there is no cluster, no minter, or the node is unknown',
      async () => {
        let macs = 0;
        const joins = async (n: EffectiveNode, over: Partial<BootSessionDeps>) => {
          const mac = `52:54:00:5e:01:0${macs++}`;
          await new BootSessions(deps(over)).issueBootNonce({ ...n, mac }, ADDRESS);
          return store.events(mac).at(-1)?.detail?.join;
        };
        expect(await joins(node({ join: false }), {})).toBe(false);
        expect(await joins(node(), { kubernetes: undefined })).toBe(false);
        expect(await joins(node(), { minter: undefined })).toBe(false);
        expect(await joins(node({ origin: 'unknown' }), {})).toBe(false);
        expect(await joins(node({ origin: 'api' }), {})).toBe(true);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the script fetched again before the nonce is spent (a TFTP retry) gets the same nonce and the same boot',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = record();
        clock += 60_000;
        expect(await sessions.issueBootNonce(node(), ADDRESS)).toBe(nonce);
        expect(record()).toMatchObject({ bootId, nonceDigest: sha256(nonce), openedAt: T0 });
        expect(await inFlight()).toBe(1);
        expect(events('boot.session')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'after a restart lost the nonce, the script fetched again gets a new nonce for the same boot; the old one no longer opens it',
      async () => {
        const old = await sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = record();
        const restarted = new BootSessions(deps());
        const renewed = await restarted.issueBootNonce(node(), ADDRESS);
        expect(renewed).not.toBe(old);
        expect(record()).toMatchObject({ bootId, nonceDigest: sha256(renewed), state: 'booting' });
        // The renewed nonce is remembered: a second fetch gets it again.
        expect(await restarted.issueBootNonce(node(), ADDRESS)).toBe(renewed);
        const err = await refusal(() => restarted.openConfig(node(), { nonce: old, authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(record().state).toBe('revoked');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a script for another address while the boot is bound is refused (403), counted, and an alarm; the boot goes on',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const before = record();
        clock += 900_000 - 1;
        const err = await refusal(() => sessions.issueBootNonce(node(), OTHER));
        expect(err.status).toBe(403);
        expect(err.message).toBe('a boot of n1 bound to another address is under way');
        expect(record()).toEqual(before);
        expect(await mismatches()).toBe(1);
        expect(await refused('from-another-address')).toBe(1);
        expect(events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: before.bootId, from: OTHER, boundTo: ADDRESS, path: 'boot script' },
        ]);
        expect(logged('boot credential refused')).toMatchObject([
          { node: 'n1', mac: MAC, bootId: before.bootId, reason: 'from-another-address', from: OTHER },
        ]);
        // The node's own address still gets its nonce.
        expect(await sessions.issueBootNonce(node(), ADDRESS)).toBe(nonce);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      '900 s after the script, another address starts the next boot (the old one superseded)',
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        const first = record();
        clock += 900_000;
        const nonce = await sessions.issueBootNonce(node(), OTHER);
        const next = record();
        expect(next.bootId).not.toBe(first.bootId);
        expect(next).toMatchObject({ address: OTHER, nonceDigest: sha256(nonce), openedAt: clock, startedAt: clock, state: 'booting' });
        expect(await inFlight()).toBe(1);
        const durations = (await metrics.bootDuration.get()).values.filter((v) => v.metricName === 'bootfarm_boot_duration_seconds_sum');
        expect(durations).toMatchObject([{ labels: { outcome: 'superseded' }, value: 900 }]);
        expect(events('boot.session')).toHaveLength(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot whose token is valid stays bound past 900 s; once the token's expiry passes another address may boot",
      async () => {
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        clock += 1_000_000;
        expect((await refusal(() => sessions.issueBootNonce(node(), OTHER))).status).toBe(403);
        clock = T0 + TTL_SECONDS * 1000;
        await sessions.issueBootNonce(node(), OTHER);
        expect(record().address).toBe(OTHER);
        expect(minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a script served again to the boot's address after its nonce was spent is the node's next boot",
      async () => {
        await openBoot();
        const first = record();
        clock += 5_000;
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        expect(record().bootId).not.toBe(first.bootId);
        expect(record()).toMatchObject({ nonceDigest: sha256(nonce), nonceUsedAt: undefined, state: 'booting' });
        expect(await inFlight()).toBe(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot's duration counts from its first DISCOVER; a DISCOVER during the boot does not move the next boot's start",
      async () => {
        sessions.noteDiscover(node());
        clock += 10_000;
        sessions.noteDiscover(node());
        clock += 10_000;
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(record()).toMatchObject({ startedAt: T0, openedAt: T0 + 20_000 });
        // The start is used once: the next boot without a DISCOVER starts at its script.
        clock += 900_000;
        await sessions.issueBootNonce(node(), OTHER);
        expect(record().startedAt).toBe(clock);
        // A DISCOVER after the boot opened is the next boot's start...
        clock += 1_000;
        sessions.noteDiscover(node());
        const discoverAt = clock;
        clock += 1_000;
        sessions.noteDiscover(node());
        clock += 900_000;
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(record().startedAt).toBe(discoverAt);
        // ...and a DISCOVER noted before a boot that opened since (by another instance over the same state) is replaced.
        sessions.noteDiscover(node());
        clock += 900_000;
        await new BootSessions(deps()).issueBootNonce(node(), OTHER);
        clock += 1_000;
        sessions.noteDiscover(node());
        const replacedAt = clock;
        clock += 900_000;
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(record().startedAt).toBe(replacedAt);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the configuration fetch spends the nonce once', () => {
    it(
      'the nonce buys a secret (digest kept), rebinds the boot to the fetching address and mints the token',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        clock += 3_000;
        const { session, secret } = await sessions.openConfig(node(), { nonce, authorization: undefined }, OTHER);
        expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
        expect(session).toMatchObject({ nonceUsedAt: T0 + 3_000, secretDigest: sha256(secret), address: OTHER, state: 'booting' });
        expect(record()).toMatchObject({ bootId: session.bootId, nonceUsedAt: T0 + 3_000, secretDigest: sha256(secret), address: OTHER });
        expect(events('boot.nonce-spent').map((e) => e.detail)).toEqual([
          { bootId: session.bootId, address: OTHER, scriptAddress: ADDRESS },
        ]);
        expect(minter.mints).toEqual([{ hostname: 'n1', ttlSeconds: TTL_SECONDS }]);
        await vi.waitFor(() => expect(events('token.minted')).toHaveLength(1));
        expect(record()).toMatchObject({ tokenId: 'tok000', tokenExpiresAt: clock + TTL_SECONDS * 1000 });
        expect(await minted('ok')).toBe(1);
        expect(events('token.minted').map((e) => e.detail)).toEqual([{ tokenId: 'tok000' }]);
        expect(logged('bootstrap token minted')).toMatchObject([
          {
            node: 'n1',
            mac: MAC,
            tokenId: 'tok000',
            expiresAt: new Date(clock + TTL_SECONDS * 1000).toISOString(),
            minter: 'kubernetes-api',
          },
        ]);
        // The fetch from the script's own address names no script address.
        const again = await sessions.issueBootNonce(node(), OTHER);
        await sessions.openConfig(node(), { nonce: again, authorization: undefined }, OTHER);
        expect(events('boot.nonce-spent').at(-1)?.detail).toEqual({ bootId: record().bootId, address: OTHER });
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a node that does not join gets its secret and no token',
      async () => {
        await openBoot(sessions, node({ join: false }));
        expect(record().secretDigest).toBeDefined();
        expect(minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a later fetch with the secret gets the same boot back; a wrong secret is refused (401) and the boot goes on',
      async () => {
        const secret = await openBoot();
        const opened = record();
        clock += 1_000;
        const again = await sessions.openConfig(node(), { nonce: undefined, authorization: bearer(secret) }, ADDRESS);
        expect(again).toEqual({ session: opened, secret });
        const err = await refusal(() => sessions.openConfig(node(), { nonce: undefined, authorization: bearer('x'.repeat(32)) }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "the secret is not this boot's"]);
        expect(record().state).toBe('booting');
        expect(await refused('secret-mismatch')).toBe(1);
        expect(events('security.secret-mismatch')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a fetch with neither nonce nor secret is refused as missing, the boot goes on',
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => sessions.openConfig(node(), { nonce: undefined, authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "this boot's nonce (bootfarm.nonce on the kernel command line) is required"]);
        expect(await refused('missing')).toBe(1);
        expect(record().state).toBe('booting');
        expect(events().filter((e) => e.type.startsWith('security.'))).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a wrong nonce from the boot address revokes the boot (401, alarm, event with reason)',
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => sessions.openConfig(node(), { nonce: 'y'.repeat(32), authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "the nonce is not this boot's; the boot is revoked"]);
        expect(record().state).toBe('revoked');
        expect(await refused('nonce-mismatch')).toBe(1);
        expect(await inFlight()).toBe(0);
        expect(events('revoked').map((e) => e.detail)).toEqual([
          { bootId: record().bootId, seconds: 0, reason: "a wrong boot nonce was presented from the boot's own address" },
        ]);
        expect(logged('boot revoked')).toMatchObject([{ mac: MAC, bootId: record().bootId }]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the nonce presented a second time revokes the boot and its token',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        await sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        const err = await refusal(() => sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "this boot's nonce was used already; the boot is revoked"]);
        expect(record()).toMatchObject({ state: 'revoked', tokenId: undefined });
        expect(await refused('nonce-replay')).toBe(1);
        expect(minter.revoked).toEqual(['tok000']);
        expect(events('token.revoked').map((e) => e.detail)).toEqual([
          { tokenId: 'tok000', why: 'the boot nonce was presented a second time' },
        ]);
        // Once the boot is over, the nonce is a replay; anything else is a boot that is over.
        const replay = await refusal(() => sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect([replay.status, replay.message]).toEqual([401, "this boot's nonce was used already and the boot is over"]);
        expect(await refused('nonce-replay')).toBe(2);
        const over = await refusal(() => sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect([over.status, over.message]).toEqual([401, 'no boot of n1 is open: its boot script (with bootfarm.nonce) comes first']);
        expect(await refused('boot-over')).toBe(1);
        expect(await refused('missing')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'with no boot at all the fetch is refused as missing',
      async () => {
        const err = await refusal(() => sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(await refused('missing')).toBe(1);
        expect(await refused('boot-over')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot kept from before nonces (no digest) is superseded at start and opens nothing',
      async () => {
        await store.putSession({
          mac: MAC,
          bootId: 'old',
          secret: 'in-the-clear',
          startedAt: T0,
          openedAt: T0,
          state: 'booting',
          joinServed: false,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        await sessions.start();
        expect(record()).toMatchObject({ state: 'superseded', secret: undefined });
        expect(await inFlight()).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'an alarm of one kind is put on the timeline at most every 10 s; every refusal is counted',
      async () => {
        const secret = await openBoot();
        const wrong = { nonce: undefined, authorization: bearer(`${secret}x`) };
        await refusal(() => sessions.openConfig(node(), wrong, ADDRESS));
        clock += 9_999;
        await refusal(() => sessions.openConfig(node(), wrong, ADDRESS));
        expect(events('security.secret-mismatch')).toHaveLength(1);
        clock += 1;
        await refusal(() => sessions.openConfig(node(), wrong, ADDRESS));
        expect(events('security.secret-mismatch')).toHaveLength(2);
        expect(await refused('secret-mismatch')).toBe(3);
        // A new boot starts the alarms afresh.
        await sessions.issueBootNonce(node(), ADDRESS);
        const next = await sessions.issueBootNonce(node(), ADDRESS);
        const fresh = (await sessions.openConfig(node(), { nonce: next, authorization: undefined }, ADDRESS)).secret;
        await refusal(() => sessions.openConfig(node(), { nonce: undefined, authorization: bearer(`${fresh}x`) }, ADDRESS));
        expect(events('security.secret-mismatch')).toHaveLength(3);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the join token is handed out once', () => {
    it(
      'the join gets the minted token once; the second request is refused (410)',
      async () => {
        const secret = await openBoot();
        const token = await sessions.takeJoinToken(node(), bearer(secret));
        expect(token).toMatchObject({ id: 'tok000', token: 'tok000.abcdefghijklmnop' });
        expect(record().joinServed).toBe(true);
        expect(minter.mints).toHaveLength(1);
        expect(events('join.served').map((e) => e.detail)).toEqual([{ tokenId: 'tok000' }]);
        expect(logged('join configuration served')).toMatchObject([{ node: 'n1', tokenId: 'tok000' }]);
        const err = await refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        expect([err.status, err.message]).toEqual([410, 'the join configuration of this boot was handed out already']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'two racing join requests: one gets the token, the other 410',
      async () => {
        const secret = await openBoot();
        const results = await Promise.allSettled([
          sessions.takeJoinToken(node(), bearer(secret)),
          sessions.takeJoinToken(node(), bearer(secret)),
        ]);
        expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token that was not minted yet (restart) is minted for the join',
      async () => {
        const secret = await openBoot(sessions, node({ join: false }));
        const joining = new BootSessions(deps());
        const token = await joining.takeJoinToken(node(), bearer(secret));
        expect(token.id).toBe('tok000');
        expect(minter.mints).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a node that does not join, or no kubernetes section: 409 naming why',
      async () => {
        const secret = await openBoot(sessions, node({ join: false }));
        const err = await refusal(() => sessions.takeJoinToken(node({ join: false }), bearer(secret)));
        expect([err.status, err.message]).toEqual([409, 'node n1 does not join (join: false)']);
        const bare = new BootSessions(deps({ kubernetes: undefined }));
        const none = await refusal(() => bare.takeJoinToken(node(), bearer(secret)));
        expect([none.status, none.message]).toEqual([409, 'no kubernetes section is configured']);
        expect(record().joinServed).toBe(false);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the join of a boot that is over is refused (410); so are missing and wrong secrets (401)',
      async () => {
        const secret = await openBoot();
        await sessions.report(node(), bearer(secret), 'kubelet', 'failed', 'no route');
        const err = await refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        expect([err.status, err.message]).toEqual([410, 'this boot is over (failed)']);
        const missing = await refusal(() => sessions.takeJoinToken(node(), undefined));
        expect([missing.status, missing.message]).toEqual([401, "a bearer secret from this boot's configuration is required"]);
        expect(await refused('missing')).toBe(1);
        const wrong = await refusal(() => sessions.takeJoinToken(node(), bearer('w'.repeat(32))));
        expect([wrong.status, wrong.message]).toEqual([401, "the secret is not this boot's"]);
        expect(await refused('secret-mismatch')).toBe(1);
        const nobody = await refusal(() => sessions.authenticate('52:54:00:5e:00:99', bearer(secret)));
        expect(nobody.status).toBe(401);
        expect(await refused('missing')).toBe(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed mint: the join gets 502 naming the cause, counted and on the timeline',
      async () => {
        minter.failMint = new Error('forbidden');
        const secret = await openBoot();
        const err = await refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        expect([err.status, err.message]).toEqual([502, 'minting the bootstrap token failed: forbidden']);
        expect(await minted('failed')).toBe(1);
        expect(events('token.failed').map((e) => e.detail)).toEqual([{ reason: 'forbidden' }]);
        expect(logged('bootstrap token not minted')).toMatchObject([{ node: 'n1', mac: MAC, err: 'forbidden' }]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot that ends while its token is minted: the token is deleted, the join gets 410',
      async () => {
        let release = () => {};
        minter.gate = new Promise((resolve) => (release = resolve));
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        const join = refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        await vi.waitFor(() => expect(record().joinServed).toBe(true));
        // The next boot waits for the mint in flight to end before its token can be deleted.
        const next = sessions.issueBootNonce(node(), ADDRESS);
        await vi.waitFor(() => expect(record().state).toBe('superseded'));
        release();
        await next;
        const err = await join;
        expect([err.status, err.message]).toEqual([410, 'the boot ended while its token was being minted']);
        expect(minter.revoked).toEqual(['tok000']);
        expect(record().tokenId).toBeUndefined();
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a static token: never recorded as a token id, never deleted by bootfarm',
      async () => {
        minter = new ScriptedMinter('static', () => clock);
        sessions = new BootSessions(deps());
        const secret = await openBoot();
        expect((await sessions.takeJoinToken(node(), bearer(secret))).id).toBe('tok000');
        expect(record()).toMatchObject({ tokenId: undefined, tokenExpiresAt: T0 + TTL_SECONDS * 1000 });
        await sessions.report(node(), bearer(secret), 'join', 'ok', undefined);
        expect(record().state).toBe('joined');
        expect(minter.revoked).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('admission: approve and tpm', () => {
    it(
      'approve: the join waits (423) until an operator approves; the approval mints and is kept',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        const secret = await openBoot();
        expect(minter.mints).toEqual([]);
        expect(events('boot.pending-admission').map((e) => e.detail)).toEqual([
          { bootId: record().bootId, reason: 'waiting for an operator: bootfarm node approve n1' },
        ]);
        const waiting = await refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        expect([waiting.status, waiting.message]).toEqual([423, 'waiting for an operator: bootfarm node approve n1']);
        expect(record().joinServed).toBe(false);
        clock += 5_000;
        const approved = await sessions.approve(node(), 'alice');
        expect(approved).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice', state: 'booting' });
        expect(record()).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice' });
        expect(events('boot.approved').map((e) => e.detail)).toEqual([{ bootId: approved.bootId, by: 'alice' }]);
        expect(logged('boot approved')).toMatchObject([{ node: 'n1', by: 'alice' }]);
        expect(minter.mints).toHaveLength(1);
        // A second approval changes nothing and mints nothing more.
        clock += 5_000;
        expect(await sessions.approve(node(), 'bob')).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice' });
        expect(events('boot.approved')).toHaveLength(1);
        expect((await sessions.takeJoinToken(node(), bearer(secret))).id).toBe('tok000');
        expect(minter.mints).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: an approval given for a boot of a node that does not join mints nothing',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        await openBoot(sessions, node({ join: false }));
        expect(events('boot.pending-admission')).toEqual([]);
        await sessions.approve(node({ join: false }), 'alice');
        expect(minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: nothing to approve before the nonce is spent, after the boot, or with no boot (409 says which)',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        const none = await refusal(() => sessions.approve(node(), 'alice'));
        expect([none.status, none.message]).toEqual([409, 'n1 has no boot waiting for approval']);
        await sessions.issueBootNonce(node(), ADDRESS);
        const early = await refusal(() => sessions.approve(node(), 'alice'));
        expect([early.status, early.message]).toEqual([
          409,
          'n1 has no boot waiting for approval (its last boot is still at its boot script)',
        ]);
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        await sessions.report(node(), bearer(secret), 'join', 'ok', undefined);
        const late = await refusal(() => sessions.approve(node(), 'alice'));
        expect([late.status, late.message]).toEqual([409, 'n1 has no boot waiting for approval (its last boot is joined)']);
        expect(minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: an approval while the token is minted already mints no second one',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        await openBoot();
        let release = () => {};
        minter.gate = new Promise((resolve) => (release = resolve));
        await sessions.approve(node(), 'alice');
        await store.putSession({ ...record(), approvedAt: undefined });
        await sessions.approve(node(), 'bob');
        release();
        expect(minter.mints).toHaveLength(1);
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: the join waits (423) until the TPM answered; noteAdmitted then mints for that boot only',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'tpm' }) }));
        const secret = await openBoot();
        const { bootId } = record();
        const waiting = await refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        expect([waiting.status, waiting.message]).toEqual([423, "waiting for n1's TPM to answer its credential challenge"]);
        sessions.noteAdmitted(MAC, bootId);
        expect(minter.mints).toEqual([]);
        attested.add(`${MAC} ${bootId}`);
        sessions.noteAdmitted(MAC, 'another-boot');
        sessions.noteAdmitted('52:54:00:5e:00:99', bootId);
        expect(minter.mints).toEqual([]);
        sessions.noteAdmitted(MAC, bootId);
        expect(minter.mints).toHaveLength(1);
        sessions.noteAdmitted(MAC, bootId);
        expect(minter.mints).toHaveLength(1);
        expect((await sessions.takeJoinToken(node(), bearer(secret))).id).toBe('tok000');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: no attestation source means no boot is attested; an admission for a boot that is over mints nothing',
      async () => {
        sessions = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'tpm' }), attested: undefined }));
        const secret = await openBoot();
        expect((await refusal(() => sessions.takeJoinToken(node(), bearer(secret)))).status).toBe(423);
        const tpm = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'tpm' }) }));
        attested.add(`${MAC} ${record().bootId}`);
        const nodeLess = new BootSessions(deps({ kubernetes: kubernetes({ admission: 'tpm' }), nodeByMac: undefined }));
        nodeLess.noteAdmitted(MAC, record().bootId);
        expect(minter.mints).toEqual([]);
        await tpm.report(node(), bearer(secret), 'kubelet', 'failed', undefined);
        tpm.noteAdmitted(MAC, record().bootId);
        expect(minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: an admission arriving by MAC for a node that does not join mints nothing',
      async () => {
        sessions = new BootSessions(
          deps({ kubernetes: kubernetes({ admission: 'tpm' }), nodeByMac: (mac) => (mac === MAC ? node({ join: false }) : undefined) }),
        );
        await openBoot();
        attested.add(`${MAC} ${record().bootId}`);
        sessions.noteAdmitted(MAC, record().bootId);
        expect(minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('reports end the boot', () => {
    it(
      "join ok: joined, the token deleted and forgotten, the boot's duration observed",
      async () => {
        sessions.noteDiscover(node());
        clock += 2_000;
        const secret = await openBoot();
        await sessions.takeJoinToken(node(), bearer(secret));
        clock += 40_000;
        await sessions.report(node(), bearer(secret), 'join', 'ok', 'joined');
        expect(record()).toMatchObject({ state: 'joined', tokenId: undefined });
        expect(minter.revoked).toEqual(['tok000']);
        expect(await inFlight()).toBe(0);
        expect(events('joined').map((e) => e.detail)).toEqual([{ bootId: record().bootId, seconds: 42, reason: undefined }]);
        expect(events('token.revoked').map((e) => e.detail)).toEqual([{ tokenId: 'tok000', why: 'joined' }]);
        expect(logged('bootstrap token deleted')).toMatchObject([{ mac: MAC, tokenId: 'tok000', why: 'joined' }]);
        expect(events('agent.join').map((e) => e.detail)).toEqual([{ status: 'ok', detail: 'joined', bootId: record().bootId }]);
        expect((await metrics.agentReports.get()).values).toMatchObject([{ labels: { step: 'join', status: 'ok' }, value: 1 }]);
        expect(logged('node reported')).toMatchObject([{ node: 'n1', step: 'join', status: 'ok' }]);
        // A report after the end is recorded and changes nothing.
        await sessions.report(node(), bearer(secret), 'join', 'failed', 'late');
        expect(record().state).toBe('joined');
        expect(events('agent.join')).toHaveLength(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed step fails the boot with the step and its detail (4096 characters at most) as the reason',
      async () => {
        const secret = await openBoot();
        await sessions.report(node(), bearer(secret), 'kubeadm', 'failed', 'x'.repeat(5000));
        expect(record().state).toBe('failed');
        expect(events('agent.kubeadm')[0]?.detail?.detail).toBe('x'.repeat(4096));
        expect(events('failed')[0]?.detail?.reason).toBe(`kubeadm: ${'x'.repeat(4096)}`);
        const again = await openBoot();
        await sessions.report(node(), bearer(again), 'image', 'failed', undefined);
        expect(events('failed').at(-1)?.detail?.reason).toBe('image: failed');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'booted ends a boot that does not join; a joining boot goes on to its join; other steps change nothing',
      async () => {
        const secret = await openBoot();
        await sessions.report(node(), bearer(secret), 'booted', 'ok', undefined);
        await sessions.report(node(), bearer(secret), 'network', 'ok', undefined);
        expect(record().state).toBe('booting');
        const plain = await openBoot(sessions, node({ join: false }));
        await sessions.report(node({ join: false }), bearer(plain), 'network', 'ok', undefined);
        expect(record().state).toBe('booting');
        await sessions.report(node({ join: false }), bearer(plain), 'booted', 'ok', undefined);
        expect(record().state).toBe('booted');
        expect(events('booted')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token delete that fails is kept and retried by the sweep',
      async () => {
        const secret = await openBoot();
        await sessions.takeJoinToken(node(), bearer(secret));
        minter.failRevoke = true;
        await sessions.report(node(), bearer(secret), 'join', 'ok', undefined);
        expect(record()).toMatchObject({ state: 'joined', tokenId: 'tok000' });
        expect(logged('bootstrap token not deleted; retrying later')).toMatchObject([
          { mac: MAC, tokenId: 'tok000', err: 'the API server is down' },
        ]);
        minter.failRevoke = false;
        await sessions.sweep();
        expect(record().tokenId).toBeUndefined();
        expect(minter.revoked).toEqual(['tok000']);
        expect(events('token.revoked').map((e) => e.detail)).toEqual([{ tokenId: 'tok000', why: 'retry' }]);
        await sessions.sweep();
        expect(minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the address a boot is bound to', () => {
    it(
      "no boot: not bound (the caller asks the inventory); the boot's address: bound",
      async () => {
        expect(sessions.admitBoundAddress(node(), ADDRESS, '/agent/config')).toBe(false);
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(sessions.admitBoundAddress(node(), ADDRESS, '/agent/config')).toBe(true);
        const secret = (
          await sessions.openConfig(node(), { nonce: await sessions.issueBootNonce(node(), ADDRESS), authorization: undefined }, ADDRESS)
        ).secret;
        await sessions.report(node(), bearer(secret), 'kubelet', 'failed', undefined);
        expect(sessions.admitBoundAddress(node(), OTHER, '/agent/config')).toBe(false);
        expect(await mismatches()).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "before the nonce is spent, another of the node's own addresses is let through; after, refused",
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(sessions.admitBoundAddress(node(), OTHER, '/agent/config', undefined, true)).toBe(true);
        expect((await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/config'))).status).toBe(403);
        await sessions.openConfig(node(), { nonce: await sessions.issueBootNonce(node(), ADDRESS), authorization: undefined }, ADDRESS);
        const err = await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/config', undefined, true));
        expect([err.status, err.message]).toEqual([403, 'this boot of n1 is bound to another address']);
        expect(record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a request from another address is refused, counted, and on the timeline at most every 10 s',
      async () => {
        await openBoot();
        const { bootId } = record();
        for (let i = 0; i < 3; i++) await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(await mismatches()).toBe(3);
        expect(events('security.address-mismatch').map((e) => e.detail)).toEqual([
          { bootId, boundTo: ADDRESS, from: OTHER, path: '/agent/report' },
        ]);
        expect(logged('agent request from another address than the one this boot is bound to: refused')).toMatchObject([
          { node: 'n1', mac: MAC, bootId, boundTo: ADDRESS, from: OTHER, path: '/agent/report' },
        ]);
        clock += 9_999;
        await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(events('security.address-mismatch')).toHaveLength(1);
        clock += 1;
        await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(events('security.address-mismatch')).toHaveLength(2);
        // A new boot starts afresh.
        await sessions.issueBootNonce(node(), ADDRESS);
        await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(events('security.address-mismatch')).toHaveLength(3);
        expect(record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "the boot's nonce or secret from another address revokes the boot (a stolen credential)",
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/config', { nonce, authorization: undefined }));
        expect([err.status, err.message]).toEqual([403, 'this boot of n1 is bound to another address; the boot is revoked']);
        await vi.waitFor(() => expect(events('revoked')).toHaveLength(1));
        expect(events('revoked')[0]?.detail?.reason).toBe(`this boot's credential was presented from ${OTHER}, not from ${ADDRESS}`);
        expect(events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: record().bootId, from: OTHER, path: '/agent/config', boundTo: ADDRESS },
        ]);
        const secret = await openBoot();
        await refusal(() => sessions.admitBoundAddress(node(), OTHER, '/agent/join', { nonce: undefined, authorization: bearer(secret) }));
        await vi.waitFor(() => expect(record().state).toBe('revoked'));
        // Someone else's credentials are an address mismatch only.
        const other = await openBoot();
        await refusal(() =>
          sessions.admitBoundAddress(node(), OTHER, '/agent/join', { nonce: 'q'.repeat(32), authorization: bearer(`${other}q`) }),
        );
        expect(record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed write while revoking is logged, not thrown',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const failing = new BootSessions(
          deps({ store: Object.assign(Object.create(store) as FileStore, { putSession: () => Promise.reject(new Error('disk full')) }) }),
        );
        await refusal(() => failing.admitBoundAddress(node(), OTHER, '/agent/config', { nonce, authorization: undefined }));
        await vi.waitFor(() => expect(logged('revoking a boot failed')).toMatchObject([{ mac: MAC, err: 'disk full' }]));
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "the last boot's credential from an address that is not the node's: an alarm, and the boot revoked if it is still on",
      async () => {
        const secret = await openBoot();
        sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: bearer('n'.repeat(32)) });
        expect(events().filter((e) => e.type.startsWith('security.'))).toEqual([]);
        sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: bearer(secret) });
        expect(events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: record().bootId, from: OTHER, path: '/agent/config', boundTo: ADDRESS },
        ]);
        await vi.waitFor(() => expect(events('revoked')).toHaveLength(1));
        expect(events('revoked')[0]?.detail?.reason).toBe(`this boot's credential was presented from ${OTHER}`);
        clock += 10_000;
        sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: bearer(secret) });
        expect(events('security.from-another-address')).toHaveLength(2);
        expect(events('revoked')).toHaveLength(1);
        expect(await refused('from-another-address')).toBe(2);
        // A node that never booted: nothing to compare.
        sessions.noteForeignCredential(node({ mac: '52:54:00:5e:00:99' }), OTHER, '/agent/config', {
          nonce: 'a',
          authorization: undefined,
        });
        expect(await refused('from-another-address')).toBe(2);
        // A boot recorded before boots were bound to an address.
        await store.putSession({ ...record(), address: undefined });
        clock += 10_000;
        sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: bearer(secret) });
        expect(events('security.from-another-address').at(-1)?.detail?.boundTo).toBe('');
        await store.putSession({ ...record(), state: 'booting' });
        expect(sessions.admitBoundAddress(node(), OTHER, '/agent/config')).toBe(false);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('expiry and restart', () => {
    it(
      'a nonce not spent within 900 s expires the boot; a token past its TTL expires it and is deleted',
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        clock += 900_000 - 1;
        await sessions.sweep();
        expect(record().state).toBe('booting');
        clock += 1;
        await sessions.sweep();
        expect(record().state).toBe('expired');
        expect(await inFlight()).toBe(0);
        // An expired boot's nonce is a replay.
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        const expiresAt = record().tokenExpiresAt ?? 0;
        clock = expiresAt - 1;
        await sessions.sweep();
        expect(record().state).toBe('booting');
        clock = expiresAt;
        await sessions.sweep();
        expect(record()).toMatchObject({ state: 'expired', tokenId: undefined });
        expect(minter.revoked).toEqual(['tok000']);
        expect(events('token.revoked').at(-1)?.detail).toEqual({ tokenId: 'tok000', why: 'token TTL passed' });
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'an expired boot leaves its unspent nonce unusable; the script then opens a new boot',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = record();
        clock += 900_000;
        await sessions.sweep();
        const err = await refusal(() => sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect(err.message).toBe("this boot's nonce was used already and the boot is over");
        const next = await sessions.issueBootNonce(node(), ADDRESS);
        expect(next).not.toBe(nonce);
        expect(record().bootId).not.toBe(bootId);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart keeps a token handed out and deletes one minted but not handed out',
      async () => {
        const secret = await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        await sessions.takeJoinToken(node(), bearer(secret));
        const restarted = new BootSessions(deps());
        await restarted.start();
        await restarted.stop();
        expect(minter.revoked).toEqual([]);
        expect(record()).toMatchObject({ state: 'booting', joinServed: true, tokenId: 'tok000' });
        expect(await inFlight()).toBe(2);
        // Its join is not served twice after the restart either.
        expect((await refusal(() => restarted.takeJoinToken(node(), bearer(secret)))).status).toBe(410);

        await store.putSession({ ...record(), joinServed: false });
        const again = new BootSessions(deps());
        await again.start();
        await again.stop();
        expect(minter.revoked).toEqual(['tok000']);
        expect(record()).toMatchObject({ state: 'booting', tokenId: undefined });
        expect(events('token.revoked').at(-1)?.detail).toEqual({ tokenId: 'tok000', why: 'bootfarm restarted' });
        // The join request then mints a fresh one.
        expect((await again.takeJoinToken(node(), bearer(secret))).id).toBe('tok001');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart with a join marked served but no token: the join may ask again (not with a static token)',
      async () => {
        const secret = await openBoot(sessions, node({ join: false }));
        await store.putSession({ ...record(), joinServed: true });
        const restarted = new BootSessions(deps());
        await restarted.start();
        await restarted.stop();
        expect(record().joinServed).toBe(false);
        expect((await restarted.takeJoinToken(node(), bearer(secret))).id).toBe('tok000');

        await store.putSession({ ...record(), joinServed: true, tokenId: undefined });
        const staticMinter = new ScriptedMinter('static', () => clock);
        const withStatic = new BootSessions(deps({ minter: staticMinter }));
        await withStatic.start();
        await withStatic.stop();
        expect(record().joinServed).toBe(true);
        // A boot that is over keeps what it had.
        await store.putSession({ ...record(), state: 'joined', joinServed: true });
        const over = new BootSessions(deps());
        await over.start();
        await over.stop();
        expect(record().joinServed).toBe(true);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart deletes the token a finished boot still held; a finished boot is not counted in flight',
      async () => {
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        await store.putSession({ ...record(), state: 'failed' });
        const metricsAfter = new Metrics();
        const restarted = new BootSessions(deps({ metrics: metricsAfter }));
        await restarted.start();
        await restarted.stop();
        expect(minter.revoked).toEqual(['tok000']);
        expect((await metricsAfter.bootsInFlight.get()).values[0]?.value ?? 0).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the sweeper runs every quarter of the token TTL, between 1 s and 15 s, until stopped',
      async () => {
        vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
        const expiresWithin = async (ttlSeconds: number | undefined, intervalMs: number) => {
          const s = new BootSessions(
            deps({ kubernetes: ttlSeconds === undefined ? undefined : kubernetes({ tokenTtlSeconds: ttlSeconds }) }),
          );
          await s.issueBootNonce(node(), ADDRESS);
          clock += 900_000;
          await s.start();
          vi.advanceTimersByTime(intervalMs - 1);
          const before = record().state;
          vi.advanceTimersByTime(1);
          await vi.waitFor(() => expect(record().state).toBe('expired'));
          await s.stop();
          return before;
        };
        expect(await expiresWithin(8, 2_000)).toBe('booting');
        expect(await expiresWithin(2, 1_000)).toBe('booting');
        expect(await expiresWithin(3600, 15_000)).toBe('booting');
        expect(await expiresWithin(undefined, 15_000)).toBe('booting');
        // Stopped: no more sweeps.
        const s = new BootSessions(deps());
        await s.start();
        await s.stop();
        await s.issueBootNonce(node(), ADDRESS);
        clock += 900_000;
        vi.advanceTimersByTime(60_000);
        expect(record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "state() is the node's last boot",
      async () => {
        expect(sessions.state(MAC)).toBeUndefined();
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(sessions.state(MAC)).toEqual(record());
      },
      TEST_TIMEOUT_MS,
    );
  });
});
