// Full mode never gives one address to two machines: a REQUEST for an address
// another client holds is refused with a NAK, whichever state the client is in
// (RFC 2131 §4.3.2), and the holder keeps its lease. Around it, the other
// decisions of a REQUEST's states, reservations, DECLINE, RELEASE and INFORM.
// Driven through FullModeHandler with the real LeasePool over a real FileStore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DhcpPacket } from '../../server/dhcp/codec/packet.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import type { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import type { HandlerResult } from '../../server/dhcp/server/context.js';
import {
  handleAt,
  nakMessage,
  openFullModeState,
  replyOf,
  type FullModeState,
  udhcpcPacket as packet,
  type RequestFields,
} from '../lib/dhcp-full-mode.js';
import { ipv4ToNumber } from '../../server/util/ipv4.js';

const SERVER = '10.9.0.1';
const LATE_MAC = '52:54:00:aa:00:01';
const HOLDER_MAC = '52:54:00:aa:00:02';
const STRANGER_MAC = '52:54:00:aa:00:03';
const RESERVED_MAC = '52:54:00:aa:00:04';
const OFFER_HOLD_MS = 30_000;

describe('full mode: an address another client holds', () => {
  let state: FullModeState;
  let store: FileStore;
  let config: ResolvedConfig;
  let pool: LeasePool;
  let handler: FullModeHandler;
  const t0 = Date.now();
  const late = t0 + OFFER_HOLD_MS + 1_000;

  beforeEach(async () => {
    state = await openFullModeState(
      SERVER,
      `
dhcp:
  mode: full
  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200], router: ${SERVER}, leaseSeconds: 3600 }]
nodes:
  - { mac: "${RESERVED_MAC}", hostname: n1, ip: 10.9.0.50 }
`,
    );
    ({ config, store } = state);
    pool = new LeasePool(config.dhcp.subnets, store, OFFER_HOLD_MS, 600_000);
    handler = new FullModeHandler(pool, SERVER);
  });
  afterEach(() => state.close());

  const handle = (p: DhcpPacket, now: number): Promise<HandlerResult> => handleAt(handler, store, SERVER, p, now);

  /**
   * LATE_MAC is offered an address and lets the offer's hold run out; HOLDER_MAC
   * then asks for that address and is bound to it. Returns the address.
   */
  async function offerTakenOver(): Promise<string> {
    const offered = replyOf(await handle(packet('discover', LATE_MAC, {}), t0))?.yiaddr as string;
    expect(offered).toMatch(/^10\.9\.0\./);
    expect((await handle(packet('discover', HOLDER_MAC, { requested: offered }), late)).outcome).toBe('offer');
    const ack = await handle(packet('request', HOLDER_MAC, { requested: offered, serverId: SERVER }), late);
    expect(replyOf(ack)?.yiaddr).toBe(offered);
    return offered;
  }

  it('a late SELECTING REQUEST for an address another client was bound to since is NAKed, and the holder keeps it', async () => {
    const ip = await offerTakenOver();
    const r = await handle(packet('request', LATE_MAC, { requested: ip, serverId: SERVER }), late + 1);
    expect(r.outcome).toBe('nak');
    expect(replyOf(r)?.options.get(53)).toEqual(Buffer.of(6));
    expect(replyOf(r)?.yiaddr).toBe('0.0.0.0');
    expect(nakMessage(r)).toBe('address not available');
    expect(pool.binding(HOLDER_MAC, late + 1)).toMatchObject({ ip, state: 'bound' });
    expect(pool.binding(LATE_MAC, late + 1)).toBeUndefined();
  });

  it('a RENEWING REQUEST from a ciaddr that another client is bound to is NAKed', async () => {
    const ip = await offerTakenOver();
    const r = await handle(packet('request', LATE_MAC, { ciaddr: ip }), late + 1);
    expect(r.outcome).toBe('nak');
    expect(nakMessage(r)).toBe('address not available');
    expect(pool.binding(HOLDER_MAC, late + 1)).toMatchObject({ ip, state: 'bound' });
  });

  it('an INIT-REBOOT REQUEST from a client with no record, for an address another client holds, is NAKed "address in use"', async () => {
    const ip = await offerTakenOver();
    const r = await handle(packet('request', STRANGER_MAC, { requested: ip }), late + 1);
    expect(r.outcome).toBe('nak');
    expect(nakMessage(r)).toBe('address in use');
    expect(pool.binding(HOLDER_MAC, late + 1)).toMatchObject({ ip, state: 'bound' });
  });

  it('an INIT-REBOOT REQUEST from a client with no record, for a free address, is left unanswered (§4.3.2)', async () => {
    const r = await handle(packet('request', STRANGER_MAC, { requested: '10.9.0.121' }), t0);
    expect(r).toMatchObject({ outcome: 'ignored-unknown-client', replies: [] });
    expect(pool.binding(STRANGER_MAC, t0)).toBeUndefined();
  });
  const request = (mac: string, fields: RequestFields, now = t0) => handle(packet('request', mac, fields), now);
  const nak = async (r: Promise<HandlerResult>, message: string) => {
    const result = await r;
    expect(result.outcome).toBe('nak');
    expect(nakMessage(result)).toBe(message);
  };

  it('SELECTING: no option 50, or an address this server never offered the client, is NAKed', async () => {
    await nak(request(STRANGER_MAC, { serverId: SERVER }), 'requested address (option 50) missing');
    await nak(request(STRANGER_MAC, { serverId: SERVER, requested: '10.9.0.130' }), 'no offer was made for this address');
  });

  it('a reserved node is ACKed its address outside the dynamic range, in every state, and NAKed any other', async () => {
    const ack = await request(RESERVED_MAC, { serverId: SERVER, requested: '10.9.0.50' });
    expect(ack.outcome).toBe('ack');
    expect(replyOf(ack)).toMatchObject({ yiaddr: '10.9.0.50', ciaddr: '0.0.0.0' });
    expect(replyOf(ack)?.options.get(51)?.readUInt32BE(0)).toBe(3600);
    expect((await request(RESERVED_MAC, { requested: '10.9.0.50' })).outcome).toBe('ack');
    const renew = await request(RESERVED_MAC, { ciaddr: '10.9.0.50' });
    expect(replyOf(renew)).toMatchObject({ yiaddr: '10.9.0.50', ciaddr: '10.9.0.50' });
    await nak(request(RESERVED_MAC, { requested: '10.9.0.120' }), 'address is not the one reserved for this client');
    await nak(request(RESERVED_MAC, { serverId: SERVER, requested: '10.9.0.120' }), 'no offer was made for this address');
  });

  it("INIT-REBOOT: an address off every served network, or not the client's lease, is NAKed; its own lease is ACKed", async () => {
    await nak(request(STRANGER_MAC, { requested: '192.168.7.7' }), 'address not on this network');
    await pool.bind('10.9.0.140', STRANGER_MAC, STRANGER_MAC, 3600, undefined, t0);
    await nak(request(STRANGER_MAC, { requested: '10.9.0.141' }), "address is not this client's lease");
    const ack = await request(STRANGER_MAC, { requested: '10.9.0.140' });
    expect(ack.outcome).toBe('ack');
    expect(replyOf(ack)?.yiaddr).toBe('10.9.0.140');
    expect((await request(STRANGER_MAC, {})).outcome).toBe('ignored-malformed');
  });

  it('RENEWING: off-network is NAKed, an unknown client is ignored, a lease outside the (shrunk) range is NAKed', async () => {
    await nak(request(STRANGER_MAC, { ciaddr: '192.168.7.7' }), 'address not on this network');
    expect((await request(STRANGER_MAC, { ciaddr: '10.9.0.160' })).outcome).toBe('ignored-unknown-client');
    await pool.bind('10.9.0.60', STRANGER_MAC, STRANGER_MAC, 3600, undefined, t0);
    await nak(request(STRANGER_MAC, { ciaddr: '10.9.0.60' }), 'address outside the pool');
    await pool.bind('10.9.0.201', HOLDER_MAC, HOLDER_MAC, 3600, undefined, t0);
    await nak(request(HOLDER_MAC, { ciaddr: '10.9.0.201' }), 'address outside the pool');
    await pool.bind('10.9.0.200', LATE_MAC, LATE_MAC, 3600, undefined, t0);
    expect((await request(LATE_MAC, { ciaddr: '10.9.0.200' })).outcome).toBe('ack');
  });

  it('DECLINE and RELEASE change only what the client holds; other message types are ignored', async () => {
    await pool.bind('10.9.0.140', STRANGER_MAC, STRANGER_MAC, 3600, undefined, t0);
    expect(await request(STRANGER_MAC, { type: 4 })).toMatchObject({ outcome: 'ignored-malformed', replies: [] });
    expect(await request(HOLDER_MAC, { type: 4, requested: '10.9.0.140' })).toMatchObject({ outcome: 'ignored-decline', replies: [] });
    expect(await request(STRANGER_MAC, { type: 4, requested: '10.9.0.140' })).toMatchObject({ outcome: 'declined', replies: [] });
    expect(pool.isAvailableTo(ipv4ToNumber('10.9.0.140'), STRANGER_MAC, STRANGER_MAC, t0)).toBe(false);
    await pool.bind('10.9.0.141', STRANGER_MAC, STRANGER_MAC, 3600, undefined, t0);
    expect(await request(HOLDER_MAC, { type: 7, ciaddr: '10.9.0.141' })).toMatchObject({ outcome: 'ignored-release', replies: [] });
    expect(await request(STRANGER_MAC, { type: 7, ciaddr: '10.9.0.141' })).toMatchObject({ outcome: 'released', replies: [] });
    expect(pool.binding(STRANGER_MAC, t0 + 1)).toBeUndefined();
    expect(await request(STRANGER_MAC, { type: 2 })).toMatchObject({ outcome: 'ignored-type', replies: [] });
  });

  it('INFORM: answered for a ciaddr on a served network or, without ciaddr, for this segment; ignored off-network', async () => {
    expect((await request(STRANGER_MAC, { type: 8, ciaddr: '10.9.0.77' })).outcome).toBe('ack-inform');
    expect((await request(STRANGER_MAC, { type: 8 })).outcome).toBe('ack-inform');
    expect(await request(STRANGER_MAC, { type: 8, ciaddr: '192.168.7.7' })).toMatchObject({ outcome: 'ignored-off-network', replies: [] });
  });
});
