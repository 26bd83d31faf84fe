// Address allocation for full DHCP mode (RFC 2131 §4.3.1). One pool per subnet,
// one shared table of bindings. Offers are held in memory only; bindings,
// releases and declines are persisted through the Store before the client hears
// of them.
import type { ResolvedSubnet } from '../../config/load.js';
import type { LeaseRecord, Store } from '../../store/store.js';
import { cidrContains, ipv4ToNumber, numberToIpv4 } from '../../util/ipv4.js';

interface Offer {
  ip: number;
  key: string;
  holdUntil: number;
}

export type AllocateResult = { ok: true; ip: string } | { ok: false; reason: string };

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

  constructor(
    private readonly subnets: ResolvedSubnet[],
    private readonly store: Store,
    private readonly offerHoldMs: number,
    private readonly quarantineMs: number,
  ) {
    this.refreshReservations();
    for (const lease of store.leases()) {
      const ip = ipv4ToNumber(lease.ip);
      this.byIp.set(ip, lease);
      this.byKey.set(lease.key, ip);
    }
    for (const s of subnets) this.freshCursor.set(s, s.rangeStart);
  }

  /** Nodes added or removed through the API change the reservations. */
  private refreshReservations(): void {
    if (this.reservationsVersion === this.store.nodesVersion) return;
    this.reservedIps.clear();
    for (const node of this.store.nodes()) if (node.ip) this.reservedIps.set(ipv4ToNumber(node.ip), node.mac);
    this.reservationsVersion = this.store.nodesVersion;
  }

  subnetFor(address: string): ResolvedSubnet | undefined {
    const ip = ipv4ToNumber(address);
    return this.subnets.find((s) => cidrContains(s.network, ip));
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
    const offer = this.offersByIp.get(ip);
    if (offer && offer.key !== key && offer.holdUntil > now) return false;
    const rec = this.byIp.get(ip);
    if (!rec || rec.key === key && rec.state !== 'declined') return true;
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
  allocate(subnet: ResolvedSubnet, key: string, mac: string, requested: string | undefined, reservedIp: string | undefined, now: number): AllocateResult {
    this.refreshReservations();
    let chosen: number | undefined;
    if (reservedIp) {
      const ip = ipv4ToNumber(reservedIp);
      if (!cidrContains(subnet.network, ip)) return { ok: false, reason: `reserved address ${reservedIp} is not in subnet ${subnet.cidr}` };
      chosen = ip;
    }
    const previous = this.byKey.get(key);
    if (chosen === undefined && previous !== undefined && cidrContains(subnet.network, previous) && this.isAvailableTo(previous, key, mac, now)) {
      chosen = previous;
    }
    const held = this.offersByKey.get(key);
    if (chosen === undefined && held && held.holdUntil > now && cidrContains(subnet.network, held.ip)) chosen = held.ip;
    if (chosen === undefined && requested) {
      const ip = ipv4ToNumber(requested);
      if (this.inRange(subnet, ip) && this.isAvailableTo(ip, key, mac, now)) chosen = ip;
    }
    if (chosen === undefined) chosen = this.freshAddress(subnet, key, mac, now);
    if (chosen === undefined) return { ok: false, reason: `address pool of ${subnet.cidr} is exhausted` };
    this.hold(chosen, key, now);
    return { ok: true, ip: numberToIpv4(chosen) };
  }

  private hold(ip: number, key: string, now: number): void {
    const old = this.offersByKey.get(key);
    if (old && this.offersByIp.get(old.ip) === old) this.offersByIp.delete(old.ip);
    const offer = { ip, key, holdUntil: now + this.offerHoldMs };
    this.offersByKey.set(key, offer);
    this.offersByIp.set(ip, offer);
  }

  private freshAddress(subnet: ResolvedSubnet, key: string, mac: string, now: number): number | undefined {
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
        if (offer && offer.key !== key && this.isFreeIgnoringOffers(ip, now) && (!oldestHold || offer.holdUntil < oldestHold.holdUntil)) oldestHold = offer;
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

  /** DHCPDECLINE: someone else uses the address; keep it out of the pool for a while. */
  async decline(ip: string, key: string, mac: string, now: number): Promise<boolean> {
    const n = ipv4ToNumber(ip);
    if (!this.subnetFor(ip)) return false;
    const rec = this.byIp.get(n);
    const offer = this.offersByIp.get(n);
    if (!(rec?.key === key || offer?.key === key)) return false;
    const record: LeaseRecord = { ip, key, mac, state: 'declined', expiresAt: now + this.quarantineMs, updatedAt: now };
    this.setRecord(n, record);
    // The quarantine record belongs to no client: a returning client must not get it back.
    this.byKey.delete(key);
    this.offersByKey.delete(key);
    this.offersByIp.delete(n);
    await this.store.putLease(record);
    return true;
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
