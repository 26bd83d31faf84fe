// Full mode's other decisions, each asserted on the handler's result (the
// reply, where it goes, the outcome and the detail the log line carries): the
// relay's subnet (giaddr) chooses the pool, a relay on no served network is
// dropped, a pool that ran out says so, machines in no inventory hold at most
// dhcp.limits.unknownLeasePercent of a range (a stale offer of theirs gives way
// to a newcomer), an unknown Raspberry Pi's committed offer is short, a NAK is
// broadcast (with the broadcast bit through a relay), and only an ACK carries
// ciaddr. Driven through FullModeHandler with the real LeasePool over a real
// FileStore, as test/unit/dhcp-address-conflicts.test.ts does.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResolvedConfig } from '../../server/config/types.js';
import type { FileStore } from '../../server/store/store.js';
import { LeasePool, type PoolCaps } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import type { HandlerResult } from '../../server/dhcp/server/context.js';
import {
  handleAt,
  nakMessage,
  openFullModeState,
  replyOf,
  type FullModeState,
  udhcpcPacket,
  type RequestFields,
} from '../lib/dhcp-full-mode.js';

const SERVER = '10.9.0.1';
/** A relay on the second served network. */
const RELAY = '10.20.0.1';
const KNOWN_MAC = '52:54:00:bb:00:01';
const KNOWN_2_MAC = '52:54:00:bb:00:02';
const RESERVED_MAC = '52:54:00:bb:00:03';
const KNOWN_PI_MAC = 'dc:a6:32:00:00:01';
const UNKNOWN_PI_MAC = 'dc:a6:32:00:00:02';
const unknown = (n: number) => `52:54:00:cc:00:${n.toString(16).padStart(2, '0')}`;
const OFFER_HOLD_MS = 30_000;
/** Longer than the pool's OFFER_REUSE_AFTER_MS (2 s), shorter than the offer hold. */
const STALE_OFFER_AGE_MS = 5_000;
const NO_CAPS: PoolCaps = { unknownLeasePercent: 100, maxQuarantinedPercent: 100 };

describe('full mode: subnets, caps, exhaustion and how replies are addressed', () => {
  let state: FullModeState;
  let store: FileStore;
  let config: ResolvedConfig;
  let pool: LeasePool;
  let handler: FullModeHandler;
  const t0 = Date.now();

  beforeEach(async () => {
    state = await openFullModeState(
      SERVER,
      `
dhcp:
  mode: full
  subnets:
    - { cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.109], router: ${SERVER}, leaseSeconds: 3600 }
    - { cidr: 10.20.0.0/24, range: [10.20.0.100, 10.20.0.101], router: ${RELAY}, leaseSeconds: 3600 }
nodes:
  - { mac: "${KNOWN_MAC}", hostname: k1 }
  - { mac: "${KNOWN_2_MAC}", hostname: k2 }
  - { mac: "${RESERVED_MAC}", hostname: r1, ip: 10.9.0.50 }
  - { mac: "${KNOWN_PI_MAC}", hostname: pi-1 }
`,
    );
    ({ config, store } = state);
    usePool(NO_CAPS);
  });
  afterEach(() => state.close());

  function usePool(caps: PoolCaps): void {
    pool = new LeasePool(config.dhcp.subnets, store, OFFER_HOLD_MS, 600_000, caps, t0);
    handler = new FullModeHandler(pool, SERVER);
  }
  const discover = (mac: string, fields: RequestFields = {}, now = t0): Promise<HandlerResult> =>
    handleAt(handler, store, SERVER, udhcpcPacket('discover', mac, fields), now);
  const request = (mac: string, fields: RequestFields, now = t0): Promise<HandlerResult> =>
    handleAt(handler, store, SERVER, udhcpcPacket('request', mac, fields), now);

  it('a relayed DISCOVER is offered an address of the relay’s network (giaddr), sent to the relay', async () => {
    const r = await discover(unknown(1), { giaddr: RELAY });
    expect(r.outcome).toBe('offer');
    expect(replyOf(r)?.yiaddr).toBe('10.20.0.100');
    expect(r.detail).toEqual({ ip: '10.20.0.100' });
    expect(r.replies[0]?.destination).toEqual({ address: RELAY, port: 67 });
    // Without a relay, the served segment's network.
    expect(replyOf(await discover(unknown(2)))?.yiaddr).toBe('10.9.0.100');
  });

  it('a DISCOVER or REQUEST relayed from no served network is dropped ("no-subnet")', async () => {
    expect(await discover(unknown(1), { giaddr: '192.168.50.1' })).toEqual({
      replies: [],
      outcome: 'no-subnet',
      detail: { giaddr: '192.168.50.1' },
    });
    expect(await request(unknown(1), { giaddr: '192.168.50.1', requested: '192.168.50.9' })).toEqual({ replies: [], outcome: 'no-subnet' });
  });

  it('a pool that ran out answers nothing and says which ("exhausted")', async () => {
    expect((await discover(unknown(1), { giaddr: RELAY })).outcome).toBe('offer');
    expect((await discover(unknown(2), { giaddr: RELAY })).outcome).toBe('offer');
    expect(await discover(unknown(3), { giaddr: RELAY })).toEqual({
      replies: [],
      outcome: 'exhausted',
      detail: { reason: 'address pool of 10.20.0.0/24 is exhausted' },
    });
  });

  it('machines in no inventory hold at most dhcp.limits.unknownLeasePercent of a range; inventory nodes and holders are still served', async () => {
    // 20 % of 10 addresses: two machines in no inventory.
    usePool({ unknownLeasePercent: 20, maxQuarantinedPercent: 100 });
    const first = await discover(unknown(1));
    expect(first.outcome).toBe('offer');
    // An inventory node's offer does not count against the cap.
    expect((await discover(KNOWN_MAC)).outcome).toBe('offer');
    expect((await discover(unknown(2))).outcome).toBe('offer');
    expect(await discover(unknown(3))).toEqual({
      replies: [],
      outcome: 'unknown-lease-cap',
      detail: { reason: 'machines in no inventory hold dhcp.limits.unknownLeasePercent of 10.9.0.0/24' },
    });
    // The cap does not apply to an inventory node, nor to a machine that holds its offer already.
    expect((await discover(KNOWN_2_MAC)).outcome).toBe('offer');
    const again = await discover(unknown(1));
    expect(again.outcome).toBe('offer');
    expect(replyOf(again)?.yiaddr).toBe(replyOf(first)?.yiaddr);
  });

  it('at the unknown-machine cap, the oldest offer to an unknown machine, once older than 2 s, gives way to a newcomer', async () => {
    usePool({ unknownLeasePercent: 20, maxQuarantinedPercent: 100 });
    expect((await discover(unknown(1))).outcome).toBe('offer');
    expect((await discover(unknown(2), {}, t0 + 1)).outcome).toBe('offer');
    expect((await discover(unknown(3), {}, t0 + 2)).outcome).toBe('unknown-lease-cap');
    const later = t0 + STALE_OFFER_AGE_MS;
    expect((await discover(unknown(3), {}, later)).outcome).toBe('offer');
    expect(pool.holds(unknown(1), later)).toBe(false);
    expect(pool.holds(unknown(2), later)).toBe(true);
    // One offer gave way, not the cap: the next newcomer takes the other stale one, then none is left.
    expect((await discover(unknown(4), {}, later)).outcome).toBe('offer');
    expect(pool.holds(unknown(2), later)).toBe(false);
    expect((await discover(unknown(5), {}, later)).outcome).toBe('unknown-lease-cap');
  });

  it('a Raspberry Pi in no inventory is bound for 300 s by its offer, an inventory Pi for the subnet’s lease time', async () => {
    const unknownPi = await discover(UNKNOWN_PI_MAC);
    expect(unknownPi.outcome).toBe('offer');
    expect(pool.binding(UNKNOWN_PI_MAC, t0)).toMatchObject({ state: 'bound', expiresAt: t0 + 300_000 });
    expect((await discover(KNOWN_PI_MAC)).outcome).toBe('offer');
    expect(pool.binding(KNOWN_PI_MAC, t0)).toMatchObject({ state: 'bound', expiresAt: t0 + 3_600_000 });
  });

  it('a NAK is broadcast to the client port, even to a client at a ciaddr', async () => {
    const r = await request(unknown(1), { ciaddr: '192.168.7.7' });
    expect(nakMessage(r)).toBe('address not on this network');
    expect(r.detail).toEqual({ reason: 'address not on this network' });
    expect(r.replies[0]?.destination).toEqual({ address: '255.255.255.255', port: 68 });
    expect(r.replies[0]?.maxMessageSize).toBe(576);
  });

  it('a NAK through a relay goes to the relay with the broadcast bit set (RFC 2131 §4.3.2)', async () => {
    const p = udhcpcPacket('request', unknown(1), { giaddr: RELAY, serverId: SERVER });
    p.flags = 0;
    const r = await handleAt(handler, store, SERVER, p, t0);
    expect(nakMessage(r)).toBe('requested address (option 50) missing');
    expect(r.replies[0]?.destination).toEqual({ address: RELAY, port: 67 });
    expect((replyOf(r)?.flags ?? 0) & 0x8000).toBe(0x8000);
  });

  it('only an ACK carries ciaddr: an OFFER to a DISCOVER that names one leaves it 0.0.0.0', async () => {
    const r = await discover(unknown(1), { ciaddr: '10.9.0.99' });
    expect(r.outcome).toBe('offer');
    expect(replyOf(r)?.ciaddr).toBe('0.0.0.0');
    const ack = await request(unknown(1), { serverId: SERVER, requested: replyOf(r)?.yiaddr });
    expect(ack.outcome).toBe('ack');
    expect(ack.detail).toEqual({ ip: replyOf(r)?.yiaddr });
  });

  it('INIT-REBOOT for an address of another served network than the client’s is NAKed', async () => {
    const r = await request(unknown(1), { requested: '10.20.0.100' });
    expect(r.outcome).toBe('nak');
    expect(nakMessage(r)).toBe('address not on this network');
  });

  it('a reserved node renewing a lease it held before its reservation is NAKed back to its reserved address', async () => {
    await pool.bind('10.9.0.105', RESERVED_MAC, RESERVED_MAC, 3600, 'r1', t0);
    const r = await request(RESERVED_MAC, { ciaddr: '10.9.0.105' });
    expect(r.outcome).toBe('nak');
    expect(nakMessage(r)).toBe('address is not the one reserved for this client');
  });

  it('a reserved node renewing its reserved address with no lease on record is ACKed (its reservation is its claim)', async () => {
    const r = await request(RESERVED_MAC, { ciaddr: '10.9.0.50' });
    expect(r.outcome).toBe('ack');
    expect(replyOf(r)).toMatchObject({ yiaddr: '10.9.0.50', ciaddr: '10.9.0.50' });
  });

  it('what is ignored says why, naming the address or server (the log line’s detail)', async () => {
    expect(await request(unknown(1), { serverId: '10.9.0.254', requested: '10.9.0.100' })).toEqual({
      replies: [],
      outcome: 'ignored-other-server',
      detail: { serverId: '10.9.0.254' },
    });
    expect(await request(unknown(1), {})).toEqual({
      replies: [],
      outcome: 'ignored-malformed',
      detail: { reason: 'REQUEST without server id, requested ip or ciaddr' },
    });
    expect(await request(unknown(1), { ciaddr: '10.9.0.106' })).toEqual({
      replies: [],
      outcome: 'ignored-unknown-client',
      detail: { ip: '10.9.0.106' },
    });
    expect(await request(unknown(1), { type: 4 })).toEqual({
      replies: [],
      outcome: 'ignored-malformed',
      detail: { reason: 'DECLINE without option 50' },
    });
    expect(await request(unknown(1), { type: 8, ciaddr: '192.168.7.7' })).toEqual({
      replies: [],
      outcome: 'ignored-off-network',
      detail: { ciaddr: '192.168.7.7' },
    });
  });

  it('DECLINE and RELEASE name the address in their detail', async () => {
    await pool.bind('10.9.0.105', unknown(1), unknown(1), 3600, undefined, t0);
    expect(await request(unknown(2), { type: 4, requested: '10.9.0.105' })).toEqual({
      replies: [],
      outcome: 'ignored-decline',
      detail: { ip: '10.9.0.105', reason: 'not-offered' },
    });
    expect(await request(unknown(1), { type: 4, requested: '10.9.0.105' })).toEqual({
      replies: [],
      outcome: 'declined',
      detail: { ip: '10.9.0.105' },
    });
    await pool.bind('10.9.0.106', unknown(1), unknown(1), 3600, undefined, t0);
    expect(await request(unknown(2), { type: 7, ciaddr: '10.9.0.106' })).toEqual({
      replies: [],
      outcome: 'ignored-release',
      detail: { ip: '10.9.0.106' },
    });
    expect(await request(unknown(1), { type: 7, ciaddr: '10.9.0.106' })).toEqual({
      replies: [],
      outcome: 'released',
      detail: { ip: '10.9.0.106' },
    });
  });
});
