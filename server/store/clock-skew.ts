// Clock skew between bootfarm instances sharing etcd (docs/design.md "Shared
// state in etcd", clocks). Claims carry wall-clock expiries written by one
// instance and judged by another (mayClaim in lease-claims.ts): an instance
// whose clock runs ahead of the writer's takes an address early by the
// difference. Kea's HA hook sets the limits used here: warn at 30 s, stop at 60 s.
// Everything in this file is pure: the registry (instance-registry.ts) measures,
// this decides.

export const SKEW_WARN_MS = 30_000;
export const SKEW_STOP_MS = 60_000;

/**
 * What a clock differs by, as a closed interval of milliseconds that holds the
 * true offset (other clock minus ours). Both ends come from a measurement whose
 * error is bounded (see peerOffset, referenceOffset).
 */
export interface OffsetBound {
  lo: number;
  hi: number;
}

/**
 * A peer's offset from one linearizable read of its registry value.
 *
 * The peer read its clock (`clock`) after granting the etcd lease its value is
 * attached to (TTL `ttlMs`), so while the key exists the reading is younger than
 * that TTL. Our read started at our wall-clock `readStart` and returned at
 * `readEnd`; the value was current at some instant between them. So the peer
 * read `clock` at one of our instants in (readStart - ttlMs, readEnd], and the
 * offset lies in [clock - readEnd, clock - readStart + ttlMs]. The bound widens
 * only if etcd keeps the key past its TTL (a leader election extends leases):
 * then the reading may be older than ttlMs and the peer looks further behind
 * than it is, which stops allocation for nothing but never hides a skew ahead.
 */
export function peerOffset(clock: number, readStart: number, readEnd: number, ttlMs: number): OffsetBound {
  return { lo: clock - readEnd, hi: clock - readStart + ttlMs };
}

/**
 * etcd's own clock, from the HTTP Date header of a member's /health answer.
 * The header is the member's wall clock truncated to the second, taken at an
 * instant between our request's start and its answer: offset in
 * [date - readEnd, date + 1000 - readStart].
 */
export function referenceOffset(dateMs: number, readStart: number, readEnd: number): OffsetBound {
  return { lo: dateMs - readEnd, hi: dateMs + 1000 - readStart };
}

/** The largest skew the bound allows (what is compared with the limits). */
export function possibleSkew(bound: OffsetBound): number {
  return Math.max(Math.abs(bound.lo), Math.abs(bound.hi));
}

export interface PeerSkew {
  id: string;
  offset: OffsetBound;
}

export interface SkewVerdict {
  /** No new address while this is true (renewals of this instance's own bindings go on, as in an etcd outage). */
  stop: boolean;
  /** A skew past SKEW_WARN_MS is possible with some peer, or with etcd's clock. */
  warn: boolean;
  /** The live peer with the largest possible skew, if any. */
  worst?: { id: string; skewMs: number } | undefined;
  /** This instance's own possible skew from etcd's clock, when measured. */
  referenceSkewMs?: number | undefined;
  /** Why allocation stops (for the log; /healthz shows a fixed text). */
  reason?: string | undefined;
}

/**
 * The rule. Two clocks 90 s apart cannot say which one is wrong, so etcd's
 * clock (every instance reaches the same members) arbitrates:
 * - a live peer possibly skewed beyond SKEW_STOP_MS stops this instance, unless
 *   this instance's own clock agrees with etcd's to within SKEW_WARN_MS: the
 *   peer is the one off then, and it stops itself by the same rule;
 * - without a reading of etcd's clock, no instance can clear itself.
 * So any two instances that both allocate are within SKEW_STOP_MS of each other:
 * both within SKEW_WARN_MS of etcd, or one of them sees no peer beyond the stop
 * limit. mayClaim's margin relies on exactly that.
 */
export function decideSkew(peers: PeerSkew[], reference: OffsetBound | undefined): SkewVerdict {
  let worst: { id: string; skewMs: number } | undefined;
  for (const peer of peers) {
    const skewMs = possibleSkew(peer.offset);
    if (!worst || skewMs > worst.skewMs) worst = { id: peer.id, skewMs };
  }
  const referenceSkewMs = reference ? possibleSkew(reference) : undefined;
  const agreesWithEtcd = referenceSkewMs !== undefined && referenceSkewMs <= SKEW_WARN_MS;
  const peerBeyond = worst !== undefined && worst.skewMs > SKEW_STOP_MS;
  const stop = peerBeyond && !agreesWithEtcd;
  const warn = (worst !== undefined && worst.skewMs > SKEW_WARN_MS) || (referenceSkewMs !== undefined && referenceSkewMs > SKEW_WARN_MS);
  const reason = stop
    ? `clock skew: instance ${worst?.id} may be ${Math.round((worst?.skewMs ?? 0) / 1000)} s from this one (limit ${SKEW_STOP_MS / 1000} s), and this clock is ${
        referenceSkewMs === undefined ? 'not measured against etcd' : `up to ${Math.round(referenceSkewMs / 1000)} s from etcd's`
      }`
    : undefined;
  return { stop, warn, worst, referenceSkewMs, reason };
}

/** One instant on both clocks: wall (Date.now) and monotonic (performance.now). */
export interface ClockPair {
  wall: number;
  mono: number;
}

/**
 * How far wall-clock and monotonic time elapsed since the verdict may differ
 * before the wall clock counts as stepped. Both are read at the same instant,
 * so event-loop delay does not enter, and Linux slews CLOCK_MONOTONIC with
 * CLOCK_REALTIME (adjtime, NTP frequency): only a step or a suspend parts them.
 * A step this small is within the 2 s of CLAIM_SKEW_MARGIN_MS kept for the
 * measurement's round trip.
 */
export const CLOCK_STEP_TOLERANCE_MS = 2000;

/** Why a verdict no longer holds: `stepped`, this clock is not the one measured; `stale`, it was not measured lately. */
export interface Staleness {
  kind: 'stale' | 'stepped';
  reason: string;
}

/**
 * Whether a skew verdict made at `madeAt` still holds at `now`; why it does not,
 * else undefined. A verdict bounds the skew only for the clock it measured:
 * once the wall clock stepped (NTP step, VM resume: the monotonic clock does not
 * count a suspend) it describes another clock, and once too old (the refreshes
 * that should have renewed it failed or hang) it may miss a peer that arrived
 * since. A step is checked first: it says the clock is bad, age only that it is
 * unmeasured. `maxAgeMs` is counted on the monotonic clock.
 */
export function verdictStaleness(madeAt: ClockPair | undefined, now: ClockPair, maxAgeMs: number): Staleness | undefined {
  if (madeAt === undefined) return { kind: 'stale', reason: 'clock skew verdict stale: none made yet' };
  const monoAge = now.mono - madeAt.mono;
  const wallAge = now.wall - madeAt.wall;
  if (Math.abs(wallAge - monoAge) > CLOCK_STEP_TOLERANCE_MS)
    return {
      kind: 'stepped',
      reason: `clock stepped since the last verdict: the wall clock moved ${Math.round((wallAge - monoAge) / 1000)} s against the monotonic one`,
    };
  if (monoAge > maxAgeMs)
    return {
      kind: 'stale',
      reason: `clock skew verdict stale: ${Math.round(monoAge / 1000)} s old (limit ${Math.round(maxAgeMs / 1000)} s)`,
    };
  return undefined;
}

/**
 * etcd's clock from every member's reading (`readings`, the members that
 * answered; `members`, how many there are). One member's clock can be wrong
 * (members do not agree on time: raft needs no clock), and the first member to
 * answer may be that one. So etcd's clock is what a majority of the members
 * says, as etcd itself decides by majority: the reading with the q-th smallest
 * possible skew, q = floor(members / 2) + 1. A majority of members then puts
 * this clock within that skew of theirs, and none of the rest moves it:
 * - one wrong member cannot clear this instance: with it alone agreeing, the
 *   q-th smallest is still a right member's, which shows the skew (from 3 members);
 * - one wrong member cannot stop it: the q-th smallest is a right member's, so
 *   a far-off reading is never the one chosen (from 3 members).
 * Fewer than q answers is no reading (decideSkew: nobody clears itself), as a
 * minority of members is no etcd either. With 1 member it decides alone; with 2
 * both must agree (a pair cannot say which of them is wrong).
 */
export function quorumReference(readings: OffsetBound[], members: number): OffsetBound | undefined {
  const quorum = Math.floor(members / 2) + 1;
  if (readings.length < quorum) return undefined;
  return [...readings].sort((a, b) => possibleSkew(a) - possibleSkew(b))[quorum - 1];
}

/**
 * How far a member's reading may lie from the majority's (`reference`), in
 * milliseconds: the gap between the two intervals, 0 when they overlap. Past
 * SKEW_WARN_MS that member's clock is wrong (or ours and the majority's are),
 * which the registry logs.
 */
export function readingApart(reading: OffsetBound, reference: OffsetBound): number {
  return Math.max(0, reading.lo - reference.hi, reference.lo - reading.hi);
}
