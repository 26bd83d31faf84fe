// The harness of the in-process tests of server/join/boot-sessions.ts
// (test/unit/boot-sessions.test.ts and boot-sessions-more.test.ts): the real
// FileStore in a temporary directory, a scripted token minter, a clock the test
// moves, the metrics and the log lines, and the shortcuts those tests read
// them through. One object per test file, reset before each test.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, vi } from 'vitest';
import pino, { type Logger } from 'pino';
import { AgentError, BootSessions, type BootSessionDeps, type CredentialRefusal } from '../../server/join/boot-sessions.js';
import { FileStore, type BootSessionRecord, type NodeEvent } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';
import type { MintedToken, TokenMinter } from '../../server/kube/minter.js';
import type { ResolvedKubernetes } from '../../server/config/types.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';

export const TEST_TIMEOUT_MS = 10_000;
export const MAC = '52:54:00:5e:00:01';
export const ADDRESS = '10.9.0.50';
export const OTHER = '10.9.0.66';
export const T0 = 1_800_000_000_000;
export const TTL_SECONDS = 3600;

export const node = (over: Partial<EffectiveNode> = {}): EffectiveNode =>
  ({ mac: MAC, hostname: 'n1', join: true, origin: 'config', ...over }) as EffectiveNode;

export const kubernetes = (over: Partial<ResolvedKubernetes> = {}): ResolvedKubernetes => ({
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

export const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

/** Mints `tok000`, `tok001`...; a mint can be held (gate) or fail; records every revoke. */
export class ScriptedMinter implements TokenMinter {
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
export async function refusal(run: () => unknown): Promise<AgentError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof AgentError) return err;
    throw err;
  }
  throw new Error('expected an AgentError, got none');
}

/** The state one test works on; fields a test may replace (sessions after a restart, the clock). */
export class BootSessionsHarness {
  dir = '';
  // Set before each test by useBootSessionsHarness; never read before that.
  store!: FileStore;
  metrics!: Metrics;
  minter!: ScriptedMinter;
  clock = T0;
  logs: Array<Record<string, unknown>> = [];
  logger!: Logger;
  attested = new Set<string>();
  sessions!: BootSessions;

  deps = (over: Partial<BootSessionDeps> = {}): BootSessionDeps => ({
    store: this.store,
    kubernetes: kubernetes(),
    minter: this.minter,
    metrics: this.metrics,
    logger: this.logger,
    now: () => this.clock,
    attested: (mac, bootId) => this.attested.has(`${mac} ${bootId}`),
    nodeByMac: (mac) => (mac === MAC ? node() : undefined),
    ...over,
  });
  record = (): BootSessionRecord => {
    const s = this.store.sessions().find((r) => r.mac === MAC);
    if (!s) throw new Error('no session recorded');
    return s;
  };
  events = (type?: string): NodeEvent[] => this.store.events(MAC).filter((e) => type === undefined || e.type === type);
  refused = async (reason: CredentialRefusal) =>
    (await this.metrics.agentCredentialRefused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  inFlight = async () => (await this.metrics.bootsInFlight.get()).values[0]?.value ?? 0;
  mismatches = async () => (await this.metrics.agentAddressMismatch.get()).values[0]?.value ?? 0;
  minted = async (outcome: string) => (await this.metrics.tokensMinted.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  logged = (msg: string) => this.logs.filter((l) => l.msg === msg);
  /** Nonce served to ADDRESS, nonce spent: the secret. */
  openBoot = async (s: BootSessions = this.sessions, n: EffectiveNode = node()) => {
    const nonce = await s.issueBootNonce(n, ADDRESS);
    return (await s.openConfig(n, { nonce, authorization: undefined }, ADDRESS)).secret;
  };
  bearer = (secret: string) => `Bearer ${secret}`;

  async setUp(): Promise<void> {
    this.dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-boot-sessions-'));
    this.store = (await FileStore.open(this.dir, [], false)).store;
    this.metrics = new Metrics();
    this.clock = T0;
    this.minter = new ScriptedMinter('kubernetes-api', () => this.clock);
    this.logs = [];
    this.logger = pino({ level: 'info' }, { write: (line: string) => void this.logs.push(JSON.parse(line) as Record<string, unknown>) });
    this.attested = new Set();
    this.sessions = new BootSessions(this.deps());
  }

  async tearDown(): Promise<void> {
    vi.useRealTimers();
    // A mint a test left running writes its token id before the store closes.
    await new Promise((resolve) => setImmediate(resolve));
    await this.sessions.stop();
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A harness set up before and torn down after each test of the calling describe block. */
export function useBootSessionsHarness(): BootSessionsHarness {
  const h = new BootSessionsHarness();
  beforeEach(() => h.setUp());
  afterEach(() => h.tearDown());
  return h;
}
