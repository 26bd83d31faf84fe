// The instance registry (store.backend: etcd): every instance publishes
// <prefix>/instances/<id> under an etcd lease, refreshed every REFRESH_MS, and
// reads everyone's on the same beat to measure clock skew (clock-skew.ts) and to
// let `bootfarm status` list who is serving. A peer whose key is gone (its lease
// ran out: stopped, killed, or cut off from etcd) no longer counts.
//
// The peers are read, not watched, for the skew: a watch event says nothing about
// how long it took to arrive, while a linearizable read bounds the reading's age
// by the peer's lease TTL and our own round trip (peerOffset).
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { IMAGE_DIR_NAME } from '../image/names.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { performance } from 'node:perf_hooks';
import {
  decideSkew,
  peerOffset,
  referenceOffset,
  verdictStaleness,
  type ClockPair,
  type OffsetBound,
  type PeerSkew,
  type SkewVerdict,
} from './clock-skew.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './private-files.js';

/** How often an instance republishes itself and re-reads its peers. */
const REFRESH_MS = 2000;
/**
 * The etcd lease of a published value. It bounds how old a peer's clock reading
 * can be (peerOffset), so it is kept short; four refreshes fit in it, so a
 * slow etcd answer or two does not drop a live instance.
 */
export const INSTANCE_TTL_S = 8;

export interface ImageHeld {
  image: string;
  current?: string | undefined;
  versions: string[];
}

/** What an instance publishes. Read back from etcd as untrusted text (parseInstance). */
export interface InstanceRecord {
  id: string;
  hostname: string;
  /** server.address. */
  address: string;
  version: string;
  /** Its wall clock (ms) when it wrote this value. */
  clock: number;
  startedAt: number;
  interfaces: string[];
  /** Subnets it allocates from (CIDRs). */
  segments: string[];
  images: ImageHeld[];
  /** Its own skew verdict when it wrote this (what `bootfarm status` shows). */
  skew: { stopped: boolean; referenceSkewMs?: number | undefined; worstPeer?: string | undefined; worstPeerSkewMs?: number | undefined };
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Parses a registry value; undefined for anything not shaped as one (a foreign or damaged key is ignored). */
export function parseInstance(text: string): InstanceRecord | undefined {
  let v: Partial<Record<keyof InstanceRecord, unknown>>;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { id, hostname: host, address, version, clock, startedAt, interfaces, segments, images, skew } = v;
  if (typeof id !== 'string' || typeof host !== 'string' || typeof address !== 'string' || typeof version !== 'string') return undefined;
  if (!finite(clock) || !finite(startedAt) || !isStrings(interfaces) || !isStrings(segments) || !Array.isArray(images)) return undefined;
  const held: ImageHeld[] = [];
  for (const i of images as unknown[]) {
    const img = i as Partial<ImageHeld> | null;
    if (!img || typeof img.image !== 'string' || !isStrings(img.versions)) return undefined;
    held.push({ image: img.image, current: typeof img.current === 'string' ? img.current : undefined, versions: img.versions });
  }
  const s = (skew ?? {}) as Partial<InstanceRecord['skew']>;
  return {
    id,
    hostname: host,
    address,
    version,
    clock,
    startedAt,
    interfaces,
    segments,
    images: held,
    skew: {
      stopped: s.stopped === true,
      referenceSkewMs: finite(s.referenceSkewMs) ? s.referenceSkewMs : undefined,
      worstPeer: typeof s.worstPeer === 'string' ? s.worstPeer : undefined,
      worstPeerSkewMs: finite(s.worstPeerSkewMs) ? s.worstPeerSkewMs : undefined,
    },
  };
}

/** This instance's id: made once and kept in the state directory, so a restart is the same instance. */
export function instanceId(stateDir: string): string {
  ensurePrivateDir(stateDir);
  const file = path.join(stateDir, 'instance-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  writeFileSync(file, `${id}\n`, { mode: PRIVATE_FILE_MODE });
  return id;
}

/** The published images and versions under images.dir (names only: cheap enough for every refresh). */
export function imagesHeld(imagesDir: string): ImageHeld[] {
  const held: ImageHeld[] = [];
  let names: string[];
  try {
    names = readdirSync(imagesDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && IMAGE_DIR_NAME.test(d.name))
      .map((d) => d.name);
  } catch {
    return held;
  }
  for (const image of names.sort()) {
    const dir = path.join(imagesDir, image);
    let current: string | undefined;
    try {
      current = path.basename(readlinkSync(path.join(dir, 'current')));
    } catch {
      current = undefined;
    }
    let versions: string[] = [];
    try {
      versions = readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && IMAGE_DIR_NAME.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch {
      versions = [];
    }
    held.push({ image, current, versions });
  }
  return held;
}

/** etcd's wall clock: the Date header of a member's /health answer, with our clock around the request. */
export async function readEtcdClock(endpoint: string, timeoutMs: number): Promise<OffsetBound> {
  const start = Date.now();
  const res = await fetch(new URL('/health', endpoint), { signal: AbortSignal.timeout(timeoutMs) });
  const end = Date.now();
  await res.arrayBuffer();
  const date = Date.parse(res.headers.get('date') ?? '');
  if (!Number.isFinite(date)) throw new Error(`${endpoint}/health: no Date header`);
  return referenceOffset(date, start, end);
}

export interface RegistryOptions {
  client: Etcd3;
  prefix: string;
  endpoints: string[];
  timeoutMs: number;
  logger: Logger;
  /** What is published, apart from the clock and the skew verdict. */
  self: () => Omit<InstanceRecord, 'clock' | 'skew'>;
  onVerdict?: ((verdict: SkewVerdict) => void) | undefined;
  /** The beat of refreshes (REFRESH_MS unless given; a test sets it long to see what else refreshes). */
  refreshMs?: number | undefined;
}

export interface ClockHealth {
  healthy: boolean;
  reason?: string | undefined;
  since: number;
}

const clockPair = (): ClockPair => ({ wall: Date.now(), mono: performance.now() });

/**
 * How old (monotonic) a verdict may get before it no longer clears allocation.
 * Past INSTANCE_TTL_S without a publish, peers no longer see this instance and
 * stop comparing their clocks with it, so it must stop relying on its own old
 * comparison too. The slowest refresh that still succeeds is added so load does
 * not make the verdict flap: a refresh starts within REFRESH_MS of the last one
 * ending (REFRESH_MS < the TTL) and makes three etcd calls (lease grant, put,
 * range read) and up to one /health per member, each bounded by claimTimeoutMs.
 */
function staleAfterMs(endpoints: number, timeoutMs: number): number {
  return INSTANCE_TTL_S * 1000 + (3 + endpoints) * timeoutMs;
}

export class InstanceRegistry {
  private verdict: SkewVerdict = { stop: false, warn: false };
  /** When the measurement behind `verdict` started, on both clocks (verdictStaleness). */
  private madeAt: ClockPair | undefined;
  private readonly staleAfterMs: number;
  private health: ClockHealth = { healthy: true, since: Date.now() };
  private lease: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly skewLog = new RateLimiter(5, 60_000);
  private readonly failLog = new RateLimiter(5, 60_000);

  private constructor(private readonly options: RegistryOptions) {
    this.staleAfterMs = staleAfterMs(options.endpoints.length, options.timeoutMs);
  }

  /** Publishes this instance and reads its peers once before resolving, so the first DHCP answer already knows the skew. */
  static async open(options: RegistryOptions): Promise<InstanceRegistry> {
    const registry = new InstanceRegistry(options);
    await registry.refresh();
    registry.timer = setInterval(() => registry.refreshNow(), options.refreshMs ?? REFRESH_MS);
    registry.timer.unref();
    return registry;
  }

  /**
   * Starts a refresh unless one is running. Besides the timer, the lease store
   * calls this when etcd answers again after an outage: a verdict that went
   * stale while etcd was away keeps new addresses stopped until a refresh, and
   * waiting for the next beat would leave clients unanswered for no reason.
   */
  refreshNow(): void {
    if (this.running) return;
    this.refresh().catch((err: Error) => {
      const gate = this.failLog.take(Date.now());
      if (gate.log)
        this.options.logger.warn(
          { err: err.message.split('\n')[0], suppressedSinceLast: gate.suppressed },
          'instance registry: refresh failed (the last skew verdict stands)',
        );
    });
  }

  private get key(): string {
    return `${this.options.prefix}/instances/${this.options.self().id}`;
  }

  /**
   * Why a new address may not be given now, or undefined: the last verdict's
   * stop, or that verdict no longer holding. `clockBad` when this clock is known
   * wrong (a skew measured, or a step since the verdict), not when the verdict
   * is merely old (etcd-lease-claims.ts treats the two differently).
   */
  refusal(): { reason: string; clockBad: boolean } | undefined {
    if (this.verdict.stop) return { reason: this.verdict.reason ?? 'clock skew beyond the limit', clockBad: true };
    const stale = verdictStaleness(this.madeAt, clockPair(), this.staleAfterMs);
    return stale && { reason: stale.reason, clockBad: stale.kind === 'stepped' };
  }

  clockHealth(): ClockHealth {
    const stale = this.health.healthy ? verdictStaleness(this.madeAt, clockPair(), this.staleAfterMs) : undefined;
    return stale === undefined ? this.health : { healthy: false, reason: stale.reason, since: Date.now() };
  }

  private async refresh(): Promise<void> {
    this.running = true;
    try {
      // Taken before measuring: the verdict's age counts from its oldest reading.
      const started = clockPair();
      await this.publish();
      const peers = await this.readPeers();
      const reference = await this.readReference();
      this.madeAt = started;
      this.note(decideSkew(peers, reference));
    } finally {
      this.running = false;
    }
  }

  private async publish(): Promise<void> {
    const { client } = this.options;
    const grant = await client.leaseClient.leaseGrant({ TTL: INSTANCE_TTL_S });
    // The clock is read after the grant: peerOffset relies on the reading being younger than the lease.
    const record: InstanceRecord = {
      ...this.options.self(),
      clock: Date.now(),
      skew: {
        stopped: this.verdict.stop,
        referenceSkewMs: this.verdict.referenceSkewMs,
        worstPeer: this.verdict.worst?.id,
        worstPeerSkewMs: this.verdict.worst?.skewMs,
      },
    };
    await client.put(this.key).value(JSON.stringify(record)).lease(grant.ID).exec();
    const previous = this.lease;
    this.lease = grant.ID;
    if (previous) client.leaseClient.leaseRevoke({ ID: previous }).catch(() => undefined);
  }

  private async readPeers(): Promise<PeerSkew[]> {
    const start = Date.now();
    const res = await this.options.client.getAll().prefix(`${this.options.prefix}/instances/`).exec();
    const end = Date.now();
    const self = this.options.self().id;
    const peers: PeerSkew[] = [];
    for (const kv of res.kvs) {
      const record = parseInstance(kv.value.toString());
      if (!record || record.id === self) continue;
      peers.push({ id: record.id, offset: peerOffset(record.clock, start, end, INSTANCE_TTL_S * 1000) });
    }
    return peers;
  }

  /** The first member whose clock answers; undefined when none does (then no instance clears itself, decideSkew). */
  private async readReference(): Promise<OffsetBound | undefined> {
    for (const endpoint of this.options.endpoints) {
      try {
        return await readEtcdClock(endpoint, this.options.timeoutMs);
      } catch {
        /* the next member */
      }
    }
    return undefined;
  }

  private note(verdict: SkewVerdict): void {
    const was = this.verdict;
    this.verdict = verdict;
    const now = Date.now();
    if (verdict.stop !== was.stop)
      this.health = verdict.stop ? { healthy: false, reason: verdict.reason, since: now } : { healthy: true, since: now };
    if (verdict.warn || verdict.stop !== was.stop) {
      const gate = this.skewLog.take(now);
      const fields = {
        worstPeer: verdict.worst?.id,
        worstPeerSkewMs: verdict.worst?.skewMs,
        etcdSkewMs: verdict.referenceSkewMs,
        suppressedSinceLast: gate.suppressed,
      };
      if (gate.log) {
        if (verdict.stop)
          this.options.logger.warn({ ...fields, reason: verdict.reason }, 'clock skew beyond the limit: no new address is given');
        else if (was.stop) this.options.logger.info(fields, 'clock skew back within the limit: new addresses are given');
        else this.options.logger.warn(fields, 'clock skew past the warning limit');
      }
    }
    this.options.onVerdict?.(verdict);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    // Gone at once rather than at the end of its TTL: peers stop comparing with it.
    if (this.lease) await this.options.client.leaseClient.leaseRevoke({ ID: this.lease }).catch(() => undefined);
  }
}
