// Lease claims: the edge between full-mode DHCP (server/dhcp/server/full-handler.ts)
// and the storage that decides, across every bootfarm instance on a segment, who
// holds an address. The handler decides what to answer from its local pool; before
// it sends an OFFER or ACK it awaits claim(), and a conflict turns the ACK into a
// NAK (or the OFFER into the next candidate). The file backend has one instance,
// whose pool already decided: its claims always succeed.

/** What the shared store holds for one address: which client, until when, through which instance. */
export interface ClaimValue {
  /** The client's lease key (option 61, else its MAC): what the pool keys bindings by. */
  key: string;
  mac: string;
  /** Wall-clock milliseconds. The engine's TTL removes the claim too; this guards a late deletion. */
  expiresAt: number;
  /** server.address of the instance that wrote it (for operators; never compared). */
  instance: string;
}

/** A conflict names the holder when one is known (not when the claim lost its races to writers that left none). */
export type ClaimResult = { ok: true } | { ok: false; holder?: ClaimValue };

/** Can the store decide claims now? Shown by /healthz and bootfarm_lease_store_healthy. */
export interface ClaimsHealth {
  healthy: boolean;
  /** Why not, when it cannot (the last failure). */
  reason?: string | undefined;
  /** Wall-clock milliseconds of the last change. */
  since: number;
}

/**
 * claim()'s rejection when this instance's own clock cannot be trusted (clock
 * skew beyond the limit, or a skew verdict stale or overtaken by a clock step:
 * instance-registry.ts). Unlike an unreachable store, this must not fall back
 * to answering renewals from the local binding: that binding's remaining time
 * is counted with the very clock found bad (full-handler.ts).
 */
export class ClockSkewStop extends Error {
  override readonly name = 'ClockSkewStop';
}

export interface LeaseClaims {
  /**
   * Claims (or renews) `ip` in `subnet` for the client `value.key` until
   * `value.expiresAt`, judged at `now`. Resolves ok only once the claim is
   * committed; a conflict (someone else holds it, or the claim kept losing
   * races for it) resolves not ok. Rejects when the store cannot say
   * (within the store's bounded claim timeout): the caller then gives no new address.
   * Rejects with ClockSkewStop when this instance's clock is not to be trusted:
   * the caller then answers nothing for the address.
   */
  claim(subnet: string, ip: string, value: ClaimValue, now: number): Promise<ClaimResult>;
  /** Gives `ip` back, if `key` still holds it (RELEASE). Never rejects: a claim left behind expires with its TTL. */
  release(subnet: string, ip: string, key: string): Promise<void>;
  /** Does a client other than `key` hold `ip` through another instance (so the local pool must not offer it)? */
  heldByOther(ip: string, key: string, now: number): boolean;
  health(): ClaimsHealth;
  /** With instances sharing etcd: whether this one may allocate as far as clocks go (/healthz). */
  clockHealth?(): ClaimsHealth | undefined;
  /** With instances sharing etcd: unhealthy while another live instance publishes this one's id (/healthz). */
  identityHealth?(): ClaimsHealth | undefined;
  stop(): Promise<void>;
}

/**
 * The pure rule of a claim: an address may be taken when nobody holds it, when
 * this same client holds it (a renewal, or the client's other server offered it
 * too), or when the holder's claim expired at least `marginMs` ago. The expiry is
 * in the writer's wall clock: the margin covers the clock skew allowed between
 * instances (etcd-lease-claims.ts CLAIM_SKEW_MARGIN_MS).
 */
export function mayClaim(current: ClaimValue | undefined, key: string, now: number, marginMs = 0): boolean {
  return current === undefined || current.key === key || current.expiresAt + marginMs <= now;
}

/** Parses a stored claim; anything else (a foreign or damaged value) counts as held by nobody we know, until its TTL. */
export function parseClaim(text: string): ClaimValue | undefined {
  try {
    const v = JSON.parse(text) as Partial<ClaimValue>;
    if (typeof v.key !== 'string' || typeof v.mac !== 'string' || typeof v.expiresAt !== 'number' || typeof v.instance !== 'string')
      return undefined;
    return { key: v.key, mac: v.mac, expiresAt: v.expiresAt, instance: v.instance };
  } catch {
    return undefined;
  }
}

/** One instance with its file store: the local pool is the whole truth. */
export class LocalLeaseClaims implements LeaseClaims {
  private readonly since = Date.now();

  claim(): Promise<ClaimResult> {
    return Promise.resolve({ ok: true });
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  heldByOther(): boolean {
    return false;
  }

  health(): ClaimsHealth {
    return { healthy: true, since: this.since };
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
