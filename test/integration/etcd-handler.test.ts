// The full-mode handler's claims against a real etcd member on loopback: two
// handlers, each with its own pool and state directory and its own etcd client,
// stand for two bootfarm instances on one segment. Driven in this process, so
// the order of decisions is exact: both pools choose an address before either
// claim reaches etcd.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { Etcd3 } from 'etcd3';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { MessageType } from '../../server/dhcp/codec/options.js';
import { CLAIM_SKEW_MARGIN_MS, EtcdLeaseClaims } from '../../server/store/etcd-lease-claims.js';
import { parseClaim } from '../../server/store/lease-claims.js';
import { handleAt, nakMessage, openFullModeState, replyOf, udhcpcPacket, type FullModeState } from '../lib/dhcp-full-mode.js';
import { openLeaseClaims } from '../../server/store/open-lease-claims.js';
import { parseConfig } from '../../server/config/load.js';
import { etcdEntries, startLoopbackEtcd, type EtcdCluster } from '../lib/etcd.js';
import { waitUntil } from '../lib/wait.js';

const OFFER_HOLD_MS = 30_000;
const X = '52:54:00:dd:00:01';
const Y = '52:54:00:dd:00:02';
const RESERVED = '52:54:00:dd:00:03';

interface Instance {
  address: string;
  state: FullModeState;
  claims: EtcdLeaseClaims;
  handler: FullModeHandler;
}

describe('full mode with lease claims in etcd', () => {
  let etcd: EtcdCluster;
  let prefix: string;
  let instances: Instance[];
  const t0 = Date.now();

  beforeAll(async () => {
    etcd = await startLoopbackEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  beforeEach(async () => {
    prefix = `/h-${randomBytes(4).toString('hex')}`;
    instances = [];
    for (const address of ['10.9.0.1', '10.9.0.2']) {
      const state = await openFullModeState(
        address,
        `dhcp:
  mode: full
  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.109], leaseSeconds: 600 }]
nodes: [{ mac: "${RESERVED}", hostname: r1, ip: 10.9.0.50 }]
`,
      );
      const claims = await EtcdLeaseClaims.open({
        endpoints: etcd.endpoints,
        prefix,
        logger: pino({ level: 'silent' }),
        claimTimeoutMs: 3000,
      });
      const pool = new LeasePool(state.config.dhcp.subnets, state.store, OFFER_HOLD_MS, 60_000, undefined, t0);
      pool.setHeldElsewhere((ip, key, now) => claims.heldByOther(ip, key, now));
      instances.push({ address, state, claims, handler: new FullModeHandler(pool, address, claims) });
    }
  });
  afterEach(async () => {
    for (const i of instances) {
      await i.claims.stop();
      await i.state.close();
    }
  });

  const [first, second] = [0, 1];
  const at = (n: number) => instances[n] as Instance;
  const discover = (n: number, mac: string, now: number, requested?: string) =>
    handleAt(at(n).handler, at(n).state.store, at(n).address, udhcpcPacket('discover', mac, { requested }), now);
  const request = (n: number, mac: string, ip: string, now: number) =>
    handleAt(
      at(n).handler,
      at(n).state.store,
      at(n).address,
      udhcpcPacket('request', mac, { requested: ip, serverId: at(n).address }),
      now,
    );
  /** What etcd holds: ip -> the MAC its claim names (etcdctl, not bootfarm's own reading). */
  const stored = async () =>
    new Map((await etcdEntries(etcd, `${prefix}/leases/`)).map((e) => [e.key.split('/').pop(), parseClaim(e.value)?.mac]));

  it('two instances choosing the same address for two clients at once: one claim wins, the other offers the next candidate', async () => {
    const [a, b] = await Promise.all([discover(first, X, t0), discover(second, Y, t0)]);
    const offered = [replyOf(a)?.yiaddr, replyOf(b)?.yiaddr];
    expect([a.outcome, b.outcome]).toEqual(['offer', 'offer']);
    expect(new Set(offered)).toEqual(new Set(['10.9.0.100', '10.9.0.101']));
    const claims = await stored();
    expect(claims.get(offered[0])).toBe(X);
    expect(claims.get(offered[1])).toBe(Y);
  });

  it("a REQUEST for an address another instance's client now holds is NAKed, not ACKed", async () => {
    const offer = await discover(first, X, t0);
    const ip = replyOf(offer)?.yiaddr as string;
    // Just past the hold, within the margin (a clock up to the skew limit ahead of instance 1's): still X's.
    const early = await discover(second, '52:54:00:dd:00:04', t0 + OFFER_HOLD_MS + 1, ip);
    expect(early.outcome).toBe('offer');
    expect(replyOf(early)?.yiaddr).not.toBe(ip);
    // Instance 2's clock is past X's offer hold and the clock-skew margin: the claim has expired there, and Y takes the address.
    const taken = await discover(second, Y, t0 + OFFER_HOLD_MS + CLAIM_SKEW_MARGIN_MS + 1, ip);
    expect(replyOf(taken)?.yiaddr).toBe(ip);
    const late = await request(first, X, ip, t0 + 1000);
    expect(late.outcome).toBe('nak');
    expect(nakMessage(late)).toMatch(/address (not available|claimed by another client)/);
    expect((await stored()).get(ip)).toBe(Y);
    // Y's REQUEST to instance 2 is ACKed, and its claim is now the lease's.
    const ack = await request(second, Y, ip, t0 + OFFER_HOLD_MS + CLAIM_SKEW_MARGIN_MS + 2);
    expect(ack.outcome).toBe('ack');
    expect((await stored()).get(ip)).toBe(Y);
  });

  it('a RELEASE removes the claim; a reservation is never claimed', async () => {
    const ip = replyOf(await discover(first, X, t0))?.yiaddr as string;
    expect((await request(first, X, ip, t0 + 10)).outcome).toBe('ack');
    expect((await stored()).get(ip)).toBe(X);
    const release = udhcpcPacket('request', X, { ciaddr: ip, type: MessageType.RELEASE });
    expect((await handleAt(at(first).handler, at(first).state.store, at(first).address, release, t0 + 20)).outcome).toBe('released');
    expect((await stored()).has(ip)).toBe(false);

    const reserved = await discover(second, RESERVED, t0);
    expect(replyOf(reserved)?.yiaddr).toBe('10.9.0.50');
    expect((await stored()).has('10.9.0.50')).toBe(false);
  });

  it('an etcd that cannot be reached stops the start with where it was looked for', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    // The instance id is kept in the state directory: a temporary one, not the working directory.
    const stateDir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-unreachable-'));
    try {
      const config = parseConfig(
        `server: { address: 10.9.0.1, stateDir: ${stateDir} }\nstore: { backend: etcd, etcd: { endpoints: [http://127.0.0.1:1], prefix: /x } }\n`,
        'cfg.yaml',
      );
      await expect(openLeaseClaims(config, pino({ level: 'silent' }))).rejects.toThrow(
        /^store\.etcd: cannot read \/x\/leases\/ from http:\/\/127\.0\.0\.1:1 \(.*UNAVAILABLE/,
      );
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a renewal moves the claim to a new etcd lease and revokes the old one: no lease is left attached to nothing', async () => {
    const leases = async () => new Set((await etcd.ctl(['lease', 'list'])).split('\n').filter((l) => /^[0-9a-f]+$/.test(l)));
    const before = await leases();
    const ip = replyOf(await discover(first, X, t0))?.yiaddr as string;
    expect((await request(first, X, ip, t0 + 10)).outcome).toBe('ack');
    const renewal = udhcpcPacket('request', X, { ciaddr: ip });
    expect((await handleAt(at(first).handler, at(first).state.store, at(first).address, renewal, t0 + 20)).outcome).toBe('ack');
    // Three claims (offer, ACK, renewal), one lease left: the revocations are not
    // awaited by the reply, so they are waited for here.
    const added = async () => [...(await leases())].filter((l) => !before.has(l));
    await waitUntil(async () => (await added()).length === 1, 10_000, 'the old etcd leases revoked', 200);
    expect(await added()).toHaveLength(1);
  });

  it('a DISCOVER of a bound client reaching another instance does not shorten its claim: the address is not offered to a second client', async () => {
    const ip = replyOf(await discover(first, X, t0))?.yiaddr as string;
    expect((await request(first, X, ip, t0 + 10)).outcome).toBe('ack');
    // X (or anyone sending X's MAC) asks instance 2 for its address: an offer,
    // whose claim is for a 30 s hold; X's lease on instance 1 runs 600 s.
    const again = await discover(second, X, t0 + 1000, ip);
    expect([again.outcome, replyOf(again)?.yiaddr]).toEqual(['offer', ip]);
    // Past that hold, Y asks instance 2 for the same address: X still holds it on instance 1.
    const other = await discover(second, Y, t0 + 1000 + OFFER_HOLD_MS + 1, ip);
    expect(other.outcome).toBe('offer');
    expect(replyOf(other)?.yiaddr).not.toBe(ip);
    expect((await stored()).get(ip)).toBe(X);
    // What instance 1 answers X from its binding while etcd is out is what etcd still says.
    const entry = (await etcdEntries(etcd, `${prefix}/leases/`)).find((e) => e.key.endsWith(`/${ip}`));
    expect(parseClaim(entry?.value ?? '')?.expiresAt).toBe(t0 + 10 + 600_000);
  });

  it('a claim that keeps losing its races is a conflict (NAK), not an outage: health stays as it was', async () => {
    const ip = replyOf(await discover(first, X, t0))?.yiaddr as string;
    const healthBefore = at(first).claims.health();
    // Another writer (etcdctl here) puts an expired claim of someone else on the
    // key between each of instance 1's reads and its transaction: every attempt
    // may claim, and every attempt's comparison fails. etcd answers all along.
    const key = `${prefix}/leases/10.9.0.0_24/${ip}`;
    let competing = 0;
    // The etcd client is private to EtcdLeaseClaims; its lease grant comes right before each transaction.
    const leaseClient = (at(first).claims as unknown as { client: Etcd3 }).client.leaseClient;
    const grant = leaseClient.leaseGrant.bind(leaseClient);
    leaseClient.leaseGrant = async (...args) => {
      competing++;
      const other = { key: `other-${competing}`, mac: '52:54:00:dd:00:0f', expiresAt: t0 - CLAIM_SKEW_MARGIN_MS - 1, instance: '10.9.0.3' };
      await etcd.ctl(['put', key, JSON.stringify(other)]);
      return grant(...args);
    };
    const answer = await request(first, X, ip, t0 + 10);
    expect(competing).toBe(5);
    expect(answer.outcome).toBe('nak');
    expect(nakMessage(answer)).toBe('address claimed by another client');
    expect(at(first).claims.health()).toEqual(healthBefore);
    expect(healthBefore.healthy).toBe(true);
  });

  // Last: it stops the etcd member (every case before opens claims on it).
  it('with etcd gone, no new address is offered or ACKed; a held one is renewed for what it has left; a reservation still is answered', async () => {
    const held = replyOf(await discover(first, X, t0))?.yiaddr as string;
    expect((await request(first, X, held, t0 + 10)).outcome).toBe('ack');
    const offered = replyOf(await discover(first, Y, t0))?.yiaddr as string;
    await etcd.stop();

    // X renews 100 s into its 600 s lease: ACKed for the 500 s its claim in etcd still covers.
    const renewal = udhcpcPacket('request', X, { ciaddr: held });
    const renewed = await handleAt(at(first).handler, at(first).state.store, at(first).address, renewal, t0 + 100_010);
    expect(renewed.outcome).toBe('ack-store-unavailable');
    expect(replyOf(renewed)?.options.get(51)?.readUInt32BE(0)).toBe(500);
    expect(at(first).claims.health()).toMatchObject({ healthy: false, reason: expect.stringMatching(/etcd did not answer|UNAVAILABLE/) });

    // Y's offer is not ACKed, and nobody new is offered anything.
    const ack = await request(first, Y, offered, t0 + 20);
    expect([ack.outcome, ack.replies]).toEqual(['store-unavailable', []]);
    const fresh = await discover(second, '52:54:00:dd:00:09', t0);
    expect([fresh.outcome, fresh.replies]).toEqual(['store-unavailable', []]);
    expect(replyOf(await discover(second, RESERVED, t0))?.yiaddr).toBe('10.9.0.50');
  });
});
