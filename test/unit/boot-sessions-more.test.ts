// More token and session decisions of server/join/boot-sessions.ts (the
// survivors of the first mutation run), with the harness of
// boot-sessions.test.ts, kept in a file of their own so that the mutants
// boot-sessions.test.ts kills keep their recorded results (Stryker re-tests
// every mutant a changed test file killed). The same paths over HTTP with a
// real agent: test/integration/join.test.ts.
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

describe('boot sessions: more decisions', () => {
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

  describe('what the timeline and the log say', () => {
    it(
      'a superseded or expired boot puts no end event on the timeline (only joined, booted, failed and revoked do)',
      async () => {
        await sessions.issueBootNonce(node(), ADDRESS);
        clock += 900_000;
        await sessions.sweep();
        expect(record().state).toBe('expired');
        await openBoot();
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(store.events(MAC).map((e) => e.type)).not.toContain('expired');
        expect(store.events(MAC).map((e) => e.type)).not.toContain('superseded');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a token without an expiry set by bootfarm (a static one) is logged as the cluster's to expire",
      async () => {
        const staticMinter = new ScriptedMinter('static', () => clock);
        staticMinter.mint = (n, ttlSeconds) => {
          staticMinter.mints.push({ hostname: n.hostname, ttlSeconds });
          return Promise.resolve({ id: 'static', secret: 'abcdefghijklmnop', token: 'static.abcdefghijklmnop', expiresAt: undefined });
        };
        sessions = new BootSessions(deps({ minter: staticMinter }));
        const secret = await openBoot();
        expect((await sessions.takeJoinToken(node(), bearer(secret))).id).toBe('static');
        expect(record()).toMatchObject({ tokenId: undefined, tokenExpiresAt: undefined });
        expect(logged('bootstrap token minted')).toMatchObject([{ tokenId: 'static', expiresAt: 'set by the cluster', minter: 'static' }]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot that ends while its token is minted, and the delete of that token fails: the join still gets 410',
      async () => {
        let release = () => {};
        minter.gate = new Promise((resolve) => (release = resolve));
        minter.failRevoke = true;
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        const join = refusal(() => sessions.takeJoinToken(node(), bearer(secret)));
        await vi.waitFor(() => expect(record().joinServed).toBe(true));
        const next = sessions.issueBootNonce(node(), ADDRESS);
        await vi.waitFor(() => expect(record().state).toBe('superseded'));
        release();
        await next;
        expect((await join).status).toBe(410);
        expect(record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a new boot of one node leaves another node's alarms as they were",
      async () => {
        const otherNode = node({ mac: '52:54:00:5e:00:02', hostname: 'n2' });
        await sessions.issueBootNonce(otherNode, OTHER);
        const otherSecret = (
          await sessions.openConfig(otherNode, { nonce: await sessions.issueBootNonce(otherNode, OTHER), authorization: undefined }, OTHER)
        ).secret;
        const wrong = { nonce: undefined, authorization: bearer(`${otherSecret}x`) };
        await refusal(() => sessions.openConfig(otherNode, wrong, OTHER));
        await sessions.issueBootNonce(node(), ADDRESS);
        await refusal(() => sessions.openConfig(otherNode, wrong, OTHER));
        expect(store.events(otherNode.mac).filter((e) => e.type === 'security.secret-mismatch')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('more refusals and races', () => {
    it(
      'a boot kept from before nonces, not yet superseded by a start: the fetch is refused as missing, not as a boot that is over',
      async () => {
        await store.putSession({
          mac: MAC,
          bootId: 'old',
          startedAt: T0,
          openedAt: T0,
          state: 'booting',
          joinServed: false,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        const err = await refusal(() => sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(await refused('missing')).toBe(1);
        expect(await refused('boot-over')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a first fetch that carries the nonce and some Authorization header: the nonce decides',
      async () => {
        const nonce = await sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await sessions.openConfig(node(), { nonce, authorization: bearer('s'.repeat(32)) }, ADDRESS);
        expect(record()).toMatchObject({ secretDigest: sha256(secret), state: 'booting' });
        expect(await refused('secret-mismatch')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token minted for a boot that another instance superseded meanwhile is deleted, never written into the new boot',
      async () => {
        let release = () => {};
        minter.gate = new Promise((resolve) => (release = resolve));
        await openBoot();
        // Over the same state: the node's next boot opens from the same address.
        await new BootSessions(deps()).issueBootNonce(node(), ADDRESS);
        const next = record();
        expect(next.state).toBe('booting');
        release();
        await vi.waitFor(() => expect(minter.revoked).toEqual(['tok000']));
        expect(record()).toEqual(next);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart with no token minter configured any more leaves a recorded token id alone and starts',
      async () => {
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        const withoutMinter = new BootSessions(deps({ minter: undefined, kubernetes: undefined }));
        await withoutMinter.start();
        await withoutMinter.stop();
        expect(record().tokenId).toBe('tok000');
        expect(minter.revoked).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot superseded with its token: the token is deleted naming the new boot as why; only a revoked boot logs 'boot revoked'",
      async () => {
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok000'));
        await sessions.issueBootNonce(node(), ADDRESS);
        expect(events('token.revoked').map((e) => e.detail)).toEqual([
          { tokenId: 'tok000', why: 'a new boot began (its boot script was served again)' },
        ]);
        expect(logged('boot revoked')).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a token deleted while the node's next boot records its own: the new boot's token id is kept",
      async () => {
        const secret = await openBoot();
        await sessions.takeJoinToken(node(), bearer(secret));
        let release = () => {};
        const held = new Promise<void>((resolve) => (release = resolve));
        const revoke = minter.revoke.bind(minter);
        minter.revoke = async (tokenId) => {
          await held;
          return revoke(tokenId);
        };
        const reported = sessions.report(node(), bearer(secret), 'join', 'ok', undefined);
        await vi.waitFor(() => expect(record().state).toBe('joined'));
        await openBoot();
        await vi.waitFor(() => expect(record().tokenId).toBe('tok001'));
        release();
        await reported;
        expect(minter.revoked).toEqual(['tok000']);
        expect(record().tokenId).toBe('tok001');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart deletes the token of a boot that is over even when its join was served',
      async () => {
        const secret = await openBoot();
        await sessions.takeJoinToken(node(), bearer(secret));
        await store.putSession({ ...record(), state: 'failed' });
        const restarted = new BootSessions(deps());
        await restarted.start();
        await restarted.stop();
        expect(minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart leaves a boot that is over as it was, even one from before nonces',
      async () => {
        await store.putSession({
          mac: MAC,
          bootId: 'old',
          startedAt: T0,
          openedAt: T0,
          state: 'joined',
          joinServed: true,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        const restarted = new BootSessions(deps());
        await restarted.start();
        await restarted.stop();
        expect(record().state).toBe('joined');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a failed delete of a finished boot's token is retried by the sweep after the token's TTL too",
      async () => {
        const secret = await openBoot();
        await sessions.takeJoinToken(node(), bearer(secret));
        minter.failRevoke = true;
        await sessions.report(node(), bearer(secret), 'join', 'ok', undefined);
        minter.failRevoke = false;
        clock = (record().tokenExpiresAt ?? 0) + 1;
        await sessions.sweep();
        expect(minter.revoked).toEqual(['tok000']);
        expect(record()).toMatchObject({ state: 'joined', tokenId: undefined });
      },
      TEST_TIMEOUT_MS,
    );
  });
});
