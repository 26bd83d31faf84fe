// Memory for READ data, shared by all NBD connections (nbd.maxBufferedReadMiB).
// A read holds its bytes from the moment it is started until its reply has been
// handed to the kernel, so peers that never read their replies hold them for
// good: without a shared budget, each of up to nbd.maxConnections connections
// could hold its own in-flight cap. A connection with nothing in flight may
// always start one read, so peers that exhaust the budget slow the others down
// to one request at a time but cannot stop them.
export class ReadBudget {
  private held = 0;
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly limitBytes: number,
    private readonly onChange: (heldBytes: number) => void = () => undefined,
  ) {}

  /** Takes `bytes` if they fit, or if `guaranteed` (the connection has nothing in flight). */
  tryTake(bytes: number, guaranteed: boolean): boolean {
    if (!guaranteed && this.held + bytes > this.limitBytes) return false;
    this.held += bytes;
    this.onChange(this.held);
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
    this.onChange(this.held);
    if (this.waiting.size === 0) return;
    // Everyone waiting tries again; whoever does not fit waits again.
    const wake = [...this.waiting];
    this.waiting.clear();
    for (const w of wake) w();
  }

  /** Calls `wake` once, at the next give(). */
  wait(wake: () => void): void {
    this.waiting.add(wake);
  }

  forget(wake: () => void): void {
    this.waiting.delete(wake);
  }

  heldBytes(): number {
    return this.held;
  }
}
