// Transfer slots: at most `maxTotal` transfers in flight, and `maxPerClient` for
// one client address. A slot is taken synchronously (no await between the check
// and the take, so a burst cannot overshoot) and its release is idempotent, so
// every failure path may release without counting twice.

export type Reservation = { ok: true; release: () => void } | { ok: false; full: 'total' | 'client' };

export class TransferSlots {
  private heldTotal = 0;
  private readonly heldByClient = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
    private readonly onChange: (held: number) => void = () => undefined,
  ) {}

  get held(): number {
    return this.heldTotal;
  }

  reserve(client: string): Reservation {
    if (this.heldTotal >= this.maxTotal) return { ok: false, full: 'total' };
    const byClient = this.heldByClient.get(client) ?? 0;
    if (byClient >= this.maxPerClient) return { ok: false, full: 'client' };
    this.heldTotal++;
    this.heldByClient.set(client, byClient + 1);
    this.onChange(this.heldTotal);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.heldTotal--;
        // Entries go when they reach 0: the map holds only clients with a transfer in flight.
        const left = (this.heldByClient.get(client) ?? 1) - 1;
        if (left > 0) this.heldByClient.set(client, left);
        else this.heldByClient.delete(client);
        this.onChange(this.heldTotal);
      },
    };
  }
}
