// The lease pool's decisions at their edges (server/dhcp/server/lease-pool.ts):
// the exact instant an offer, a lease or a quarantine ends, which address is
// reused first, which offer is given up, what a restart remembers, and that
// nothing crosses from one subnet to another. Each case asserts what a client
// would see: the address it is offered, refused, or keeps.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool, type PoolCaps } from '../../server/dhcp/server/lease-pool.js';
import { ipv4ToNumber } from '../../server/util/ipv4.js';

type Subnet = ResolvedConfig['dhcp']['subnets'][number];

const t0 = 1_800_000_000_000;
const HOLD = 30_000;
const QUARANTINE = 600_000;

describe('lease pool decisions', () => {
  let dir: string;
  let config: ResolvedConfig;
  let store: FileStore;

  /** Two subnets: A has 10.9.0.100-104, B has 10.8.0.10-11; node-1 reserves 10.9.0.103. */
  async function open(extra = ''): Promise<void> {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pool-'));
    config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp:
  mode: full
  subnets:
    - { cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.104], leaseSeconds: 60 }
    - { cidr: 10.8.0.0/24, range: [10.8.0.10, 10.8.0.11], leaseSeconds: 60 }
nodes: [{ mac: "52:54:00:00:00:01", hostname: node-1, ip: 10.9.0.103 }${extra}]
`,
      'pool.yaml',
    );
    store = (await FileStore.open(dir, config.nodes)).store;
  }
  const a = (): Subnet => config.dhcp.subnets[0] as Subnet;
  const b = (): Subnet => config.dhcp.subnets[1] as Subnet;
  const pool = (caps?: PoolCaps, now = t0) => new LeasePool(config.dhcp.subnets, store, HOLD, QUARANTINE, caps, now);
  const offer = (p: LeasePool, key: string, now = t0, requested?: string, subnet = a(), inInventory = true) => {
    const r = p.allocate(subnet, key, key, requested, undefined, now, inInventory);
    return r.ok ? r.ip : r.reason;
  };
  const n = ipv4ToNumber;
  /** Offers in A to machines in no inventory, noted as such: u1 at t0+20, u2 at t0+10 (the oldest), u3 at t0+30. */
  const offerToUnknowns = (p: LeasePool) => {
    const offers = [
      ['u1', t0 + 20],
      ['u2', t0 + 10],
      ['u3', t0 + 30],
    ] as const;
    for (const [key, at] of offers) p.noteUnknownHolder(offer(p, key, at, undefined, a(), false), key);
  };

  beforeEach(async () => open());
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an offer is held until exactly its hold time: the same address is refused to another client before, given after', () => {
    const p = pool();
    expect(offer(p, 'x', t0, '10.9.0.102')).toBe('10.9.0.102');
    expect(p.isAvailableTo(n('10.9.0.102'), 'y', 'y', t0 + HOLD - 1)).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.102'), 'y', 'y', t0 + HOLD)).toBe(true);
    expect(p.isAvailableTo(n('10.9.0.102'), 'x', 'x', t0 + 1)).toBe(true);
    expect(p.holds('x', t0 + HOLD - 1)).toBe(true);
    expect(p.holds('x', t0 + HOLD)).toBe(false);
    // A DISCOVER before the hold runs out gets the held address again, after it a fresh one.
    expect(offer(p, 'x', t0 + HOLD - 1)).toBe('10.9.0.102');
    expect(offer(p, 'x', t0 + 2 * HOLD - 1)).toBe('10.9.0.100');
  });

  it('a lease ends at exactly expiresAt: refused to another client before, offered after; holds and activeLeases agree', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 60, undefined, t0);
    const end = t0 + 60_000;
    expect(p.isAvailableTo(n('10.9.0.100'), 'y', 'y', end - 1)).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.100'), 'y', 'y', end)).toBe(true);
    expect(p.holds('x', end - 1)).toBe(true);
    expect(p.holds('x', end)).toBe(false);
    expect(p.binding('x', end - 1)?.ip).toBe('10.9.0.100');
    expect(p.binding('x', end)).toBeUndefined();
    expect(p.activeLeases(end - 1).map((l) => l.ip)).toEqual(['10.9.0.100']);
    expect(p.activeLeases(end)).toEqual([]);
    expect(offer(p, 'y', end - 1, '10.9.0.100')).toBe('10.9.0.101');
    expect(offer(p, 'z', end, '10.9.0.100')).toBe('10.9.0.100');
  });

  it('a released address is free for anyone at once, is no active lease, and its client cannot release or hold it again', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 60, undefined, t0);
    expect(await p.release('10.9.0.100', 'y', t0 + 1)).toBe(false);
    expect(await p.release('10.9.0.101', 'x', t0 + 1)).toBe(false);
    expect(await p.release('10.9.0.100', 'x', t0 + 1)).toBe(true);
    expect(await p.release('10.9.0.100', 'x', t0 + 2)).toBe(false);
    expect(p.activeLeases(t0 + 2)).toEqual([]);
    expect(p.holds('x', t0 + 2)).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.100'), 'y', 'y', t0 + 2)).toBe(true);
    expect(offer(p, 'y', t0 + 2, '10.9.0.100')).toBe('10.9.0.100');
    expect(store.leaseByIp('10.9.0.100')).toMatchObject({ key: 'x', state: 'released', expiresAt: t0 + 1 });
  });

  it('a declined address is quarantined until exactly its end, for the decliner too, and persisted as declined', async () => {
    const p = pool();
    expect(offer(p, 'x', t0, '10.9.0.101')).toBe('10.9.0.101');
    expect(await p.decline('10.9.0.101', 'x', 'x', t0)).toBe('declined');
    const end = t0 + QUARANTINE;
    expect(store.leaseByIp('10.9.0.101')).toMatchObject({ key: 'x', state: 'declined', expiresAt: end });
    expect(p.isAvailableTo(n('10.9.0.101'), 'x', 'x', end - 1)).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.101'), 'y', 'y', end - 1)).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.101'), 'y', 'y', end)).toBe(true);
    expect(p.hasClaim('x', '10.9.0.101')).toBe(false);
    expect(p.holds('x', t0 + 1)).toBe(false);
    // Every other address taken: the quarantined one is still refused, until it ends.
    for (const ip of ['10.9.0.100', '10.9.0.102', '10.9.0.104']) await p.bind(ip, `b-${ip}`, `b-${ip}`, 3600, undefined, t0);
    expect(offer(p, 'y', end - 1)).toBe('address pool of 10.9.0.0/24 is exhausted');
    expect(offer(p, 'y', end)).toBe('10.9.0.101');
  });

  it('a DECLINE off every subnet, or for an address offered to someone else, is not-offered and changes nothing', async () => {
    const p = pool();
    expect(offer(p, 'x', t0, '10.9.0.100')).toBe('10.9.0.100');
    expect(await p.decline('10.7.0.5', 'x', 'x', t0)).toBe('not-offered');
    expect(await p.decline('10.9.0.100', 'y', 'y', t0)).toBe('not-offered');
    expect(p.hasClaim('x', '10.9.0.100')).toBe(true);
    expect(store.leaseByIp('10.9.0.100')).toBeUndefined();
    // The holder of a binding (not only of an offer) may decline it.
    await p.bind('10.9.0.102', 'z', 'z', 60, undefined, t0);
    expect(await p.decline('10.9.0.102', 'z', 'z', t0 + 1)).toBe('declined');
  });

  it('quarantine-full: the decliner loses its offer but the address stays in the pool', async () => {
    // 20 % of 5 addresses: one in quarantine at a time.
    const p = pool({ unknownLeasePercent: 100, maxQuarantinedPercent: 20 });
    expect(offer(p, 'x', t0, '10.9.0.100')).toBe('10.9.0.100');
    expect(await p.decline('10.9.0.100', 'x', 'x', t0)).toBe('declined');
    expect(offer(p, 'y', t0, '10.9.0.101')).toBe('10.9.0.101');
    expect(await p.decline('10.9.0.101', 'y', 'y', t0)).toBe('quarantine-full');
    expect(p.hasClaim('y', '10.9.0.101')).toBe(false);
    expect(p.isAvailableTo(n('10.9.0.101'), 'z', 'z', t0)).toBe(true);
    expect(store.leaseByIp('10.9.0.101')).toBeUndefined();
  });

  it('quarantine is remembered across a restart while it lasts; a returning decliner is not handed its declined address', async () => {
    const p = pool({ unknownLeasePercent: 100, maxQuarantinedPercent: 20 });
    await p.bind('10.9.0.100', 'x', 'x', 60, undefined, t0);
    expect(await p.decline('10.9.0.100', 'x', 'x', t0)).toBe('declined');
    const reopened = pool({ unknownLeasePercent: 100, maxQuarantinedPercent: 20 }, t0 + 1);
    expect(offer(reopened, 'x', t0 + 1)).toBe('10.9.0.101');
    expect(await reopened.decline('10.9.0.101', 'x', 'x', t0 + 1)).toBe('quarantine-full');
    // Once the first quarantine ended before the restart, it does not count.
    const later = pool({ unknownLeasePercent: 100, maxQuarantinedPercent: 20 }, t0 + QUARANTINE);
    expect(offer(later, 'y', t0 + QUARANTINE, '10.9.0.102')).toBe('10.9.0.102');
    expect(await later.decline('10.9.0.102', 'y', 'y', t0 + QUARANTINE)).toBe('declined');
  });

  it('unknown machines bound before a restart count against the cap after it, until their leases end; inventory nodes never', async () => {
    // 40 % of 5 = 2 unknown holders.
    const caps = { unknownLeasePercent: 40, maxQuarantinedPercent: 100 };
    const p = pool(caps);
    await p.bind('10.9.0.100', 'u1', 'u1', 60, undefined, t0);
    await p.bind('10.9.0.101', 'u2', 'u2', 60, undefined, t0);
    await p.bind('10.9.0.103', '52:54:00:00:00:01', '52:54:00:00:00:01', 60, undefined, t0);
    expect(pool(caps, t0 + 1).unknownCapReached(a(), t0 + 1)).toBe(true);
    expect(pool(caps, t0 + 60_000).unknownCapReached(a(), t0 + 60_000)).toBe(false);
    await p.release('10.9.0.101', 'u2', t0 + 2);
    // One unknown holder and the inventory node: under the cap.
    expect(pool(caps, t0 + 3).unknownCapReached(a(), t0 + 3)).toBe(false);
  });

  it('the unknown-machine share is rounded up, at least one, and a share of the whole range is no cap', () => {
    const holders = (caps: PoolCaps, count: number): boolean => {
      const p = pool(caps);
      for (let i = 0; i < count; i++) {
        const ip = offer(p, `u${i}`);
        p.noteUnknownHolder(ip, `u${i}`);
      }
      return p.unknownCapReached(a(), t0);
    };
    // 30 % of 5 = 1.5 -> 2.
    expect(holders({ unknownLeasePercent: 30, maxQuarantinedPercent: 100 }, 1)).toBe(false);
    expect(holders({ unknownLeasePercent: 30, maxQuarantinedPercent: 100 }, 2)).toBe(true);
    // 0 % still serves one.
    expect(holders({ unknownLeasePercent: 0, maxQuarantinedPercent: 100 }, 0)).toBe(false);
    expect(holders({ unknownLeasePercent: 0, maxQuarantinedPercent: 100 }, 1)).toBe(true);
    // 90 % of 5 rounds up to all 5: no cap, the pool says "exhausted" instead.
    expect(holders({ unknownLeasePercent: 90, maxQuarantinedPercent: 100 }, 4)).toBe(false);
    expect(holders({ unknownLeasePercent: 90, maxQuarantinedPercent: 100 }, 5)).toBe(false);
    // An address off every subnet is not counted anywhere.
    const p = pool({ unknownLeasePercent: 0, maxQuarantinedPercent: 100 });
    p.noteUnknownHolder('10.7.0.5', 'far');
    expect(p.unknownCapReached(a(), t0)).toBe(false);
  });

  it('at the cap, the oldest stale unknown offer of this subnet is given up, from exactly 2 s on; inventory offers never', () => {
    const caps = { unknownLeasePercent: 60, maxQuarantinedPercent: 100 };
    const p = pool(caps);
    expect(offer(p, 'node', t0)).toBe('10.9.0.100');
    // 3 unknown offers (60 % of 5), and one in subnet B.
    offerToUnknowns(p);
    p.noteUnknownHolder(offer(p, 'ub', t0, undefined, b(), false), 'ub');
    expect(p.unknownCapReached(a(), t0 + 100)).toBe(true);
    expect(p.releaseStaleUnknownOffer(a(), t0 + 10 + 1999)).toBe(false);
    expect(p.releaseStaleUnknownOffer(a(), t0 + 10 + 2000)).toBe(true);
    // u2 was the oldest: its claim is gone, the others and subnet B's keep theirs.
    expect(p.holds('u2', t0 + 2010)).toBe(false);
    expect(['u1', 'u3', 'node', 'ub'].map((k) => p.holds(k, t0 + 2010))).toEqual([true, true, true, true]);
    expect(p.unknownCapReached(a(), t0 + 2010)).toBe(false);
    // Offers whose hold ran out are not "given up": nothing is held to give.
    expect(p.releaseStaleUnknownOffer(a(), t0 + HOLD + 30)).toBe(false);
  });

  it('reuse picks the address whose record is oldest, so recent clients keep their previous address free', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x1', 'x1', 1, undefined, t0 + 300);
    await p.bind('10.9.0.101', 'x2', 'x2', 1, undefined, t0 + 100);
    await p.bind('10.9.0.102', 'x3', 'x3', 1, undefined, t0 + 200);
    await p.bind('10.9.0.104', 'x4', 'x4', 1, undefined, t0 + 400);
    // All four leases ended; no address is fresh: the oldest record (x2's) goes first.
    const later = t0 + 10_000;
    expect(offer(p, 'y1', later)).toBe('10.9.0.101');
    expect(offer(p, 'y2', later)).toBe('10.9.0.102');
    expect(offer(p, 'y3', later)).toBe('10.9.0.100');
    // x4 comes back: its old address is still free.
    expect(offer(p, 'x4', later)).toBe('10.9.0.104');
  });

  it('a fresh address is one never handed out; the reserved one is skipped; a reservation added later is honoured', async () => {
    const p = pool();
    expect(['f1', 'f2', 'f3', 'f4'].map((k) => offer(p, k))).toEqual(['10.9.0.100', '10.9.0.101', '10.9.0.102', '10.9.0.104']);
    // node-2 reserves 10.8.0.11 through the API: the next DISCOVER in B must not get it.
    await store.putNode({ mac: '52:54:00:00:00:02', hostname: 'node-2', ip: '10.8.0.11' });
    expect(offer(p, 'g1', t0, undefined, b())).toBe('10.8.0.10');
    // The next one takes g1's offer back (an inventory node may) rather than the reserved address.
    expect(offer(p, 'g2', t0, undefined, b())).toBe('10.8.0.10');
    expect(p.isAvailableTo(n('10.8.0.11'), '52:54:00:00:00:02', '52:54:00:00:00:02', t0)).toBe(true);
    expect(p.isAvailableTo(n('10.8.0.11'), 'g2', 'g2', t0)).toBe(false);
    // A pool built after the change (a restart) knows the reservation from the start.
    expect(pool().isAvailableTo(n('10.8.0.11'), 'g3', 'g3', t0)).toBe(false);
  });

  it('the last-resort offer taken back is the one whose hold ends first, and never one to the client itself', () => {
    const p = pool();
    // Offers at t0+3000, t0+1000, t0+2000, t0+4000 fill subnet A (the fifth address is reserved).
    const at = [3000, 1000, 2000, 4000];
    const ips = at.map((d, i) => offer(p, `o${i}`, t0 + d));
    expect(ips).toEqual(['10.9.0.100', '10.9.0.101', '10.9.0.102', '10.9.0.104']);
    expect(offer(p, 'late', t0 + 5000)).toBe('10.9.0.101');
    expect(p.holds('o1', t0 + 5000)).toBe(false);
    expect(offer(p, 'late2', t0 + 5000)).toBe('10.9.0.102');
    // A machine in no inventory may take back only offers 2 s old or more: at t0+6000 that is o0's (t0+3000) and o3's (t0+4000).
    expect(offer(p, 'unknown', t0 + 6000, undefined, a(), false)).toBe('10.9.0.100');
    expect(offer(p, 'unknown2', t0 + 6000, undefined, a(), false)).toBe('10.9.0.104');
    expect(offer(p, 'unknown3', t0 + 6000, undefined, a(), false)).toBe('address pool of 10.9.0.0/24 is exhausted');
  });

  it('a reservation outside the subnet, or reserved for another MAC, is refused with its reason', () => {
    const p = pool();
    expect(p.allocate(a(), 'x', 'x', undefined, '10.8.0.10', t0)).toEqual({
      ok: false,
      reason: 'reserved address 10.8.0.10 is not in subnet 10.9.0.0/24',
    });
    expect(p.allocate(a(), 'x', 'x', undefined, '10.9.0.103', t0)).toEqual({
      ok: false,
      reason: 'address 10.9.0.103 is reserved for 52:54:00:00:00:01',
    });
    // A reservation outside the dynamic range but inside the subnet is given.
    expect(p.allocate(a(), 'x', 'x', undefined, '10.9.0.50', t0)).toEqual({ ok: true, ip: '10.9.0.50' });
  });

  it('option 50 is honoured only inside the dynamic range, at both of its ends', () => {
    const p = pool();
    expect(offer(p, 'lo', t0, '10.9.0.99')).toBe('10.9.0.100');
    expect(offer(p, 'hi', t0, '10.9.0.105')).toBe('10.9.0.101');
    expect(offer(p, 'end', t0, '10.9.0.104')).toBe('10.9.0.104');
    const q = pool();
    expect(offer(q, 'start', t0, '10.9.0.102')).toBe('10.9.0.102');
    expect(offer(q, 'first', t0, '10.9.0.100')).toBe('10.9.0.100');
  });

  it("a client's binding or offer in one subnet is not carried into another", async () => {
    const p = pool();
    await p.bind('10.8.0.10', 'x', 'x', 60, undefined, t0);
    expect(offer(p, 'x', t0 + 1)).toBe('10.9.0.100');
    expect(offer(p, 'y', t0, undefined, b())).toBe('10.8.0.11');
    expect(offer(p, 'y', t0 + 1)).toBe('10.9.0.101');
  });

  it('a client has no claim to an address it was bound to once another client is bound to it', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 1, undefined, t0);
    await p.bind('10.9.0.100', 'y', 'y', 60, undefined, t0 + 5000);
    expect(p.hasClaim('x', '10.9.0.100')).toBe(false);
    expect(p.hasClaim('y', '10.9.0.100')).toBe(true);
    expect(p.binding('x', t0 + 5001)).toBeUndefined();
    // x's next DISCOVER gets a fresh address, not y's.
    expect(offer(p, 'x', t0 + 5001)).toBe('10.9.0.101');
  });

  it("a node's reservation beats its earlier binding, its held offer and option 50", async () => {
    const node = '52:54:00:00:00:01';
    const p = pool();
    await p.bind('10.9.0.100', node, node, 60, undefined, t0);
    expect(p.allocate(a(), node, node, undefined, '10.9.0.103', t0 + 1)).toEqual({ ok: true, ip: '10.9.0.103' });
    const q = pool();
    // (p's binding of 10.9.0.100 is in the store q opens.)
    expect(q.allocate(a(), 'm', 'm', undefined, undefined, t0)).toEqual({ ok: true, ip: '10.9.0.101' });
    expect(q.allocate(a(), 'm', 'm', '10.9.0.104', '10.9.0.50', t0 + 1)).toEqual({ ok: true, ip: '10.9.0.50' });
    // Without a reservation, the held offer beats option 50.
    expect(q.allocate(a(), 'k', 'k', undefined, undefined, t0)).toEqual({ ok: true, ip: '10.9.0.102' });
    expect(q.allocate(a(), 'k', 'k', '10.9.0.104', undefined, t0 + 1)).toEqual({ ok: true, ip: '10.9.0.102' });
  });

  it("a client's old offer, once another client holds that address, stays that client's when the first moves on", () => {
    const p = pool();
    // B's two addresses: x is offered .10, w .11; x's hold runs out and y is offered .10.
    expect(offer(p, 'x', t0, undefined, b())).toBe('10.8.0.10');
    expect(offer(p, 'w', t0, undefined, b())).toBe('10.8.0.11');
    const later = t0 + HOLD;
    expect(offer(p, 'y', later, undefined, b(), false)).toBe('10.8.0.10');
    // x now DISCOVERs in A: its stale offer in B must not take y's with it.
    expect(offer(p, 'x', later + 1)).toBe('10.9.0.100');
    expect(p.isAvailableTo(n('10.8.0.10'), 'z', 'z', later + 1)).toBe(false);
    expect(offer(p, 'z', later + 1, undefined, b(), false)).toBe('10.8.0.11');
  });

  it('after a restart and the end of its quarantine, the decliner is not handed its declined address back', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 60, undefined, t0);
    expect(await p.decline('10.9.0.100', 'x', 'x', t0)).toBe('declined');
    const end = t0 + QUARANTINE;
    expect(offer(pool(undefined, end), 'x', end)).toBe('10.9.0.101');
  });

  it("a client whose offered address became a node's reservation no longer holds an offer", async () => {
    const p = pool();
    expect(offer(p, 'x', t0, '10.9.0.104')).toBe('10.9.0.104');
    await store.putNode({ mac: '52:54:00:00:00:02', hostname: 'node-2', ip: '10.9.0.104' });
    expect(p.allocate(a(), '52:54:00:00:00:02', '52:54:00:00:00:02', undefined, '10.9.0.104', t0 + 1)).toEqual({
      ok: true,
      ip: '10.9.0.104',
    });
    expect(p.holds('x', t0 + 2)).toBe(false);
  });

  it('an unknown holder counts while its offer lasts (to the exact ms) and its lease is valid, bound and its own', async () => {
    const caps = { unknownLeasePercent: 20, maxQuarantinedPercent: 100 };
    const p = pool(caps);
    p.noteUnknownHolder(offer(p, 'u', t0, '10.9.0.100', a(), false), 'u');
    expect(p.unknownCapReached(a(), t0 + HOLD - 1)).toBe(true);
    expect(p.unknownCapReached(a(), t0 + HOLD)).toBe(false);
    // Its address offered to an inventory node since: u holds nothing.
    const q = pool(caps);
    q.noteUnknownHolder(offer(q, 'u', t0, '10.9.0.100', a(), false), 'u');
    q.dropOffer('u');
    expect(offer(q, 'node', t0 + 1, '10.9.0.100')).toBe('10.9.0.100');
    expect(q.unknownCapReached(a(), t0 + 2)).toBe(false);
    // Leases: counted until exactly their end; not once released or bound to another client.
    await p.bind('10.9.0.101', 'v', 'v', 60, undefined, t0);
    const r = pool(caps, t0 + 1);
    expect(r.unknownCapReached(a(), t0 + 60_000 - 1)).toBe(true);
    expect(r.unknownCapReached(a(), t0 + 60_000)).toBe(false);
    const released = pool(caps, t0 + 1);
    await released.release('10.9.0.101', 'v', t0 + 2);
    expect(released.unknownCapReached(a(), t0 + 3)).toBe(false);
    const rebound = pool(caps, t0 + 3);
    await rebound.bind('10.9.0.101', 'w', 'w', 60, undefined, t0 + 4);
    expect(rebound.unknownCapReached(a(), t0 + 5)).toBe(false);
  });

  it('the offer-table sweep forgets dead offers only: a live offer, and the live offer of a reused address, survive it', () => {
    const p = pool();
    // Each DISCOVER in B comes a hold time after the last: B's addresses are offered
    // again and again, every earlier offer is dead. 2 x 7 + 1024 offers trigger the sweep.
    const sweepAt = 2 * 7 + 1024;
    const last = t0 + (sweepAt - 1) * HOLD;
    for (let i = 0; i < sweepAt - 1; i++) offer(p, `m${i}`, t0 + i * HOLD, undefined, b());
    expect(offer(p, 'x', last)).toBe('10.9.0.100');
    const reused = offer(p, 'm-last', last, undefined, b());
    expect(p.offerCount).toBeLessThanOrEqual(3);
    expect(p.holds('x', last + 1)).toBe(true);
    expect(p.holds('m-last', last + 1)).toBe(true);
    expect(p.isAvailableTo(n('10.9.0.100'), 'z', 'z', last + 1)).toBe(false);
    expect(p.isAvailableTo(n(reused), 'z', 'z', last + 1)).toBe(false);
  });

  it('an address offered and dropped is not handed out again while never-offered ones remain', () => {
    const p = pool();
    expect(offer(p, 'x')).toBe('10.9.0.100');
    p.dropOffer('x');
    expect(offer(p, 'y', t0 + 1)).toBe('10.9.0.101');
  });

  it('the last address of the range is reused like any other, and a free address beats taking back an offer', async () => {
    const p = pool();
    for (const ip of ['10.9.0.100', '10.9.0.101']) await p.bind(ip, `b-${ip}`, `b-${ip}`, 3600, undefined, t0);
    await p.bind('10.9.0.104', 'short', 'short', 1, undefined, t0);
    expect(offer(p, 'x', t0 + 1)).toBe('10.9.0.102');
    expect(offer(p, 'y', t0 + 5000)).toBe('10.9.0.104');
    expect(p.holds('x', t0 + 5000)).toBe(true);
  });

  it("a node's offer of its reserved address is never taken back for another client", () => {
    const p = pool();
    const node = '52:54:00:00:00:01';
    expect(p.allocate(a(), node, node, undefined, '10.9.0.103', t0)).toEqual({ ok: true, ip: '10.9.0.103' });
    for (const k of ['f1', 'f2', 'f3', 'f4']) expect(offer(p, k, t0 + 10_000)).not.toBe('10.9.0.103');
    expect(p.holds(node, t0 + 10_000)).toBe(true);
  });

  it('an offer of an address whose earlier lease ended can be taken back like any other', async () => {
    const p = pool();
    for (const ip of ['10.9.0.100', '10.9.0.101', '10.9.0.102', '10.9.0.104']) await p.bind(ip, `b-${ip}`, `b-${ip}`, 1, undefined, t0);
    const later = t0 + 10_000;
    expect(offer(p, 'x', later)).toBe('10.9.0.100');
    for (const k of ['y1', 'y2', 'y3']) expect(offer(p, k, later)).not.toBe('10.9.0.100');
    expect(offer(p, 'z', later + 5000)).toBe('10.9.0.100');
  });

  it('an unknown holder whose address is bound to another client since no longer counts', async () => {
    const caps = { unknownLeasePercent: 20, maxQuarantinedPercent: 100 };
    await pool(caps).bind('10.9.0.101', 'v', 'v', 60, undefined, t0);
    const p = pool(caps, t0 + 1);
    expect(p.unknownCapReached(a(), t0 + 1)).toBe(true);
    await p.bind('10.9.0.101', 'w', 'w', 60, undefined, t0 + 60_000);
    expect(p.unknownCapReached(a(), t0 + 60_001)).toBe(false);
  });

  it('of several stale unknown offers, the oldest is given up, whatever order they came in', () => {
    const p = pool({ unknownLeasePercent: 60, maxQuarantinedPercent: 100 });
    offerToUnknowns(p);
    expect(p.releaseStaleUnknownOffer(a(), t0 + 5000)).toBe(true);
    expect(['u1', 'u2', 'u3'].map((k) => p.holds(k, t0 + 5000))).toEqual([true, false, true]);
  });

  it('an unknown offer superseded by a reservation is not one to give up: nothing would be freed', async () => {
    const p = pool({ unknownLeasePercent: 20, maxQuarantinedPercent: 100 });
    p.noteUnknownHolder(offer(p, 'u', t0, '10.9.0.104', a(), false), 'u');
    await store.putNode({ mac: '52:54:00:00:00:02', hostname: 'node-2', ip: '10.9.0.104' });
    expect(p.allocate(a(), '52:54:00:00:00:02', '52:54:00:00:00:02', undefined, '10.9.0.104', t0 + 1).ok).toBe(true);
    expect(p.releaseStaleUnknownOffer(a(), t0 + 5000)).toBe(false);
  });

  it("a node's offer of its reserved address is not taken back even when the range is full", () => {
    const p = pool();
    const node = '52:54:00:00:00:01';
    expect(p.allocate(a(), node, node, undefined, '10.9.0.103', t0)).toEqual({ ok: true, ip: '10.9.0.103' });
    for (const k of ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']) expect(offer(p, k, t0 + 10_000)).not.toBe('10.9.0.103');
  });

  it('an offer made the very ms a lease ended can be taken back in that same ms', async () => {
    const p = pool();
    for (const ip of ['10.9.0.100', '10.9.0.101', '10.9.0.102', '10.9.0.104']) await p.bind(ip, `b-${ip}`, `b-${ip}`, 1, undefined, t0);
    const end = t0 + 1000;
    expect(['x1', 'x2', 'x3', 'x4'].map((k) => offer(p, k, end))).toEqual(['10.9.0.100', '10.9.0.101', '10.9.0.102', '10.9.0.104']);
    expect(offer(p, 'z', end)).toBe('10.9.0.100');
  });

  it("dropping a client's stale offer leaves the offer another client has of that address", () => {
    const p = pool();
    expect(offer(p, 'x', t0, undefined, b())).toBe('10.8.0.10');
    expect(offer(p, 'w', t0, undefined, b())).toBe('10.8.0.11');
    expect(offer(p, 'y', t0 + HOLD, undefined, b(), false)).toBe('10.8.0.10');
    p.dropOffer('x');
    expect(p.isAvailableTo(n('10.8.0.10'), 'z', 'z', t0 + HOLD + 1)).toBe(false);
  });

  it('the quarantine cap counts only quarantines still running: not one whose address is bound since, nor one ending this ms', async () => {
    const caps = { unknownLeasePercent: 100, maxQuarantinedPercent: 20 };
    const p = pool(caps);
    expect(offer(p, 'x', t0, '10.9.0.100')).toBe('10.9.0.100');
    expect(await p.decline('10.9.0.100', 'x', 'x', t0)).toBe('declined');
    const end = t0 + QUARANTINE;
    expect(offer(p, 'y', end, '10.9.0.101')).toBe('10.9.0.101');
    expect(await p.decline('10.9.0.101', 'y', 'y', end)).toBe('declined');
    const q = pool(caps);
    await q.bind('10.9.0.101', 'w', 'w', 3600, undefined, end + QUARANTINE);
    expect(offer(q, 'v', end + QUARANTINE + 1, '10.9.0.102')).toBe('10.9.0.102');
    expect(await q.decline('10.9.0.102', 'v', 'v', end + QUARANTINE + 1)).toBe('declined');
  });

  it('a client bound again at a new address keeps that binding when its old address goes to another client', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 1, undefined, t0);
    await p.bind('10.9.0.101', 'x', 'x', 60, undefined, t0 + 2000);
    await p.bind('10.9.0.100', 'y', 'y', 60, undefined, t0 + 3000);
    expect(p.binding('x', t0 + 3001)?.ip).toBe('10.9.0.101');
    expect(p.hasClaim('x', '10.9.0.101')).toBe(true);
  });

  it('a client has no claim to an address it was bound to before its current binding', async () => {
    const p = pool();
    await p.bind('10.9.0.100', 'x', 'x', 1, undefined, t0);
    await p.bind('10.9.0.101', 'x', 'x', 60, undefined, t0 + 2000);
    expect(p.hasClaim('x', '10.9.0.100')).toBe(false);
  });

  it('a declined address is no active lease (the NBD access check reads these)', async () => {
    const p = pool();
    expect(offer(p, 'x', t0, '10.9.0.100')).toBe('10.9.0.100');
    expect(await p.decline('10.9.0.100', 'x', 'x', t0)).toBe('declined');
    expect(p.activeLeases(t0 + 1)).toEqual([]);
  });
});
