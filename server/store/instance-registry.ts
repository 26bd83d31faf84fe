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
import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { IMAGE_DIR_NAME } from '../image/names.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { performance } from 'node:perf_hooks';
import {
  decideSkew,
  peerOffset,
  possibleSkew,
  quorumReference,
  readingApart,
  referenceOffset,
  SKEW_WARN_MS,
  verdictStaleness,
  type ClockPair,
  type OffsetBound,
  type PeerSkew,
  type SkewVerdict,
} from './clock-skew.js';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './private-files.js';
import { etcdCredentials, memberGet, type EtcdTls } from './etcd-tls.js';

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
  /**
   * Made anew by every process (InstanceRegistry): two live processes writing
   * one id (a copied state directory) tell each other apart by it. Absent from
   * older versions' values.
   */
  incarnation?: string | undefined;
  /** Set while another live process publishes this id too: what it says of itself (`bootfarm status` shows it). */
  duplicateOf?: { hostname: string; address: string } | undefined;
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The longest peer text (id, hostname, address) the registry repeats in its own
 * log lines and its duplicateOf. Anyone who can write the prefix can put any
 * value under any key; a hostname is at most 253 characters, an address far less.
 */
const PEER_TEXT_MAX = 255;
/** Control and format characters (ESC, CR, C1 CSI, bidi overrides): none belongs in an id, a hostname or an address. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}]/u;
/** What stands for a peer's text that is too long or holds control/format characters. */
export const UNSHOWN = '(not shown: longer than 255 characters or with control characters)';

/** A peer's id, hostname and address, each through peerText. */
interface PeerName {
  id: string;
  hostname: string;
  address: string;
}

/** `text` if it is short and printable enough to log, else UNSHOWN. */
function peerText(text: string): string {
  return text.length <= PEER_TEXT_MAX && !UNPRINTABLE.test(text) ? text : UNSHOWN;
}

/** Parses a registry value; undefined for anything not shaped as one (a foreign or damaged key is ignored). */
export function parseInstance(text: string): InstanceRecord | undefined {
  let v: Partial<Record<keyof InstanceRecord, unknown>>;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { id, hostname: host, address, version, clock, startedAt, interfaces, segments, images, skew, incarnation, duplicateOf } = v;
  if (typeof id !== 'string' || typeof host !== 'string' || typeof address !== 'string' || typeof version !== 'string') return undefined;
  if (!finite(clock) || !finite(startedAt) || !isStrings(interfaces) || !isStrings(segments) || !Array.isArray(images)) return undefined;
  const held: ImageHeld[] = [];
  for (const i of images as unknown[]) {
    const img = i as Partial<ImageHeld> | null;
    if (!img || typeof img.image !== 'string' || !isStrings(img.versions)) return undefined;
    held.push({ image: img.image, current: typeof img.current === 'string' ? img.current : undefined, versions: img.versions });
  }
  const s = (skew ?? {}) as Partial<InstanceRecord['skew']>;
  const dup = (duplicateOf ?? {}) as Partial<NonNullable<InstanceRecord['duplicateOf']>>;
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
    incarnation: typeof incarnation === 'string' ? incarnation : undefined,
    duplicateOf:
      typeof dup.hostname === 'string' && typeof dup.address === 'string' ? { hostname: dup.hostname, address: dup.address } : undefined,
  };
}

/** Where the id is kept (named in the duplicate-id error: the file to remove on one of the two). */
export const instanceIdFile = (stateDir: string): string => path.join(stateDir, 'instance-id');

/** This instance's id: made once and kept in the state directory, so a restart is the same instance. */
export function instanceId(stateDir: string): string {
  ensurePrivateDir(stateDir);
  const file = instanceIdFile(stateDir);
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

/** Directories under `dir` named as images or versions are, sorted; none when it cannot be read. */
async function namedDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && IMAGE_DIR_NAME.test(d.name))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

/**
 * The published images and versions under images.dir (names only). Read on
 * every refresh, asynchronously: the beat runs on the event loop that answers
 * DHCP, and a slow disk must not hold the answers. Not cached, so a version
 * published or removed shows at the next refresh.
 */
export async function imagesHeld(imagesDir: string): Promise<ImageHeld[]> {
  return Promise.all(
    (await namedDirs(imagesDir)).map(async (image) => {
      const dir = path.join(imagesDir, image);
      const current = await readlink(path.join(dir, 'current')).then(
        (target) => path.basename(target),
        () => undefined,
      );
      return { image, current, versions: await namedDirs(dir) };
    }),
  );
}

/**
 * One endpoint's member: its id and the cluster's member ids (gRPC
 * Maintenance.Status and Cluster.MemberList, on a client for this endpoint
 * alone), and its clock: the Date header of its /health answer, with our clock
 * around the request. The id is what tells two endpoints of one member apart
 * (one URL twice, an address and a name). (etcd's HTTP gateway would answer the
 * id and the Date in one request, but with --client-cert-auth and a server
 * certificate without clientAuth usage it cannot reach its own gRPC: 503.)
 */
async function readEtcdClock(
  endpoint: string,
  timeoutMs: number,
  tls: EtcdTls | undefined,
): Promise<{ member: string; members: Set<string>; offset: OffsetBound }> {
  const one = new Etcd3({
    hosts: endpoint,
    credentials: etcdCredentials(tls),
    dialTimeout: timeoutMs,
    defaultCallOptions: () => ({ deadline: Date.now() + timeoutMs }),
  });
  try {
    const clock = (async () => {
      const start = Date.now();
      const headers = await memberGet(endpoint, '/health', timeoutMs, tls);
      const end = Date.now();
      const date = Date.parse(headers.date ?? '');
      if (!Number.isFinite(date)) throw new Error(`${endpoint}/health: no Date header`);
      return referenceOffset(date, start, end);
    })();
    const [status, list, offset] = await Promise.all([one.maintenance.status(), one.cluster.memberList({}), clock]);
    return { member: status.header.member_id, members: new Set(list.members.map((m) => m.ID)), offset };
  } finally {
    one.close();
  }
}

export interface EtcdReference {
  /** The majority's reading (quorumReference); undefined when fewer than a majority of members answered. */
  reference: OffsetBound | undefined;
  /** Members whose clock lies more than SKEW_WARN_MS from the majority's, and by how much (ms). */
  apart: { endpoint: string; apartMs: number }[];
}

/**
 * Every member's clock, read through every endpoint in parallel (each within
 * timeoutMs), and what the majority of the cluster's members says. Readings
 * count once per member id, and the majority is of the members etcd lists,
 * not of the endpoints configured: two endpoints of one member (one URL twice,
 * an address and a name) would give a wrong-clocked member two votes. A
 * reading from an id not in the list does not count; without a member list
 * there is no reading (nobody clears itself, as in decideSkew).
 */
export async function readEtcdReference(endpoints: string[], timeoutMs: number, tls: EtcdTls | undefined): Promise<EtcdReference> {
  const settled = await Promise.allSettled(endpoints.map((e) => readEtcdClock(e, timeoutMs, tls)));
  const answers = settled.flatMap((r, i) => (r.status === 'fulfilled' ? [{ endpoint: endpoints[i] ?? '', ...r.value }] : []));
  // The list as the first endpoint that answered has it (every member's is the cluster's, through raft).
  const members = answers[0]?.members;
  if (!members) return { reference: undefined, apart: [] };
  const byMember = new Map<string, { endpoint: string; offset: OffsetBound }>();
  for (const a of answers)
    if (members.has(a.member) && !byMember.has(a.member)) byMember.set(a.member, { endpoint: a.endpoint, offset: a.offset });
  const readings = [...byMember.values()];
  const reference = quorumReference(
    readings.map((r) => r.offset),
    members.size,
  );
  const apart = reference
    ? readings.map((r) => ({ endpoint: r.endpoint, apartMs: readingApart(r.offset, reference) })).filter((r) => r.apartMs > SKEW_WARN_MS)
    : [];
  return { reference, apart };
}

type SelfRecord = Omit<InstanceRecord, 'clock' | 'skew' | 'incarnation' | 'duplicateOf'>;

export interface RegistryOptions {
  client: Etcd3;
  prefix: string;
  endpoints: string[];
  /** For the members' /health over https (the gRPC client has its own copy). */
  tls?: EtcdTls | undefined;
  timeoutMs: number;
  logger: Logger;
  /** What is published, apart from the clock and the skew verdict. */
  self: () => SelfRecord | Promise<SelfRecord>;
  /** The file the id is kept in (instanceIdFile), named when another live process publishes the same id. */
  idFile?: string | undefined;
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
 * ending (REFRESH_MS < the TTL), waits for self() (readSelf), makes three etcd
 * calls (lease grant, put, range read) and reads the members' clocks and member
 * list (in parallel since, the bound kept at one per member: larger only delays
 * the stale refusal), each bounded by claimTimeoutMs.
 */
function staleAfterMs(endpoints: number, timeoutMs: number): number {
  return INSTANCE_TTL_S * 1000 + (4 + endpoints) * timeoutMs;
}

/**
 * How long after its last sighting another process publishing this id still
 * counts: it writes every REFRESH_MS, so a live one is seen on nearly every
 * refresh, and one stopped or killed has written nothing for a TTL.
 */
const DUPLICATE_HOLD_MS = INSTANCE_TTL_S * 1000;

/**
 * The reasons refusal() gives: fixed, because they reach every refused claim
 * and the DHCP service's per-exchange log line, which no rate limit covers for
 * inventory nodes. The peer behind them (its id, hostname, address: text anyone
 * who can write the prefix chooses) is named in the registry's own
 * rate-limited lines only.
 */
const SKEW_REFUSAL = 'clock skew beyond the limit';
export const DUPLICATE_REFUSAL = 'instance id used by another live instance';

export class InstanceRegistry {
  private verdict: SkewVerdict = { stop: false, warn: false };
  /** When the measurement behind `verdict` started, on both clocks (verdictStaleness). */
  private madeAt: ClockPair | undefined;
  private readonly staleAfterMs: number;
  private health: ClockHealth = { healthy: true, since: Date.now() };
  private lease: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The refresh running, if any: stop() waits for it before revoking, so it cannot publish after the revoke. */
  private inflight: Promise<void> | undefined;
  /** refreshAfterRecovery() came while a refresh ran: one more when it ends. */
  private again = false;
  private closed = false;
  private readonly skewLog = new RateLimiter(5, 60_000);
  private readonly failLog = new RateLimiter(5, 60_000);
  private readonly membersLog = new RateLimiter(5, 60_000);
  private readonly duplicateLog = new RateLimiter(5, 60_000);
  private readonly selfLog = new RateLimiter(5, 60_000);
  /** A self() call not settled yet (readSelf), and what the last one that settled said. */
  private selfPending: Promise<SelfRecord> | undefined;
  private lastSelf: SelfRecord | undefined;
  /** This process's: a value under our key with another one was written by someone else. */
  private readonly incarnation = randomUUID();
  /** The etcd revision of our last write of the key: a later one under it is another writer's. */
  private written: string | undefined;
  /** Another live process with this id: what it published, and when it was last seen (monotonic). */
  private duplicate: { other: PeerName; seenMono: number; since: number } | undefined;

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
   * Starts a refresh unless one is running (the timer's beat; and, through
   * refreshAfterRecovery, the lease store when etcd answers again after an
   * outage: a verdict that went stale while etcd was away keeps new addresses
   * stopped until a refresh, and waiting for the next beat would leave clients
   * unanswered for no reason).
   */
  refreshNow(): void {
    if (this.inflight || this.closed) return;
    this.refresh()
      .finally(() => {
        // Asked for while one ran (etcd back mid-refresh): that one may have
        // started against the outage, so one more, once, now.
        if (!this.again) return;
        this.again = false;
        this.refreshNow();
      })
      .catch((err: Error) => {
        const gate = this.failLog.take(Date.now());
        if (gate.log)
          this.options.logger.warn(
            { err: err.message.split('\n')[0], suppressedSinceLast: gate.suppressed },
            'instance registry: refresh failed (the last skew verdict stands)',
          );
      });
  }

  /**
   * Why a new address may not be given now, or undefined: the last verdict's
   * stop, or that verdict no longer holding. `clockBad` when this clock is known
   * wrong (a skew measured, or a step since the verdict), not when the verdict
   * is merely old (etcd-lease-claims.ts treats the two differently).
   *
   * Another live process with this id refuses as an old verdict does (the
   * outage path: renewals from the binding go on): nothing says this clock is
   * wrong, but the two skip each other's value as their own, so their skew is
   * never measured and the verdict is incomplete. Silence as for a bad clock
   * would drop the clients of both twins for what is a configuration mistake.
   */
  refusal(): { reason: string; clockBad: boolean } | undefined {
    if (this.verdict.stop) return { reason: SKEW_REFUSAL, clockBad: true };
    const stale = verdictStaleness(this.madeAt, clockPair(), this.staleAfterMs);
    if (stale?.kind === 'stepped') return { reason: stale.reason, clockBad: true };
    const duplicate = this.liveDuplicate();
    if (duplicate) return { reason: DUPLICATE_REFUSAL, clockBad: false };
    return stale && { reason: stale.reason, clockBad: false };
  }

  clockHealth(): ClockHealth {
    const stale = this.health.healthy ? verdictStaleness(this.madeAt, clockPair(), this.staleAfterMs) : undefined;
    return stale === undefined ? this.health : { healthy: false, reason: stale.reason, since: Date.now() };
  }

  /** Unhealthy while another live process publishes this id (/healthz shows a fixed reason). */
  identityHealth(): ClockHealth {
    const duplicate = this.liveDuplicate();
    return duplicate ? { healthy: false, reason: DUPLICATE_REFUSAL, since: duplicate.since } : { healthy: true, since: 0 };
  }

  private liveDuplicate(): typeof this.duplicate {
    if (this.duplicate && performance.now() - this.duplicate.seenMono > DUPLICATE_HOLD_MS) {
      this.options.logger.info(
        { id: this.duplicate.other.id },
        'instance id no longer published by another instance: new addresses are given',
      );
      this.duplicate = undefined;
    }
    return this.duplicate;
  }

  /**
   * What the lease store calls when etcd answers again: a refresh now, or, if one
   * is running (most likely started while etcd was away, and failing), one more
   * as soon as it ends. The timer's beat does not queue: it just skips.
   */
  refreshAfterRecovery(): void {
    if (this.inflight) this.again = true;
    else this.refreshNow();
  }

  private refresh(): Promise<void> {
    const run = this.refreshOnce().finally(() => {
      this.inflight = undefined;
    });
    this.inflight = run;
    return run;
  }

  private async refreshOnce(): Promise<void> {
    // Taken before measuring: the verdict's age counts from its oldest reading.
    const started = clockPair();
    const self = await this.readSelf();
    await this.publish(self);
    const peers = await this.readPeers(self.id);
    const reference = await this.readReference();
    this.madeAt = started;
    this.note(decideSkew(peers, reference));
  }

  /**
   * What self() says, within timeoutMs; past it, what it said last. self()
   * reads images.dir, and a readdir on a hard NFS mount that lost its server
   * never returns: waited for, it would hold this refresh and every later one
   * (refreshNow starts none while one runs), the verdict would go stale and new
   * addresses would stop for a list of image names. A call still pending is
   * not repeated (each would hold one more of libuv's few threads); the first
   * refresh has nothing to fall back to and fails.
   */
  private async readSelf(): Promise<SelfRecord> {
    const { timeoutMs } = this.options;
    if (!this.selfPending) {
      // Called at once (not after a tick): a refresh started is one whose self() has been asked.
      const pending = Promise.resolve(this.options.self())
        .then((self) => {
          this.lastSelf = self;
          return self;
        })
        .finally(() => {
          if (this.selfPending === pending) this.selfPending = undefined;
        });
      this.selfPending = pending;
      // Its failure is this refresh's (the race below); once the race is lost, nobody else waits on it.
      pending.catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const self = await Promise.race([this.selfPending, late]).finally(() => clearTimeout(timer));
    if (self) return self;
    const last = this.lastSelf;
    const gate = this.selfLog.take(Date.now());
    if (gate.log)
      this.options.logger.warn(
        { timeoutMs, suppressedSinceLast: gate.suppressed },
        last
          ? 'instance registry: what this instance holds (images.dir) not read in time: the last reading is published'
          : 'instance registry: what this instance holds (images.dir) not read in time',
      );
    if (!last) throw new Error(`what this instance holds (images.dir) not read within ${timeoutMs} ms`);
    return last;
  }

  private async publish(self: SelfRecord): Promise<void> {
    const { client } = this.options;
    const key = `${this.options.prefix}/instances/${self.id}`;
    const grant = await client.leaseClient.leaseGrant({ TTL: INSTANCE_TTL_S });
    // The clock is read after the grant: peerOffset relies on the reading being younger than the lease.
    const duplicate = this.liveDuplicate();
    const record: InstanceRecord = {
      ...self,
      clock: Date.now(),
      skew: {
        stopped: this.verdict.stop,
        referenceSkewMs: this.verdict.referenceSkewMs,
        worstPeer: this.verdict.worst?.id,
        worstPeerSkewMs: this.verdict.worst?.skewMs,
      },
      incarnation: this.incarnation,
      duplicateOf: duplicate && { hostname: duplicate.other.hostname, address: duplicate.other.address },
    };
    // One put, answered with the value it replaced (prevKv): a value written
    // since our last write (its mod revision is not ours) with another process's
    // incarnation is a twin. A dead predecessor (a restart within the TTL) wrote
    // before our first write, never after, and an expired key reads as absent.
    // (A txn with the put in both branches sent the value twice per request, and
    // a large one could pass etcd's request limit and never be published.)
    const res = await client.put(key).value(JSON.stringify(record)).lease(grant.ID).getPrevious();
    if (this.written !== undefined && res.mod_revision !== undefined && res.mod_revision !== this.written && res.value) {
      const other = parseInstance(res.value.toString());
      if (other && other.incarnation !== this.incarnation) this.noteDuplicate(other);
    }
    this.written = res.header.revision;
    const previous = this.lease;
    this.lease = grant.ID;
    if (previous) client.leaseClient.leaseRevoke({ ID: previous }).catch(() => undefined);
  }

  private noteDuplicate(record: InstanceRecord): void {
    const now = Date.now();
    // Kept bounded (peerText): it is logged and republished in our duplicateOf.
    const other = { id: peerText(record.id), hostname: peerText(record.hostname), address: peerText(record.address) };
    this.duplicate = { other, seenMono: performance.now(), since: this.duplicate?.since ?? now };
    const gate = this.duplicateLog.take(now);
    if (gate.log)
      this.options.logger.error(
        {
          id: other.id,
          idFile: this.options.idFile,
          otherHostname: other.hostname,
          otherAddress: other.address,
          suppressedSinceLast: gate.suppressed,
        },
        'instance id published by another live instance (a copied state directory?): no new address is given; remove the id file on one of them and restart it',
      );
  }

  private async readPeers(selfId: string): Promise<PeerSkew[]> {
    const start = Date.now();
    const res = await this.options.client.getAll().prefix(`${this.options.prefix}/instances/`).exec();
    const end = Date.now();
    const peers: PeerSkew[] = [];
    for (const kv of res.kvs) {
      const record = parseInstance(kv.value.toString());
      if (!record || record.id === selfId) continue;
      // The id reaches the verdict's reason and the skew log: bounded there. The
      // peer still counts (its clock is what is measured, whatever its text).
      peers.push({ id: peerText(record.id), offset: peerOffset(record.clock, start, end, INSTANCE_TTL_S * 1000) });
    }
    return peers;
  }

  /** What a majority of etcd's members says of this clock (quorumReference); a member apart from it is logged. */
  private async readReference(): Promise<OffsetBound | undefined> {
    const { reference, apart } = await readEtcdReference(this.options.endpoints, this.options.timeoutMs, this.options.tls);
    if (apart.length > 0) {
      const gate = this.membersLog.take(Date.now());
      if (gate.log)
        this.options.logger.warn(
          { members: apart, etcdSkewMs: reference && possibleSkew(reference), suppressedSinceLast: gate.suppressed },
          `etcd members' clocks disagree by more than ${SKEW_WARN_MS / 1000} s: the majority's is used`,
        );
    }
    return reference;
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

  /**
   * No refresh starts after this, and one running is waited for (within the
   * staleness bound, which a refresh's own etcd deadlines keep it under): left
   * running, it would go on with the client its owner closes next, and its put
   * could land after the revoke below and show this instance for another TTL.
   */
  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    if (this.inflight) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.staleAfterMs);
      });
      await Promise.race([this.inflight.catch(() => undefined), bound]).finally(() => clearTimeout(timer));
    }
    // Gone at once rather than at the end of its TTL: peers stop comparing with it.
    if (this.lease) await this.options.client.leaseClient.leaseRevoke({ ID: this.lease }).catch(() => undefined);
  }
}
