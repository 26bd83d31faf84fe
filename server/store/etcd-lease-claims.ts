// Lease claims in etcd (store.backend: etcd): one key per address,
// <prefix>/leases/<subnet>/<ip>, holding the client that may use it, attached to
// an etcd lease whose TTL is the DHCP lease's. A claim is one transaction that
// compares the key's mod revision with the one the decision was made on and puts
// only if it is unchanged: two instances deciding on the same address cannot both
// win. (BeryJu/gravity#871 gave duplicates by reading, deciding and putting
// without that comparison.) A watch on the prefix keeps a copy of every claim,
// so the local pool does not offer what another instance's client holds.
//
// etcd may stop answering (no quorum, or this instance cut off from it): every
// claim is bounded by claimTimeoutMs and then rejects, so a DHCP reply never
// hangs on it; a probe (a linearizable read, which needs a quorum) keeps the
// health state current when no claims are being made.
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { RateLimiter } from '../util/rate-limited-log.js';
import {
  ClockSkewStop,
  mayClaim,
  parseClaim,
  type ClaimResult,
  type ClaimsHealth,
  type ClaimValue,
  type LeaseClaims,
} from './lease-claims.js';
import { SKEW_STOP_MS } from './clock-skew.js';
import { etcdCredentials, etcdErrorText, type EtcdTls } from './etcd-tls.js';
import { INSTANCE_TTL_S, InstanceRegistry, type ClockHealth, type RegistryOptions } from './instance-registry.js';

/**
 * A claim that loses this many races in a row is abandoned as a conflict: the
 * handler tries its next candidate (DISCOVER) or NAKs (REQUEST). etcd answered
 * every time, so its health is not touched.
 */
const MAX_ATTEMPTS = 5;
/** How often etcd's health is probed: the longest /metrics shows a stale state while no claim is made. */
const PROBE_INTERVAL_MS = 2000;

export interface EtcdClaimsOptions {
  endpoints: string[];
  /** For https endpoints (store.etcd.tls, read by loadEtcdTls). */
  tls?: EtcdTls | undefined;
  prefix: string;
  logger: Logger;
  /** A claim (and each etcd call) gives up after this (store.etcd.claimTimeoutMs). */
  claimTimeoutMs: number;
  /** Told every change of health (the metrics gauge). */
  onHealth?: ((health: ClaimsHealth) => void) | undefined;
  /** Publishes this instance in <prefix>/instances/ and guards allocation by clock skew (instance-registry.ts). */
  registry?: Pick<RegistryOptions, 'self' | 'idFile' | 'onVerdict' | 'refreshMs'> | undefined;
}

/**
 * How long past its written expiry another instance's claim is still respected.
 * The expiry is in the writer's clock; any two instances that allocate are within
 * SKEW_STOP_MS of each other as measured (clock-skew.ts decideSkew), and a
 * measurement is off by at most a registry TTL and a round trip. Within that
 * margin the key is normally gone anyway (its etcd lease, counted by etcd and not
 * by any wall clock, ends with the DHCP lease), so the margin costs no address.
 */
export const CLAIM_SKEW_MARGIN_MS = SKEW_STOP_MS + INSTANCE_TTL_S * 1000 + 2000;

interface Current {
  value: ClaimValue | undefined;
  /** '0' when the key is absent: etcd compares a missing key's revisions as 0. */
  modRevision: string;
  /** The etcd lease the key is attached to ('0': none, or no key). */
  lease: string;
}

function currentOf(kv: IKeyValue | undefined): Current {
  return kv
    ? { value: parseClaim(kv.value.toString()), modRevision: kv.mod_revision, lease: kv.lease }
    : { value: undefined, modRevision: '0', lease: '0' };
}

/** Health-change lines per kind (down, up) a minute: a flapping etcd cannot flood the log. */
const HEALTH_LOG_BURST = 5;

/**
 * The health state and its log. Each kind of change has its own limit, so the
 * first loss and the first return in a minute are always logged; past the limit,
 * the next line logged says how many were suppressed. The gauge and /healthz
 * (onHealth, health()) follow every change.
 */
export class ClaimsHealthTracker {
  private state: ClaimsHealth;
  private readonly downLog = new RateLimiter(HEALTH_LOG_BURST, 60_000);
  private readonly upLog = new RateLimiter(HEALTH_LOG_BURST, 60_000);

  constructor(
    private readonly logger: Logger,
    /** Logged with every line: what the lines are about (prefix, endpoints). */
    private readonly fields: Record<string, unknown>,
    private readonly onHealth: ((health: ClaimsHealth) => void) | undefined,
    now: number,
  ) {
    this.state = { healthy: true, since: now };
  }

  get current(): ClaimsHealth {
    return this.state;
  }

  /** Records whether etcd answered; a change is told to onHealth and logged (bounded). */
  note(healthy: boolean, reason: string | undefined, now: number): void {
    if (healthy === this.state.healthy) return;
    this.state = healthy ? { healthy, since: now } : { healthy, reason, since: now };
    const gate = (healthy ? this.upLog : this.downLog).take(now);
    if (gate.log) {
      const fields = { ...this.fields, suppressedSinceLast: gate.suppressed };
      if (healthy) this.logger.info(fields, 'etcd answers again: new addresses are given');
      else
        this.logger.warn(
          { ...fields, reason },
          'etcd cannot be reached: no new address is given; renewals of held addresses are ACKed up to their claimed expiry',
        );
    }
    this.onHealth?.(this.state);
  }
}

/** Rejects with `what` once `ms` passed; the operation itself may still finish later (see claim()). */
function withDeadline<T>(operation: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: etcd did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([operation, deadline]).finally(() => clearTimeout(timer));
}

/**
 * What a claim writes: the same client's claim is never shortened. Another
 * instance may hold a binding for this client up to the expiry already in etcd
 * and answer its renewals from that binding while etcd cannot be reached (see
 * full-handler.ts); an offer's shorter hold written over it (the client's
 * DISCOVER, or a forged one with its MAC, reaching another instance) would let
 * the key expire early and the address go to a second client.
 */
function lengthened(value: ClaimValue, current: ClaimValue | undefined): ClaimValue {
  return current?.key === value.key && current.expiresAt > value.expiresAt ? { ...value, expiresAt: current.expiresAt } : value;
}

/** The key of `ip` in `subnet` (a CIDR; its slash would read as another level). */
function claimKey(prefix: string, subnet: string, ip: string): string {
  return `${prefix}/leases/${subnet.replace('/', '_')}/${ip}`;
}

export class EtcdLeaseClaims implements LeaseClaims {
  /** ip -> the claim etcd holds for it, as the watch last told. */
  private readonly held = new Map<string, ClaimValue>();
  private watcher: Watcher | undefined;
  private readonly tracker: ClaimsHealthTracker;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly failureLog = new RateLimiter(10, 60_000);
  private registry: InstanceRegistry | undefined;

  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly options: EtcdClaimsOptions,
  ) {
    this.tracker = new ClaimsHealthTracker(options.logger, { prefix, endpoints: options.endpoints }, options.onHealth, Date.now());
  }

  /** Connects, reads every claim and watches the prefix from the revision after that read. */
  static async open(options: EtcdClaimsOptions): Promise<EtcdLeaseClaims> {
    const timeout = options.claimTimeoutMs;
    const client = new Etcd3({
      hosts: options.endpoints,
      credentials: etcdCredentials(options.tls),
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    const claims = new EtcdLeaseClaims(client, options.prefix.replace(/\/+$/, ''), options);
    try {
      await claims.watch();
      if (options.registry)
        claims.registry = await InstanceRegistry.open({
          ...options.registry,
          client,
          prefix: claims.prefix,
          endpoints: options.endpoints,
          tls: options.tls,
          timeoutMs: timeout,
          logger: options.logger,
        });
    } catch (err) {
      await claims.watcher?.cancel().catch(() => undefined);
      client.close();
      throw new Error(etcdErrorText(err, options.tls));
    }
    options.onHealth?.(claims.health());
    claims.probeTimer = setInterval(() => claims.probe(), PROBE_INTERVAL_MS);
    claims.probeTimer.unref();
    return claims;
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  health(): ClaimsHealth {
    return this.tracker.current;
  }

  clockHealth(): ClockHealth | undefined {
    return this.registry?.clockHealth();
  }

  identityHealth(): ClockHealth | undefined {
    return this.registry?.identityHealth();
  }

  private noteHealth(healthy: boolean, reason?: string): void {
    const wasHealthy = this.tracker.current.healthy;
    this.tracker.note(healthy, reason, Date.now());
    // Back from an outage: the skew verdict may have gone stale meanwhile (InstanceRegistry.refreshAfterRecovery).
    if (healthy && !wasHealthy) this.registry?.refreshAfterRecovery();
  }

  /** Runs one etcd operation within the claim timeout, and notes whether etcd answered. */
  private async bounded<T>(operation: () => Promise<T>, what: string): Promise<T> {
    try {
      const result = await withDeadline(operation(), this.options.claimTimeoutMs, what);
      this.noteHealth(true);
      return result;
    } catch (err) {
      const reason = etcdErrorText(err, this.options.tls);
      this.noteHealth(false, reason);
      throw new Error(reason);
    }
  }

  /** A linearizable read needs a quorum: the cheapest question only a healthy cluster answers. */
  private probe(): void {
    if (this.probing) return;
    this.probing = true;
    this.bounded(() => this.client.get(`${this.prefix}/health`).exec(), 'probe')
      .catch(() => undefined)
      .finally(() => {
        this.probing = false;
      });
  }

  private get leasesPrefix(): string {
    return `${this.prefix}/leases/`;
  }

  private note(key: Buffer, value: Buffer | undefined): void {
    const ip = key.toString().split('/').pop() ?? '';
    const claim = value ? parseClaim(value.toString()) : undefined;
    if (claim) this.held.set(ip, claim);
    else this.held.delete(ip);
  }

  private async watch(): Promise<void> {
    const all = await this.client.getAll().prefix(this.leasesPrefix).exec();
    for (const kv of all.kvs) this.note(kv.key, kv.value);
    // From the revision after the read: no claim can fall between the read and the watch.
    const next = (BigInt(all.header.revision) + 1n).toString();
    const watcher = await this.client.watch().prefix(this.leasesPrefix).startRevision(next).create();
    watcher.on('put', (kv) => this.note(kv.key, kv.value));
    watcher.on('delete', (kv) => this.note(kv.key, undefined));
    watcher.on('disconnected', (err) => this.logger.warn({ err: err.message }, 'etcd watch disconnected; reconnecting'));
    watcher.on('error', (err) => this.logger.error({ err: err.message }, 'etcd watch failed'));
    this.watcher = watcher;
  }

  private async read(key: string): Promise<Current> {
    const res = await this.client.get(key).exec();
    return currentOf(res.kvs[0]);
  }

  /**
   * Bounded by claimTimeoutMs. A transaction that commits after the deadline
   * leaves a claim the caller did not use: the address is held for nobody until
   * the claim's TTL, which wastes it for a while but never gives it twice.
   */
  claim(subnet: string, ip: string, value: ClaimValue, now: number): Promise<ClaimResult> {
    // Clock skew past the limit, or a clock step since the verdict: no claim is
    // made, and the distinct error tells full-handler.ts to answer nothing for
    // the address, not even from its binding (whose time left this clock counts).
    // A verdict merely too old says the registry could not refresh, most likely
    // because etcd cannot be reached: nothing says the clock is bad, so that is
    // the outage path (no new address; renewals from the binding). Either way
    // etcd's health is not touched here: its own calls and probe say it.
    const refusal = this.registry?.refusal();
    if (refusal?.clockBad) return Promise.reject(new ClockSkewStop(refusal.reason));
    if (refusal) return Promise.reject(new Error(refusal.reason));
    return this.bounded(() => this.claimUnbounded(subnet, ip, value, now), `claim of ${ip}`);
  }

  private async claimUnbounded(subnet: string, ip: string, value: ClaimValue, now: number): Promise<ClaimResult> {
    const key = claimKey(this.prefix, subnet, ip);
    let current = await this.read(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (current.value && !mayClaim(current.value, value.key, now, CLAIM_SKEW_MARGIN_MS)) {
        this.held.set(ip, current.value);
        return { ok: false, holder: current.value };
      }
      const written = lengthened(value, current.value);
      const ttl = Math.max(1, Math.ceil((written.expiresAt - now) / 1000));
      const grant = await this.client.leaseClient.leaseGrant({ TTL: ttl });
      const res = await this.client
        .if(key, 'Mod', '==', current.modRevision)
        .then(this.client.put(key).value(JSON.stringify(written)).lease(grant.ID))
        .else(this.client.get(key))
        .commit();
      if (res.succeeded) {
        this.held.set(ip, written);
        // A renewal moved the key to a new etcd lease (its TTL is the new expiry's):
        // the old one would otherwise live on, attached to nothing, until its TTL.
        if (current.lease !== '0') this.revoke(current.lease);
        return { ok: true };
      }
      // Someone wrote the key since it was read: decide again on what is there now.
      this.revoke(grant.ID);
      current = currentOf(res.responses[0]?.response_range?.kvs[0]);
    }
    // Lost every race: other writers keep taking the key. A conflict, not an
    // outage (etcd answered each time): the caller moves on as for any holder.
    return current.value ? { ok: false, holder: current.value } : { ok: false };
  }

  /** Ends an etcd lease no key needs any more; a failure leaves it to its TTL. */
  private revoke(id: string): void {
    this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  async release(subnet: string, ip: string, clientKey: string): Promise<void> {
    const key = claimKey(this.prefix, subnet, ip);
    try {
      await this.bounded(async () => {
        const current = await this.read(key);
        if (current.value?.key !== clientKey) return;
        // Only the claim that was read is deleted: one written since belongs to someone else.
        const res = await this.client.if(key, 'Mod', '==', current.modRevision).then(this.client.delete().key(key)).commit();
        if (res.succeeded && current.lease !== '0') this.revoke(current.lease);
      }, `release of ${ip}`);
    } catch (err) {
      // The local lease is released already; the claim expires with its TTL.
      const gate = this.failureLog.take(Date.now());
      if (gate.log)
        this.logger.warn(
          { ip, err: (err as Error).message, suppressedSinceLast: gate.suppressed },
          'etcd claim not released (it expires with its TTL)',
        );
    }
  }

  heldByOther(ip: string, key: string, now: number): boolean {
    const claim = this.held.get(ip);
    // The same margin as the claim's rule: the pool must not offer what a claim would refuse.
    return claim !== undefined && claim.key !== key && !mayClaim(claim, key, now, CLAIM_SKEW_MARGIN_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.registry?.stop();
    await this.watcher?.cancel();
    this.client.close();
  }
}
