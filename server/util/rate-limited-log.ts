// Logs at most `burst` lines per `intervalMs` for one kind of problem, then one
// summary of how many were suppressed: a flood of bad packets cannot flood the log.

export class RateLimiter {
  private windowStart = 0;
  private used = 0;
  private suppressed = 0;

  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
  ) {}

  /** Returns whether to log now, and how many lines were suppressed since the last one logged. */
  take(now: number): { log: boolean; suppressed: number } {
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.burst) {
      this.used++;
      const suppressed = this.suppressed;
      this.suppressed = 0;
      return { log: true, suppressed };
    }
    this.suppressed++;
    return { log: false, suppressed: this.suppressed };
  }
}
