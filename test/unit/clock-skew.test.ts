// The clock-skew rule between instances sharing etcd (server/store/clock-skew.ts):
// bounds from one read, and who stops allocating when two clocks disagree.
import { describe, expect, it } from 'vitest';
import {
  CLOCK_STEP_TOLERANCE_MS,
  decideSkew,
  peerOffset,
  possibleSkew,
  quorumReference,
  readingApart,
  referenceOffset,
  SKEW_STOP_MS,
  SKEW_WARN_MS,
  verdictStaleness,
} from '../../server/store/clock-skew.js';

const T = 1_800_000_000_000;
/** An exact offset (a zero-width bound), to test the rule apart from the measurement. */
const exact = (ms: number) => ({ lo: ms, hi: ms });

describe('offset bounds', () => {
  it("a peer's reading may be as old as its registry TTL: the bound spans our read and the TTL", () => {
    // The peer's clock said T+90 s; our read ran from T to T+20 ms; TTL 8 s.
    expect(peerOffset(T + 90_000, T, T + 20, 8000)).toEqual({ lo: 89_980, hi: 98_000 });
    expect(possibleSkew(peerOffset(T - 90_000, T, T + 20, 8000))).toBe(90_020);
  });

  it("etcd's Date header is truncated to the second: up to 1 s more", () => {
    expect(referenceOffset(T, T + 100, T + 300)).toEqual({ lo: -300, hi: 900 });
  });
});

describe('decideSkew', () => {
  it('no peers: allocation goes on, with or without a reading of etcd', () => {
    expect(decideSkew([], undefined)).toMatchObject({ stop: false, warn: false, worst: undefined });
    expect(decideSkew([], exact(500))).toMatchObject({ stop: false, warn: false, referenceSkewMs: 500 });
  });

  it('a peer within the stop limit: allocation goes on; past the warning limit it warns', () => {
    expect(decideSkew([{ id: 'b', offset: exact(SKEW_WARN_MS) }], undefined)).toMatchObject({ stop: false, warn: false });
    expect(decideSkew([{ id: 'b', offset: exact(-SKEW_WARN_MS - 1) }], undefined)).toMatchObject({ stop: false, warn: true });
    expect(decideSkew([{ id: 'b', offset: exact(SKEW_STOP_MS) }], exact(SKEW_STOP_MS))).toMatchObject({ stop: false, warn: true });
  });

  it('a peer possibly beyond the stop limit stops an instance whose own clock is not within the warning limit of etcd', () => {
    const peers = [
      { id: 'near', offset: exact(1000) },
      { id: 'far', offset: { lo: 50_000, hi: SKEW_STOP_MS + 1 } },
    ];
    for (const reference of [undefined, exact(SKEW_WARN_MS + 1), exact(-90_000)]) {
      const verdict = decideSkew(peers, reference);
      expect(verdict).toMatchObject({ stop: true, warn: true, worst: { id: 'far', skewMs: SKEW_STOP_MS + 1 } });
      expect(verdict.reason).toMatch(/^clock skew: instance far may be 60 s from this one \(limit 60 s\)/);
    }
  });

  it("an instance within the warning limit of etcd's clock goes on: the peer is the one off, and it stops itself", () => {
    // Instance A agrees with etcd; B runs 90 s ahead of both.
    const a = decideSkew([{ id: 'b', offset: exact(90_000) }], exact(-200));
    const b = decideSkew([{ id: 'a', offset: exact(-90_000) }], exact(-90_000));
    expect(a).toMatchObject({ stop: false, warn: true, worst: { id: 'b', skewMs: 90_000 } });
    expect(b).toMatchObject({ stop: true, warn: true, referenceSkewMs: 90_000 });
    // The exemption ends exactly at the warning limit.
    expect(decideSkew([{ id: 'b', offset: exact(90_000) }], exact(SKEW_WARN_MS)).stop).toBe(false);
    expect(decideSkew([{ id: 'b', offset: exact(90_000) }], { lo: 0, hi: SKEW_WARN_MS + 1 }).stop).toBe(true);
  });

  it("its own clock far from etcd's warns even with no peer", () => {
    expect(decideSkew([], exact(-SKEW_WARN_MS - 1))).toMatchObject({ stop: false, warn: true });
  });
});

describe('verdictStaleness', () => {
  const made = { wall: T, mono: 5000 };
  const MAX_AGE = 16_000;
  /** `monoMs` later on the monotonic clock, the wall clock having moved `wallMs`. */
  const later = (monoMs: number, wallMs = monoMs) => ({ wall: T + wallMs, mono: 5000 + monoMs });

  it('a verdict younger than the bound, with both clocks moving together, holds', () => {
    expect(verdictStaleness(made, later(0), MAX_AGE)).toBeUndefined();
    expect(verdictStaleness(made, later(MAX_AGE), MAX_AGE)).toBeUndefined();
    // Slewing and rounding: within the tolerance either way.
    expect(verdictStaleness(made, later(10_000, 10_000 + CLOCK_STEP_TOLERANCE_MS), MAX_AGE)).toBeUndefined();
    expect(verdictStaleness(made, later(10_000, 10_000 - CLOCK_STEP_TOLERANCE_MS), MAX_AGE)).toBeUndefined();
  });

  it('none made yet, or older than the bound on the monotonic clock: stale (unmeasured, not known bad)', () => {
    expect(verdictStaleness(undefined, later(0), MAX_AGE)).toEqual({ kind: 'stale', reason: 'clock skew verdict stale: none made yet' });
    expect(verdictStaleness(made, later(MAX_AGE + 1), MAX_AGE)).toEqual({
      kind: 'stale',
      reason: 'clock skew verdict stale: 16 s old (limit 16 s)',
    });
    expect(verdictStaleness(made, later(600_000), MAX_AGE)?.reason).toBe('clock skew verdict stale: 600 s old (limit 16 s)');
  });

  it('a wall clock stepped forward or back since the verdict (NTP step, VM resume): refused however young the verdict', () => {
    expect(verdictStaleness(made, later(1000, 1000 + CLOCK_STEP_TOLERANCE_MS + 1), MAX_AGE)).toEqual({
      kind: 'stepped',
      reason: 'clock stepped since the last verdict: the wall clock moved 2 s against the monotonic one',
    });
    expect(verdictStaleness(made, later(1000, 1000 - 90_000), MAX_AGE)).toEqual({
      kind: 'stepped',
      reason: 'clock stepped since the last verdict: the wall clock moved -90 s against the monotonic one',
    });
    // A VM suspended for an hour: the monotonic clock did not count it, the wall clock did.
    expect(verdictStaleness(made, later(500, 3_600_500), MAX_AGE)?.reason).toMatch(/^clock stepped since the last verdict: .* 3600 s /);
    // A step found in an old verdict is still a step: the clock is bad, not just unmeasured.
    expect(verdictStaleness(made, later(MAX_AGE * 10, MAX_AGE * 10 - 90_000), MAX_AGE)?.kind).toBe('stepped');
  });
});

describe("etcd's clock from its members (quorumReference)", () => {
  const ok = exact(500);
  const off = exact(90_000);

  it('one member 90 s off among three can neither stop this clock nor clear it', () => {
    // This clock right: the wrong member alone says it is 90 s off, the majority does not.
    expect(quorumReference([off, ok, ok], 3)).toEqual(ok);
    expect(quorumReference([ok, off], 3)).toEqual(off);
    // This clock 90 s off: the wrong member alone agrees with it, the majority does not.
    expect(quorumReference([ok, off, off], 3)).toEqual(off);
    const peer90 = [{ id: 'b', offset: exact(SKEW_STOP_MS + 30_000) }];
    expect(decideSkew(peer90, quorumReference([off, ok, ok], 3)).stop).toBe(false);
    expect(decideSkew(peer90, quorumReference([ok, off, off], 3)).stop).toBe(true);
  });

  it('fewer answers than a majority of the members is no reading; one member decides alone, two must agree', () => {
    expect(quorumReference([ok], 3)).toBeUndefined();
    expect(quorumReference([], 1)).toBeUndefined();
    expect(quorumReference([off], 1)).toEqual(off);
    expect(quorumReference([ok, off], 2)).toEqual(off);
    expect(quorumReference([ok, ok, ok, off, off], 5)).toEqual(ok);
    expect(quorumReference([ok, ok, off, off, off], 5)).toEqual(off);
  });

  it("a member's distance from the majority's reading: the gap between the intervals", () => {
    expect(readingApart({ lo: 100, hi: 1100 }, { lo: 600, hi: 1600 })).toBe(0);
    expect(readingApart({ lo: 90_000, hi: 91_000 }, { lo: -200, hi: 800 })).toBe(89_200);
    expect(readingApart({ lo: -91_000, hi: -90_000 }, { lo: -200, hi: 800 })).toBe(89_800);
  });
});
