// Token buckets for request budgets: one shared bucket, and a table of buckets
// keyed by client whose size is itself bounded, so a flood of random keys (forged
// MACs) costs a fixed amount of memory: the least recently seen key is evicted.

export interface BucketSettings {
  /** Requests allowed at once. 0 disables the limit. */
  burst: number;
  /** Tokens added per second. */
  perSecond: number;
}

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly settings: BucketSettings,
    now: number,
  ) {
    this.tokens = settings.burst;
    this.refilledAt = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    if (this.settings.burst <= 0) return true;
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    this.tokens = Math.min(this.settings.burst, this.tokens + elapsed * this.settings.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class KeyedTokenBuckets {
  /** Map order is insertion order: re-inserting on use keeps the least recently used first. */
  private readonly buckets = new Map<string, TokenBucket>();
  evictions = 0;

  constructor(
    private readonly settings: BucketSettings,
    private readonly maxKeys: number,
  ) {}

  take(key: string, now: number): boolean {
    if (this.settings.burst <= 0) return true;
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
    } else {
      bucket = new TokenBucket(this.settings, now);
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
        this.evictions++;
      }
    }
    this.buckets.set(key, bucket);
    return bucket.take(now);
  }

  get size(): number {
    return this.buckets.size;
  }
}
