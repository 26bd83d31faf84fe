// A clock-skew verdict that goes stale (docs/design.md "Instances and their
// clocks"): the registry of a real etcd member on loopback cannot refresh once the
// member is stopped, and past the staleness bound (8 s TTL plus four claim
// timeouts with one member) claims are refused with `clock skew verdict stale`.
// Stale is not a bad clock: the refusal is a plain error, so the handler keeps
// the etcd outage's path (a held address renewed for what its lease has left),
// not the silence of ClockSkewStop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { EtcdLeaseClaims } from '../../server/store/etcd-lease-claims.js';
import { ClockSkewStop } from '../../server/store/lease-claims.js';
import { handleAt, openFullModeState, replyOf, udhcpcPacket, type FullModeState } from '../lib/dhcp-full-mode.js';
import { startLoopbackEtcd, type EtcdCluster } from '../lib/etcd.js';
import { waitUntil } from '../lib/wait.js';

const SERVER = '10.9.0.1';
const CIDR = '10.9.0.0/24';
const X = '52:54:00:de:00:01';

describe('a clock-skew verdict gone stale with etcd', () => {
  let etcd: EtcdCluster | undefined;
  let state: FullModeState;
  let claims: EtcdLeaseClaims;
  let handler: FullModeHandler;

  beforeAll(async () => {
    etcd = await startLoopbackEtcd();
    state = await openFullModeState(
      SERVER,
      `dhcp:
  mode: full
  subnets: [{ cidr: ${CIDR}, range: [10.9.0.100, 10.9.0.109], leaseSeconds: 600 }]
`,
    );
    claims = await EtcdLeaseClaims.open({
      endpoints: etcd.endpoints,
      prefix: `/stale-${randomBytes(4).toString('hex')}`,
      logger: pino({ level: 'silent' }),
      claimTimeoutMs: 1000,
      registry: {
        self: () => ({
          id: '00000000-0000-4000-8000-000000000001',
          hostname: 'stale-test',
          address: SERVER,
          version: 'test',
          startedAt: 0,
          interfaces: [],
          segments: [CIDR],
          images: [],
        }),
      },
    });
    const pool = new LeasePool(state.config.dhcp.subnets, state.store, 30_000, 60_000);
    handler = new FullModeHandler(pool, SERVER, claims);
  });
  afterAll(async () => {
    await claims?.stop();
    await state?.close();
    await etcd?.stop();
  });

  it('refuses claims as an outage, not as a bad clock: a held address is still renewed from its binding', async () => {
    const at = (p: ReturnType<typeof udhcpcPacket>) => handleAt(handler, state.store, SERVER, p, Date.now());
    const offered = replyOf(await at(udhcpcPacket('discover', X, {})))?.yiaddr as string;
    expect((await at(udhcpcPacket('request', X, { requested: offered, serverId: SERVER }))).outcome).toBe('ack');
    await etcd?.stop();
    etcd = undefined;

    let refused: unknown;
    await waitUntil(
      async () => {
        refused = await claims
          .claim(CIDR, '10.9.0.105', { key: 'k', mac: X, expiresAt: Date.now() + 1000, instance: SERVER }, Date.now())
          .then(
            () => undefined,
            (err: unknown) => err,
          );
        return refused instanceof Error && refused.message.startsWith('clock skew verdict stale:');
      },
      60_000,
      'claims refused for a stale verdict',
      500,
    );
    expect(refused).not.toBeInstanceOf(ClockSkewStop);
    expect(claims.clockHealth()).toMatchObject({ healthy: false, reason: expect.stringMatching(/^clock skew verdict stale:/) });

    const renewed = await at(udhcpcPacket('request', X, { ciaddr: offered }));
    expect(renewed.outcome).toBe('ack-store-unavailable');
    expect(replyOf(renewed)?.yiaddr).toBe(offered);
  });
});
