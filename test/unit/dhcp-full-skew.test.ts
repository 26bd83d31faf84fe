// Full mode while this instance's clock is not to be trusted (server/dhcp/server/full-handler.ts
// with ClockSkewStop from server/store/lease-claims.ts): no answer at all for a dynamic
// address, unlike an etcd outage, whose renewals are ACKed from the local binding. And
// that outage path never grants more than the subnet's lease, even when the clock was
// set back since the binding was written. Over the real LeasePool and FileStore with a
// scripted claims store; against real instances: test/integration/etcd-clock-skew.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { ClockSkewStop, type ClaimResult, type ClaimsHealth, type LeaseClaims } from '../../server/store/lease-claims.js';
import { handleAt, replyOf, udhcpcPacket, type FullModeState, openFullModeState } from '../lib/dhcp-full-mode.js';

const SERVER = '10.9.0.1';
const CIDR = '10.9.0.0/24';
const CLIENT = '52:54:00:cc:00:01';
const RESERVED_MAC = '52:54:00:bb:00:03';
const LEASE_SECONDS = 3600;
const SKEW = "clock skew: instance b may be 90 s from this one (limit 60 s), and this clock is up to 90 s from etcd's";
const DOWN = 'claim of 10.9.0.100: etcd did not answer within 1000 ms';

/** Grants every claim until told to refuse for clock skew (`skew`) or to reject as an unreachable store (`down`). */
class SwitchedClaims implements LeaseClaims {
  skew: string | undefined;
  down: string | undefined;
  calls = 0;

  claim(): Promise<ClaimResult> {
    this.calls++;
    if (this.skew) return Promise.reject(new ClockSkewStop(this.skew));
    if (this.down) return Promise.reject(new Error(this.down));
    return Promise.resolve({ ok: true });
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
  heldByOther(): boolean {
    return false;
  }
  health(): ClaimsHealth {
    return { healthy: true, since: 0 };
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

describe('full mode with claims refused for clock skew', () => {
  let state: FullModeState;
  let store: FileStore;
  let pool: LeasePool;
  let claims: SwitchedClaims;
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
    pool = new LeasePool(state.config.dhcp.subnets, store, 30_000, 600_000, { unknownLeasePercent: 100, maxQuarantinedPercent: 100 }, now);
    claims = new SwitchedClaims();
    handler = new FullModeHandler(pool, SERVER, claims);
  });
  afterEach(() => state.close());

  const at = (p: Parameters<typeof udhcpcPacket>, when: number) => handleAt(handler, store, SERVER, udhcpcPacket(...p), when);
  /** CLIENT holds 10.9.0.100 for the whole lease from `now`. */
  const bound = async () => {
    expect(replyOf(await at(['discover', CLIENT, {}], now))?.yiaddr).toBe('10.9.0.100');
    expect((await at(['request', CLIENT, { requested: '10.9.0.100', serverId: SERVER }], now)).outcome).toBe('ack');
  };
  const silent = { replies: [], outcome: 'clock-skew-stopped', detail: { ip: '10.9.0.100', reason: SKEW } };

  it('a renewal of a held lease gets no ACK and no NAK, unicast or broadcast, at any clock reading, and the binding is untouched', async () => {
    await bound();
    claims.skew = SKEW;
    // One reading is this clock set back 2000 s since the binding was written: an
    // ACK "for what is left" would then outlast the claim in etcd.
    for (const when of [now + 1000 * 1000, now - 2000 * 1000]) {
      expect(await at(['request', CLIENT, { ciaddr: '10.9.0.100' }], when)).toEqual(silent);
      // INIT-REBOOT (no ciaddr, no server id) after the client restarts.
      expect(await at(['request', CLIENT, { requested: '10.9.0.100' }], when)).toEqual(silent);
    }
    expect(pool.binding(CLIENT, now)?.expiresAt).toBe(now + LEASE_SECONDS * 1000);
    expect(store.leaseByIp('10.9.0.100')?.expiresAt).toBe(now + LEASE_SECONDS * 1000);
  });

  it('no OFFER, neither of the bound address nor of a new one, and no offer is kept', async () => {
    await bound();
    claims.skew = SKEW;
    expect(await at(['discover', CLIENT, {}], now + 600 * 1000)).toEqual(silent);
    expect(await at(['discover', '52:54:00:cc:00:02', {}], now)).toEqual({ ...silent, detail: { ip: '10.9.0.101', reason: SKEW } });
    expect(pool.holds('52:54:00:cc:00:02', now)).toBe(false);
  });

  it('an offer made before the stop is not ACKed, nor NAKed', async () => {
    expect(replyOf(await at(['discover', CLIENT, {}], now))?.yiaddr).toBe('10.9.0.100');
    claims.skew = SKEW;
    expect(await at(['request', CLIENT, { requested: '10.9.0.100', serverId: SERVER }], now)).toEqual(silent);
    expect(pool.binding(CLIENT, now)).toBeUndefined();
  });

  it('a reservation is still answered: it needs no claim', async () => {
    claims.skew = SKEW;
    expect(replyOf(await at(['discover', RESERVED_MAC, {}], now))?.yiaddr).toBe('10.9.0.50');
    expect((await at(['request', RESERVED_MAC, { requested: '10.9.0.50', serverId: SERVER }], now)).outcome).toBe('ack');
    expect(claims.calls).toBe(0);
  });

  it("an etcd outage still ACKs a renewal from the binding, never for more than the subnet's lease", async () => {
    await bound();
    claims.down = DOWN;
    const u32 = (r: Awaited<ReturnType<typeof at>>, option: number) => replyOf(r)?.options.get(option)?.readUInt32BE(0);
    const renewed = await at(['request', CLIENT, { ciaddr: '10.9.0.100' }], now + 1000 * 1000);
    expect(renewed.outcome).toBe('ack-store-unavailable');
    expect(u32(renewed, 51)).toBe(2600);
    // The clock set back 2000 s: the binding seems to have 5600 s left; 3600 s are granted.
    const setBack = await at(['request', CLIENT, { ciaddr: '10.9.0.100' }], now - 2000 * 1000);
    expect(setBack).toMatchObject({ outcome: 'ack-store-unavailable', detail: { ip: '10.9.0.100', leaseSeconds: LEASE_SECONDS } });
    expect(u32(setBack, 51)).toBe(LEASE_SECONDS);
    const offer = await at(['discover', CLIENT, {}], now - 2000 * 1000);
    expect(offer).toMatchObject({ outcome: 'offer-store-unavailable', detail: { leaseSeconds: LEASE_SECONDS } });
  });
});
