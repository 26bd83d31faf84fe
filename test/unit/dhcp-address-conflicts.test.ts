// Full mode never gives one address to two machines: a REQUEST for an address
// another client holds is refused with a NAK, whichever state the client is in
// (RFC 2131 §4.3.2), and the holder keeps its lease. Driven through
// FullModeHandler with the real LeasePool over a real FileStore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { identifyClient } from '../../server/boot/identity.js';
import { planBoot } from '../../server/boot/policy.js';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import type { HandlerResult, RequestContext } from '../../server/dhcp/server/context.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

const SERVER = '10.9.0.1';
const LATE_MAC = '52:54:00:aa:00:01';
const HOLDER_MAC = '52:54:00:aa:00:02';
const STRANGER_MAC = '52:54:00:aa:00:03';
const OFFER_HOLD_MS = 30_000;

/** udhcpc's captured DISCOVER or REQUEST, re-addressed: no option 61, so the MAC is the lease key. */
function packet(kind: 'discover' | 'request', mac: string, fields: { requested?: string; serverId?: string; ciaddr?: string }): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, `test/fixtures/dhcp/udhcpc-${kind}.bin`)));
  if (!r.ok) throw new Error(r.reason);
  const p = r.packet;
  p.chaddr = Buffer.from(mac.replace(/:/g, ''), 'hex');
  p.options.delete(61);
  p.options.delete(50);
  p.options.delete(54);
  if (fields.requested) p.options.set(50, Buffer.from(fields.requested.split('.').map(Number)));
  if (fields.serverId) p.options.set(54, Buffer.from(fields.serverId.split('.').map(Number)));
  p.ciaddr = fields.ciaddr ?? '0.0.0.0';
  return p;
}

describe('full mode: an address another client holds', () => {
  let dir: string;
  let store: FileStore;
  let config: ResolvedConfig;
  let pool: LeasePool;
  let handler: FullModeHandler;
  const t0 = Date.now();
  const late = t0 + OFFER_HOLD_MS + 1_000;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-conflicts-'));
    config = parseConfig(`
server: { address: ${SERVER}, stateDir: ${dir} }
dhcp:
  mode: full
  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200], router: ${SERVER}, leaseSeconds: 3600 }]
`, 'test.yaml');
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, OFFER_HOLD_MS, 600_000);
    handler = new FullModeHandler(pool, SERVER);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function handle(p: DhcpPacket, now: number): Promise<HandlerResult> {
    const identity = identifyClient(p);
    const node = store.nodeByMac(identity.mac);
    const ctx: RequestContext = {
      packet: p, messageType: readMessageType(p.options) as number, identity, node, known: node !== undefined,
      plan: planBoot(identity, node, { serverAddress: SERVER, httpPort: 8080, bootFiles: { bios: 'b', uefiX64: 'x', uefiArm64: 'a' } }),
      source: { address: '0.0.0.0', port: 68 }, listener: 'dhcp', now,
    };
    return handler.handle(ctx);
  }
  const replyOf = (r: HandlerResult) => (r.replies[0] as { packet: DhcpPacket } | undefined)?.packet;
  const nakMessage = (r: HandlerResult) => replyOf(r)?.options.get(56)?.toString('latin1');

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
});
