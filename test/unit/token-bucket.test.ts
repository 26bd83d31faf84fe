import { describe, expect, it } from 'vitest';
import { KeyedTokenBuckets, TokenBucket } from '../../server/util/token-bucket.js';

describe('token buckets', () => {
  it('allows a burst, then one request per refill interval', () => {
    const bucket = new TokenBucket({ burst: 3, perSecond: 2 }, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([true, true, true, false]);
    expect(bucket.take(400)).toBe(false); // 0.8 of a token
    expect(bucket.take(500)).toBe(true); // 1.0
    expect(bucket.take(500)).toBe(false);
    // Refill stops at the burst size.
    expect([bucket.take(60_000), bucket.take(60_000), bucket.take(60_000), bucket.take(60_000)]).toEqual([true, true, true, false]);
  });

  it('burst 0 means no limit', () => {
    const bucket = new TokenBucket({ burst: 0, perSecond: 0 }, 0);
    for (let i = 0; i < 1000; i++) expect(bucket.take(0)).toBe(true);
  });

  it('keeps one budget per key and at most maxKeys keys, evicting the least recently used', () => {
    const table = new KeyedTokenBuckets({ burst: 1, perSecond: 0 }, 2);
    expect(table.take('a', 0)).toBe(true);
    expect(table.take('a', 0)).toBe(false);
    expect(table.take('b', 0)).toBe(true);
    expect(table.take('a', 0)).toBe(false); // a is now the most recently used
    expect(table.take('c', 0)).toBe(true); // evicts b
    expect(table.size).toBe(2);
    expect(table.evictions).toBe(1);
    expect(table.take('a', 0)).toBe(false); // a kept its spent budget
    expect(table.take('b', 0)).toBe(true); // b forgotten: a fresh budget
    for (let i = 0; i < 10_000; i++) table.take(`k${i}`, 0);
    expect(table.size).toBe(2);
  });
});
