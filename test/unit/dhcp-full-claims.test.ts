// Full mode's claims (server/dhcp/server/full-handler.ts with server/store/lease-claims.ts):
// what the handler asks the shared store before an OFFER or ACK leaves, and what
// it does with the answer, over the real LeasePool and FileStore with a scripted
// claims store that refuses the addresses a test says another instance's clients
// won. The same paths against a real etcd: test/integration/etcd-handler.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import type { ClaimResult, ClaimsHealth, ClaimValue, LeaseClaims } from '../../server/store/lease-claims.js';
import { handleAt, nakMessage, openFullModeState, replyOf, udhcpcPacket, type FullModeState } from '../lib/dhcp-full-mode.js';

const SERVER = '10.9.0.1';
const CIDR = '10.9.0.0/24';
const CLIENT = '52:54:00:cc:00:01';
const RESERVED_MAC = '52:54:00:bb:00:03';
const OFFER_HOLD_MS = 30_000;
const LEASE_SECONDS = 3600;

/** Refuses every address in `taken`, or rejects every claim while `down` names why; records each call. */
class ScriptedClaims implements LeaseClaims {
  readonly taken = new Set<string>();
  down: string | undefined;
  readonly claims: Array<{ subnet: string; ip: string; value: ClaimValue; now: number }> = [];
  readonly releases: Array<{ subnet: string; ip: string; key: string }> = [];
  private readonly other: ClaimValue = {
    key: 'other-client',
    mac: '52:54:00:ee:00:01',
    expiresAt: Number.MAX_SAFE_INTEGER,
    instance: '10.9.0.2',
  };

  claim(subnet: string, ip: string, value: ClaimValue, now: number): Promise<ClaimResult> {
    this.claims.push({ subnet, ip, value, now });
    if (this.down) return Promise.reject(new Error(this.down));
    return Promise.resolve(this.taken.has(ip) ? { ok: false, holder: this.other } : { ok: true });
  }
  release(subnet: string, ip: string, key: string): Promise<void> {
    this.releases.push({ subnet, ip, key });
    return Promise.resolve();
  }
  heldByOther(): boolean {
    return false;
  }
  health(): ClaimsHealth {
    return { healthy: this.down === undefined, reason: this.down, since: 0 };
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

describe('full mode: an address is claimed before it is offered or acknowledged', () => {
  let state: FullModeState;
  let store: FileStore;
  let pool: LeasePool;
  let claims: ScriptedClaims;
  let handler: FullModeHandler;
  const now = Date.now();

  beforeEach(async () => {
    state = await openFullModeState(
      SERVER,
      `
dhcp:
  mode: full
  subnets:
    - { cidr: ${CIDR}, range: [10.9.0.100, 10.9.0.119], router: ${SERVER}, leaseSeconds: ${LEASE_SECONDS} }
nodes:
  - { mac: "${RESERVED_MAC}", hostname: r1, ip: 10.9.0.50 }
`,
    );
    store = state.store;
    pool = new LeasePool(
      state.config.dhcp.subnets,
      store,
      OFFER_HOLD_MS,
      600_000,
      { unknownLeasePercent: 100, maxQuarantinedPercent: 100 },
      now,
    );
    claims = new ScriptedClaims();
    handler = new FullModeHandler(pool, SERVER, claims);
  });
  afterEach(() => state.close());

  const discover = (mac = CLIENT) => handleAt(handler, store, SERVER, udhcpcPacket('discover', mac, {}), now);
  const request = (ip: string, mac = CLIENT) =>
    handleAt(handler, store, SERVER, udhcpcPacket('request', mac, { requested: ip, serverId: SERVER }), now);

  it('offers the address it claimed, for the offer hold, in the name of the client and this instance', async () => {
    const r = await discover();
    expect(r.outcome).toBe('offer');
    expect(replyOf(r)?.yiaddr).toBe('10.9.0.100');
    expect(claims.claims).toEqual([
      { subnet: CIDR, ip: '10.9.0.100', value: { key: CLIENT, mac: CLIENT, expiresAt: now + OFFER_HOLD_MS, instance: SERVER }, now },
    ]);
  });

  it('offers the next candidate when another instance won the first, and never the lost one', async () => {
    claims.taken.add('10.9.0.100');
    claims.taken.add('10.9.0.101');
    const r = await discover();
    expect(r.outcome).toBe('offer');
    expect(replyOf(r)?.yiaddr).toBe('10.9.0.102');
    expect(claims.claims.map((c) => c.ip)).toEqual(['10.9.0.100', '10.9.0.101', '10.9.0.102']);
  });

  it('answers nothing after eight candidates in a row were claimed elsewhere', async () => {
    for (let i = 100; i <= 119; i++) claims.taken.add(`10.9.0.${i}`);
    const r = await discover();
    expect(r.replies).toEqual([]);
    expect(r.outcome).toBe('exhausted');
    expect(r.detail).toEqual({ reason: '8 addresses in a row were claimed by other instances' });
    expect(claims.claims).toHaveLength(8);
  });

  it('acknowledges a request only after claiming the address for the whole lease', async () => {
    await discover();
    const r = await request('10.9.0.100');
    expect(r.outcome).toBe('ack');
    expect(replyOf(r)?.yiaddr).toBe('10.9.0.100');
    expect(claims.claims.map((c) => [c.ip, c.value.expiresAt])).toEqual([
      ['10.9.0.100', now + OFFER_HOLD_MS],
      ['10.9.0.100', now + LEASE_SECONDS * 1000],
    ]);
    expect(pool.binding(CLIENT, now)?.ip).toBe('10.9.0.100');
  });

  it("NAKs a request for an address another instance's client won since the offer, and binds nothing", async () => {
    await discover();
    claims.taken.add('10.9.0.100');
    const r = await request('10.9.0.100');
    expect(r.outcome).toBe('nak');
    expect(nakMessage(r)).toBe('address claimed by another client');
    expect(pool.binding(CLIENT, now)).toBeUndefined();
    expect(store.leaseByIp('10.9.0.100')).toBeUndefined();
  });

  it("claims nothing for a node's reserved address: it is the same on every instance", async () => {
    const offer = await discover(RESERVED_MAC);
    expect(replyOf(offer)?.yiaddr).toBe('10.9.0.50');
    const ack = await request('10.9.0.50', RESERVED_MAC);
    expect(ack.outcome).toBe('ack');
    expect(claims.claims).toEqual([]);
  });

  it('gives the claim back on RELEASE of a lease the client holds, and only then', async () => {
    await discover();
    expect((await request('10.9.0.100')).outcome).toBe('ack');
    const stranger = udhcpcPacket('request', '52:54:00:cc:00:09', { ciaddr: '10.9.0.100', type: 7 });
    expect((await handleAt(handler, store, SERVER, stranger, now)).outcome).toBe('ignored-release');
    expect(claims.releases).toEqual([]);
    const own = udhcpcPacket('request', CLIENT, { ciaddr: '10.9.0.100', type: 7 });
    expect((await handleAt(handler, store, SERVER, own, now)).outcome).toBe('released');
    expect(claims.releases).toEqual([{ subnet: CIDR, ip: '10.9.0.100', key: CLIENT }]);
  });

  describe('while the store cannot say (etcd without quorum, or out of reach)', () => {
    const DOWN = 'claim of 10.9.0.100: etcd did not answer within 1000 ms';
    const renew = (ip: string, at: number) => handleAt(handler, store, SERVER, udhcpcPacket('request', CLIENT, { ciaddr: ip }), at);
    const u32 = (r: Awaited<ReturnType<typeof renew>>, option: number) => replyOf(r)?.options.get(option)?.readUInt32BE(0);
    const bound = async () => {
      await discover();
      expect((await request('10.9.0.100')).outcome).toBe('ack');
      claims.down = DOWN;
    };

    it('ACKs the renewal of a held address for what its lease has left, and extends nothing', async () => {
      await bound();
      const r = await renew('10.9.0.100', now + 1000 * 1000);
      expect(r.outcome).toBe('ack-store-unavailable');
      expect(replyOf(r)?.yiaddr).toBe('10.9.0.100');
      // 3600 s lease, 1000 s gone: 2600 s left; T1 and T2 at 0.5 and 0.875 of it.
      expect([u32(r, 51), u32(r, 58), u32(r, 59)]).toEqual([2600, 1300, 2275]);
      expect(r.detail).toEqual({ ip: '10.9.0.100', leaseSeconds: 2600 });
      expect(pool.binding(CLIENT, now)?.expiresAt).toBe(now + LEASE_SECONDS * 1000);
      expect(store.leaseByIp('10.9.0.100')?.expiresAt).toBe(now + LEASE_SECONDS * 1000);
    });

    it('gives nothing for a lease with less than a second left, nor for one that has run out', async () => {
      await bound();
      for (const at of [now + LEASE_SECONDS * 1000 - 999, now + LEASE_SECONDS * 1000 + 1]) {
        const r = await renew('10.9.0.100', at);
        expect(r.replies).toEqual([]);
        expect(r.outcome).toBe('store-unavailable');
      }
    });

    it('offers and ACKs no new address, naming why, and keeps no offer', async () => {
      claims.down = DOWN;
      const offer = await discover();
      expect(offer.replies).toEqual([]);
      expect(offer).toMatchObject({ outcome: 'store-unavailable', detail: { ip: '10.9.0.100', reason: DOWN } });
      expect(pool.holds(CLIENT, now)).toBe(false);
      // An offer made before the store went away is not ACKed either.
      claims.down = undefined;
      await discover('52:54:00:cc:00:02');
      claims.down = DOWN;
      const ack = await request('10.9.0.101', '52:54:00:cc:00:02');
      expect(ack.replies).toEqual([]);
      expect(ack.outcome).toBe('store-unavailable');
      expect(pool.binding('52:54:00:cc:00:02', now)).toBeUndefined();
    });

    it('offers a bound client that starts over its own address, for what its lease has left, then ACKs it so', async () => {
      await bound();
      const at = now + 600 * 1000;
      const offer = await handleAt(handler, store, SERVER, udhcpcPacket('discover', CLIENT, {}), at);
      expect(offer.outcome).toBe('offer-store-unavailable');
      expect(replyOf(offer)?.yiaddr).toBe('10.9.0.100');
      expect(u32(offer, 51)).toBe(3000);
      expect(offer.detail).toEqual({ ip: '10.9.0.100', leaseSeconds: 3000 });
      const ack = await handleAt(
        handler,
        store,
        SERVER,
        udhcpcPacket('request', CLIENT, { requested: '10.9.0.100', serverId: SERVER }),
        at,
      );
      expect(ack.outcome).toBe('ack-store-unavailable');
      expect(u32(ack, 51)).toBe(3000);
    });

    it('still answers a reservation, which needs no claim', async () => {
      claims.down = DOWN;
      expect(replyOf(await discover(RESERVED_MAC))?.yiaddr).toBe('10.9.0.50');
      expect((await request('10.9.0.50', RESERVED_MAC)).outcome).toBe('ack');
    });
  });
});
