// Address allocation for full DHCP mode (RFC 2131 §4.3.1). One pool per subnet,
// one shared table of bindings. Offers are held in memory only; bindings,
// releases and declines are persisted through the Store before the client hears
// of them.
import type { ResolvedSubnet } from '../../config/types.js';
import type { LeaseRecord, Store } from '../../store/store.js';
import { cidrContains, ipv4ToNumber, numberToIpv4 } from '../../util/ipv4.js';

interface Offer {
  ip: number;
  key: string;
  offeredAt: number;
  holdUntil: number;
}

/**
 * A client answers an OFFER within a second or so. An offer older than this may
 * be taken back for a machine in no inventory when nothing else is free: a
 * DISCOVER flood cannot lock real clients out for the whole hold, and a client
 * in the middle of its exchange is not NAKed because a newcomer took its offer.
 */
const OFFER_REUSE_AFTER_MS = 2000;

export type AllocateResult = { ok: true; ip: string } | { ok: false; reason: string };

export type DeclineResult = 'declined' | 'not-offered' | 'quarantine-full';

/** Shares of each subnet's dynamic range (percent) that hostile clients can at most take. */
export interface PoolCaps {
  /** Addresses offered to or bound by machines in no inventory. */
  unknownLeasePercent: number;
  /** Addresses in DECLINE quarantine. */
  maxQuarantinedPercent: number;
}

const NO_CAPS: PoolCaps = { unknownLeasePercent: 100, maxQuarantinedPercent: 100 };

/**
 * `percent` of a range of `size` addresses, rounded up (a 2-address pool at 90%
 * still serves 2). A share that covers the whole range is no cap: the pool runs
 * out first, and says so ("exhausted").
 */
function shareOf(size: number, percent: number): number {
  const share = Math.ceil((size * percent) / 100);
  return share >= size ? Infinity : Math.max(1, share);
}

/** Addresses of one subnet held under a cap: ip -> the lease key holding it. Swept only when full. */
class CappedHolders {
  private readonly holders = new Map<number, string>();

  constructor(readonly limit: number) {}

  add(ip: number, key: string): void {
    this.holders.set(ip, key);
  }

  holds(ip: number, key: string): boolean {
    return this.holders.get(ip) === key;
  }

  remove(ip: number): void {
    this.holders.delete(ip);
  }

  /** Whether the cap is reached, counting only entries `stillHeld` confirms (the rest are forgotten). */
  full(stillHeld: (ip: number, key: string) => boolean): boolean {
    if (this.holders.size < this.limit) return false;
    for (const [ip, key] of this.holders) if (!stillHeld(ip, key)) this.holders.delete(ip);
    return this.holders.size >= this.limit;
  }

  get size(): number {
    return this.holders.size;
  }
}

export class LeasePool {
  /** ip (as number) -> persisted record */
  private readonly byIp = new Map<number, LeaseRecord>();
  /** lease key -> ip of its latest record */
  private readonly byKey = new Map<string, number>();
  private readonly offersByKey = new Map<string, Offer>();
  private readonly offersByIp = new Map<number, Offer>();
  /** reserved ip -> MAC it belongs to; never handed to anyone else. Rebuilt when the inventory changes. */
  private readonly reservedIps = new Map<number, string>();
  private reservationsVersion = -1;
  /** Next never-used address to try in each subnet's range. */
  private readonly freshCursor = new Map<ResolvedSubnet, number>();
  private readonly unknownHolders = new Map<ResolvedSubnet, CappedHolders>();
  private readonly quarantine = new Map<ResolvedSubnet, CappedHolders>();
  /** Offers whose hold ran out are forgotten once there are more than this many. */
  private readonly offerSweepAt: number;
  /** Addresses another bootfarm instance's client holds (store.backend: etcd); none by default. */
  private heldElsewhere: (ip: string, key: string, now: number) => boolean = () => false;

  constructor(
    private readonly subnets: ResolvedSubnet[],
    private readonly store: Store,
    readonly offerHoldMs: number,
    private readonly quarantineMs: number,
    caps: PoolCaps = NO_CAPS,
    now: number = Date.now(),
  ) {
    this.refreshReservations();
    let rangeTotal = 0;
    for (const s of subnets) {
      this.freshCursor.set(s, s.rangeStart);
      const size = s.rangeEnd - s.rangeStart + 1;
      rangeTotal += size;
      this.unknownHolders.set(s, new CappedHolders(shareOf(size, caps.unknownLeasePercent)));
      this.quarantine.set(s, new CappedHolders(shareOf(size, caps.maxQuarantinedPercent)));
    }
    this.offerSweepAt = 2 * rangeTotal + 1024;
    for (const lease of store.leases()) {
      const ip = ipv4ToNumber(lease.ip);
      this.byIp.set(ip, lease);
      if (lease.state !== 'declined') this.byKey.set(lease.key, ip);
      const subnet = this.subnetForNumber(ip);
      if (!subnet || lease.expiresAt <= now) continue;
      if (lease.state === 'declined') this.quarantine.get(subnet)?.add(ip, lease.key);
      else if (lease.state === 'bound' && !store.nodeByMac(lease.mac)) this.unknownHolders.get(subnet)?.add(ip, lease.key);
    }
  }

  private subnetForNumber(ip: number): ResolvedSubnet | undefined {
    return this.subnets.find((s) => cidrContains(s.network, ip));
  }

  /** Nodes added or removed through the API change the reservations. */
  private refreshReservations(): void {
    if (this.reservationsVersion === this.store.nodesVersion) return;
    this.reservedIps.clear();
    for (const node of this.store.nodes()) if (node.ip) this.reservedIps.set(ipv4ToNumber(node.ip), node.mac);
    this.reservationsVersion = this.store.nodesVersion;
  }

  /** Instances sharing leases (server/store/lease-claims.ts): what they hold is never offered here. */
  setHeldElsewhere(test: (ip: string, key: string, now: number) => boolean): void {
    this.heldElsewhere = test;
  }

  subnetFor(address: string): ResolvedSubnet | undefined {
    const ip = ipv4ToNumber(address);
    return this.subnets.find((s) => cidrContains(s.network, ip));
  }

  /**
   * Has this server offered `ip` to `key`, or does `key`'s lease record name it?
   * A SELECTING or RENEWING REQUEST is only ACKed then: otherwise any forged
   * REQUEST would bind an address to any MAC without the DISCOVER the offer
   * limits and budgets apply to.
   */
  hasClaim(key: string, ip: string): boolean {
    const n = ipv4ToNumber(ip);
    if (this.offersByKey.get(key)?.ip === n) return true;
    const rec = this.byIp.get(n);
    return this.byKey.get(key) === n && rec !== undefined && rec.key === key && rec.state !== 'declined';
  }

  /** Does `key` hold an offer or a valid binding now (so a cap on new holders does not apply to it)? */
  holds(key: string, now: number): boolean {
    const offer = this.offersByKey.get(key);
    return (
      (offer !== undefined && offer.holdUntil > now && this.offersByIp.get(offer.ip) === offer) || this.binding(key, now) !== undefined
    );
  }

  private heldBy(ip: number, key: string, now: number): boolean {
    const offer = this.offersByIp.get(ip);
    if (offer && offer.key === key && offer.holdUntil > now) return true;
    const rec = this.byIp.get(ip);
    return rec !== undefined && rec.key === key && rec.state === 'bound' && rec.expiresAt > now;
  }

  /** Machines in no inventory hold dhcp.limits.unknownLeasePercent of `subnet`'s range already. */
  unknownCapReached(subnet: ResolvedSubnet, now: number): boolean {
    return this.unknownHolders.get(subnet)?.full((ip, key) => this.heldBy(ip, key, now)) ?? false;
  }

  /**
   * The unknown-machine cap is reached: give up the oldest offer (not lease) to a
   * machine in no inventory that is older than OFFER_REUSE_AFTER_MS, so a newcomer
   * can be served after a DISCOVER flood. Returns whether one was given up.
   */
  releaseStaleUnknownOffer(subnet: ResolvedSubnet, now: number): boolean {
    let oldest: Offer | undefined;
    for (const offer of this.offersByKey.values()) {
      if (offer.offeredAt + OFFER_REUSE_AFTER_MS > now || offer.holdUntil <= now || this.offersByIp.get(offer.ip) !== offer) continue;
      if (!cidrContains(subnet.network, offer.ip) || !this.unknownHolders.get(subnet)?.holds(offer.ip, offer.key)) continue;
      if (!oldest || offer.offeredAt < oldest.offeredAt) oldest = offer;
    }
    if (!oldest) return false;
    this.dropOffer(oldest.key);
    this.unknownHolders.get(subnet)?.remove(oldest.ip);
    return true;
  }

  /** `ip` was offered to a machine in no inventory: it counts against the cap while held. */
  noteUnknownHolder(ip: string, key: string): void {
    const n = ipv4ToNumber(ip);
    const subnet = this.subnetForNumber(n);
    if (subnet) this.unknownHolders.get(subnet)?.add(n, key);
  }

  /** The client's current binding, if it is still valid. */
  binding(key: string, now: number): LeaseRecord | undefined {
    const ip = this.byKey.get(key);
    const rec = ip === undefined ? undefined : this.byIp.get(ip);
    return rec && rec.key === key && rec.state === 'bound' && rec.expiresAt > now ? rec : undefined;
  }

  /** May `key` (with `mac`) hold `ip` now? */
  isAvailableTo(ip: number, key: string, mac: string, now: number): boolean {
    this.refreshReservations();
    const owner = this.reservedIps.get(ip);
    if (owner !== undefined) return owner === mac;
    if (this.heldElsewhere(numberToIpv4(ip), key, now)) return false;
    const offer = this.offersByIp.get(ip);
    if (offer && offer.key !== key && offer.holdUntil > now) return false;
    const rec = this.byIp.get(ip);
    if (!rec || (rec.key === key && rec.state !== 'declined')) return true;
    if (rec.state === 'declined') return rec.expiresAt <= now;
    if (rec.state === 'released') return true;
    return rec.expiresAt <= now;
  }

  private inRange(subnet: ResolvedSubnet, ip: number): boolean {
    return ip >= subnet.rangeStart && ip <= subnet.rangeEnd;
  }

  /**
   * Chooses an address for a DISCOVER (RFC 2131 §4.3.1 order): the node's
   * reservation, the current binding, the previous binding, the requested address,
   * then a fresh one from the pool. The choice is held for the offer hold time.
   */
  allocate(
    subnet: ResolvedSubnet,
    key: string,
    mac: string,
    requested: string | undefined,
    reservedIp: string | undefined,
    now: number,
    inInventory = true,
  ): AllocateResult {
    this.refreshReservations();
    let chosen: number | undefined;
    if (reservedIp) {
      const ip = ipv4ToNumber(reservedIp);
      if (!cidrContains(subnet.network, ip)) return { ok: false, reason: `reserved address ${reservedIp} is not in subnet ${subnet.cidr}` };
      const owner = this.reservedIps.get(ip);
      if (owner !== undefined && owner !== mac) return { ok: false, reason: `address ${reservedIp} is reserved for ${owner}` };
      chosen = ip;
    }
    const previous = this.byKey.get(key);
    if (
      chosen === undefined &&
      previous !== undefined &&
      cidrContains(subnet.network, previous) &&
      this.isAvailableTo(previous, key, mac, now)
    ) {
      chosen = previous;
    }
    const held = this.offersByKey.get(key);
    if (chosen === undefined && held && held.holdUntil > now && cidrContains(subnet.network, held.ip)) chosen = held.ip;
    if (chosen === undefined && requested) {
      const ip = ipv4ToNumber(requested);
      if (this.inRange(subnet, ip) && this.isAvailableTo(ip, key, mac, now)) chosen = ip;
    }
    if (chosen === undefined) chosen = this.freshAddress(subnet, key, mac, now, inInventory ? 0 : OFFER_REUSE_AFTER_MS);
    if (chosen === undefined) return { ok: false, reason: `address pool of ${subnet.cidr} is exhausted` };
    this.hold(chosen, key, now);
    return { ok: true, ip: numberToIpv4(chosen) };
  }

  private hold(ip: number, key: string, now: number): void {
    const old = this.offersByKey.get(key);
    if (old && this.offersByIp.get(old.ip) === old) this.offersByIp.delete(old.ip);
    const offer = { ip, key, offeredAt: now, holdUntil: now + this.offerHoldMs };
    this.offersByKey.set(key, offer);
    this.offersByIp.set(ip, offer);
    if (this.offersByKey.size > this.offerSweepAt) this.sweepOffers(now);
  }

  /** DISCOVERs from many MACs leave offers behind: forget those no longer held, or superseded. */
  private sweepOffers(now: number): void {
    for (const [key, offer] of this.offersByKey) {
      if (offer.holdUntil > now && this.offersByIp.get(offer.ip) === offer) continue;
      this.offersByKey.delete(key);
      if (this.offersByIp.get(offer.ip) === offer) this.offersByIp.delete(offer.ip);
    }
  }

  /** Offers remembered (for tests of the sweep and for metrics). */
  get offerCount(): number {
    return this.offersByKey.size;
  }

  private freshAddress(subnet: ResolvedSubnet, key: string, mac: string, now: number, offerMinAgeMs: number): number | undefined {
    // First, addresses never handed out: a forward cursor makes this O(1) amortised.
    let cursor = this.freshCursor.get(subnet) ?? subnet.rangeStart;
    while (cursor <= subnet.rangeEnd) {
      const ip = cursor++;
      if (!this.byIp.has(ip) && !this.reservedIps.has(ip) && this.isAvailableTo(ip, key, mac, now)) {
        this.freshCursor.set(subnet, cursor);
        return ip;
      }
    }
    this.freshCursor.set(subnet, cursor);
    // Then reuse: the free address whose record is oldest, so recent clients can
    // get their previous address back (RFC 2131 §4.3.1 "previous binding").
    let best: number | undefined;
    let bestAge = Infinity;
    // Last resort: an address only *offered* to another client. Offer holds are soft,
    // so a flood of DISCOVERs from random MACs cannot lock real clients out.
    let oldestHold: Offer | undefined;
    for (let ip = subnet.rangeStart; ip <= subnet.rangeEnd; ip++) {
      if (!this.isAvailableTo(ip, key, mac, now)) {
        const offer = this.offersByIp.get(ip);
        if (
          offer &&
          offer.key !== key &&
          offer.offeredAt + offerMinAgeMs <= now &&
          this.isFreeIgnoringOffers(ip, now) &&
          (!oldestHold || offer.holdUntil < oldestHold.holdUntil)
        )
          oldestHold = offer;
        continue;
      }
      const rec = this.byIp.get(ip);
      const age = rec ? rec.updatedAt : -1;
      if (age < bestAge) {
        best = ip;
        bestAge = age;
        if (!rec) break;
      }
    }
    // An inventory node may take any offer; a machine in no inventory only one
    // older than OFFER_REUSE_AFTER_MS (a client mid-exchange keeps its offer).
    if (best === undefined && oldestHold) {
      this.offersByKey.delete(oldestHold.key);
      this.offersByIp.delete(oldestHold.ip);
      best = oldestHold.ip;
    }
    return best;
  }

  private isFreeIgnoringOffers(ip: number, now: number): boolean {
    if (this.reservedIps.has(ip)) return false;
    const rec = this.byIp.get(ip);
    return !rec || rec.state === 'released' || rec.expiresAt <= now;
  }

  /** The client chose another server (RFC 2131 §4.3.2): forget what we offered it. */
  dropOffer(key: string): void {
    const offer = this.offersByKey.get(key);
    if (!offer) return;
    this.offersByKey.delete(key);
    if (this.offersByIp.get(offer.ip) === offer) this.offersByIp.delete(offer.ip);
  }

  /** Commits a binding (REQUEST -> ACK, or a Pi's offer); resolves once durable. */
  async bind(ip: string, key: string, mac: string, leaseSeconds: number, hostname: string | undefined, now: number): Promise<LeaseRecord> {
    const n = ipv4ToNumber(ip);
    const record: LeaseRecord = { ip, key, mac, state: 'bound', expiresAt: now + leaseSeconds * 1000, hostname, updatedAt: now };
    this.setRecord(n, record);
    this.dropOffer(key);
    await this.store.putLease(record);
    return record;
  }

  /** DHCPRELEASE: the address is free again; the client is remembered for next time. */
  async release(ip: string, key: string, now: number): Promise<boolean> {
    const n = ipv4ToNumber(ip);
    const rec = this.byIp.get(n);
    if (!rec || rec.key !== key || rec.state !== 'bound') return false;
    const record: LeaseRecord = { ...rec, state: 'released', expiresAt: now, updatedAt: now };
    this.setRecord(n, record);
    await this.store.putLease(record);
    return true;
  }

  /**
   * DHCPDECLINE: someone else uses the address; keep it out of the pool for a
   * while. Only an address offered to or bound by the declining client, and at
   * most dhcp.limits.maxQuarantinedPercent of the range at once: DISCOVER+DECLINE
   * from forged MACs would otherwise empty the pool for the quarantine time.
   */
  async decline(ip: string, key: string, mac: string, now: number): Promise<DeclineResult> {
    const n = ipv4ToNumber(ip);
    const subnet = this.subnetFor(ip);
    if (!subnet) return 'not-offered';
    const rec = this.byIp.get(n);
    const offer = this.offersByIp.get(n);
    if (!(rec?.key === key || offer?.key === key)) return 'not-offered';
    const quarantine = this.quarantine.get(subnet);
    if (
      quarantine?.full((q) => {
        const r = this.byIp.get(q);
        return r !== undefined && r.state === 'declined' && r.expiresAt > now;
      })
    ) {
      // The address stays in the pool; the client's claim to it ends here.
      this.dropOffer(key);
      return 'quarantine-full';
    }
    quarantine?.add(n, key);
    const record: LeaseRecord = { ip, key, mac, state: 'declined', expiresAt: now + this.quarantineMs, updatedAt: now };
    this.setRecord(n, record);
    // The quarantine record belongs to no client: a returning client must not get it back.
    this.byKey.delete(key);
    this.offersByKey.delete(key);
    this.offersByIp.delete(n);
    await this.store.putLease(record);
    return 'declined';
  }

  private setRecord(ip: number, record: LeaseRecord): void {
    const previous = this.byIp.get(ip);
    if (previous && previous.key !== record.key && this.byKey.get(previous.key) === ip) this.byKey.delete(previous.key);
    this.byIp.set(ip, record);
    if (record.state !== 'declined') this.byKey.set(record.key, ip);
  }

  /** Bound leases still valid at `now`, for the API and the NBD access check. */
  activeLeases(now: number): LeaseRecord[] {
    return [...this.byIp.values()].filter((r) => r.state === 'bound' && r.expiresAt > now);
  }
}
