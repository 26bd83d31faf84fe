// A flapping etcd (health lost and back, over and over) must not flood the log:
// each kind of change (lost, back) is logged at most 5 times a minute, the first
// of each kind always; past that, the next line logged says how many were
// suppressed. The gauge (onHealth) still hears every change.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ClaimsHealthTracker } from '../../server/store/etcd-lease-claims.js';
import type { ClaimsHealth } from '../../server/store/lease-claims.js';

interface Line {
  level: number;
  msg: string;
  reason?: string;
  suppressedSinceLast: number;
}

function capture(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const WARN = 40;
const INFO = 30;

describe('etcd health changes in the log', () => {
  it('200 flips in a minute log 5 losses and 5 returns; the next minute says how many were suppressed', () => {
    const { logger, lines } = capture();
    const told: ClaimsHealth[] = [];
    const t0 = 1_000_000;
    const tracker = new ClaimsHealthTracker(logger, { prefix: '/bf' }, (h) => told.push(h), t0);
    for (let i = 0; i < 100; i++) {
      tracker.note(false, `claim: etcd did not answer within 500 ms (${i})`, t0 + i * 100);
      tracker.note(true, undefined, t0 + i * 100 + 50);
    }
    // The same state again is no change: neither logged nor told.
    tracker.note(true, undefined, t0 + 20_000);
    expect(told).toHaveLength(200);
    expect(tracker.current).toEqual({ healthy: true, since: t0 + 99 * 100 + 50 });
    const down = lines.filter((l) => l.level === WARN);
    const up = lines.filter((l) => l.level === INFO);
    expect([down.length, up.length]).toEqual([5, 5]);
    // The first loss, with its detail (the log is the operator's), and the first return.
    expect(lines[0]).toMatchObject({ level: WARN, reason: 'claim: etcd did not answer within 500 ms (0)', suppressedSinceLast: 0 });
    expect(lines[1]).toMatchObject({ level: INFO, msg: 'etcd answers again: new addresses are given', suppressedSinceLast: 0 });

    // A minute after each first line: the next loss and return are logged, each with its 95 suppressed.
    tracker.note(false, 'claim: UNAVAILABLE', t0 + 60_000);
    tracker.note(true, undefined, t0 + 61_000);
    expect(lines.slice(10)).toEqual([
      expect.objectContaining({ level: WARN, reason: 'claim: UNAVAILABLE', suppressedSinceLast: 95 }),
      expect.objectContaining({ level: INFO, suppressedSinceLast: 95 }),
    ]);
    expect(tracker.current).toEqual({ healthy: true, since: t0 + 61_000 });
  });
});
