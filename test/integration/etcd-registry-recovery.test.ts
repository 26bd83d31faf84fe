// Back from an etcd outage, new addresses resume at once (docs/design.md
// "Instances and their clocks"): while etcd was away the clock-skew verdict went
// stale, and a stale verdict refuses every claim. The registry's own beat is set
// to ten minutes here, so only the lease store's "etcd answers again" can bring
// a fresh verdict: a real etcd member on loopback is frozen (SIGSTOP) past the
// staleness bound, then thawed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Etcd3 } from 'etcd3';
import { EtcdLeaseClaims } from '../../server/store/etcd-lease-claims.js';
import { InstanceRegistry } from '../../server/store/instance-registry.js';
import { startLoopbackEtcd, type LoopbackEtcd } from '../lib/etcd.js';
import { waitUntil } from '../lib/wait.js';

const CIDR = '10.9.0.0/24';
const MAC = '52:54:00:de:00:02';

describe('the clock-skew verdict after an etcd outage', () => {
  let etcd: LoopbackEtcd;
  let claims: EtcdLeaseClaims;

  beforeAll(async () => {
    etcd = await startLoopbackEtcd();
    claims = await EtcdLeaseClaims.open({
      endpoints: etcd.endpoints,
      prefix: `/recovery-${randomBytes(4).toString('hex')}`,
      logger: pino({ level: 'silent' }),
      claimTimeoutMs: 500,
      registry: {
        refreshMs: 600_000,
        self: () => ({
          id: '00000000-0000-4000-8000-000000000002',
          hostname: 'recovery-test',
          address: '10.9.0.1',
          version: 'test',
          startedAt: 0,
          interfaces: [],
          segments: [CIDR],
          images: [],
        }),
      },
    });
  });
  afterAll(async () => {
    etcd?.thaw();
    await claims?.stop();
    await etcd?.stop();
  });

  const claim = (ip: string) =>
    claims.claim(CIDR, ip, { key: 'k', mac: MAC, expiresAt: Date.now() + 60_000, instance: '10.9.0.1' }, Date.now());

  it('is refreshed as soon as etcd answers again, and claims succeed', async () => {
    expect(await claim('10.9.0.100')).toEqual({ ok: true });
    etcd.freeze();
    await waitUntil(() => !claims.health().healthy, 30_000, 'the lease store unhealthy', 200);
    await waitUntil(() => claims.clockHealth()?.healthy === false, 60_000, 'the skew verdict stale', 200);
    expect(claims.clockHealth()?.reason).toMatch(/^clock skew verdict stale:/);

    etcd.thaw();
    await waitUntil(() => claims.health().healthy, 60_000, 'the lease store healthy again', 200);
    // The registry's beat is ten minutes away: only the recovery itself refreshes the verdict.
    await waitUntil(() => claims.clockHealth()?.healthy === true, 30_000, 'a fresh skew verdict', 200);
    expect(await claim('10.9.0.101')).toEqual({ ok: true });
  });

  it('etcd back while a refresh still runs (started during the outage): one more refresh as soon as it ends', async () => {
    const record = {
      id: '00000000-0000-4000-8000-000000000003',
      hostname: 'recovery-inflight',
      address: '10.9.0.3',
      version: 'test',
      startedAt: 0,
      interfaces: [],
      segments: [CIDR],
      images: [],
    };
    // self() opens each refresh; held, it keeps one in flight for as long as the test likes.
    let calls = 0;
    let release: (() => void) | undefined;
    const client = new Etcd3({ hosts: etcd.endpoints });
    const registry = await InstanceRegistry.open({
      client,
      prefix: `/recovery-${randomBytes(4).toString('hex')}`,
      endpoints: etcd.endpoints,
      timeoutMs: 30_000,
      logger: pino({ level: 'silent' }),
      refreshMs: 600_000,
      self: () => {
        calls++;
        return calls === 2 ? new Promise((resolve) => (release = () => resolve(record))) : record;
      },
    });
    try {
      expect(calls).toBe(1);
      registry.refreshNow();
      expect(calls).toBe(2);
      registry.refreshAfterRecovery();
      expect(calls).toBe(2);
      release?.();
      await waitUntil(() => calls === 3, 30_000, 'the refresh after the one in flight', 100);
    } finally {
      await registry.stop();
      client.close();
    }
  });
});
