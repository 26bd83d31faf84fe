// The instance registry (server/store/instance-registry.ts) against one real etcd
// member on loopback (docs/design.md "Instances and their clocks"):
// - two live processes publishing one id (a copied state directory) find each
//   other by their incarnations and refuse new addresses as an outage does (not
//   as a bad clock), with an error naming the id, its file and the other one;
//   a dead predecessor's value (a restart within the TTL) is not a twin;
// - a forged record on our id (1 MB of text with control characters) reaches
//   neither a claim's rejection (which the DHCP log repeats per exchange) nor
//   the registry's log lines unbounded, and our publish goes on;
// - a record too large for etcd's request limit twice over is still published
//   (one put, not a txn carrying it in both branches);
// - a self() that never settles (a hung images.dir) does not stop the refreshes;
// - stop() waits for a refresh in flight, so nothing is published after it;
// - the images published follow the images directory on disk (read
//   asynchronously on every refresh).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Etcd3 } from 'etcd3';
import { pino, type Logger } from 'pino';
import { EtcdLeaseClaims } from '../../server/store/etcd-lease-claims.js';
import {
  DUPLICATE_REFUSAL,
  imagesHeld,
  InstanceRegistry,
  type RegistryOptions,
  parseInstance,
  UNSHOWN,
  type InstanceRecord,
} from '../../server/store/instance-registry.js';
import { ClockSkewStop } from '../../server/store/lease-claims.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { handleAt, openFullModeState, udhcpcPacket } from '../lib/dhcp-full-mode.js';
import { startLoopbackEtcd, type LoopbackEtcd } from '../lib/etcd.js';
import { waitUntil } from '../lib/wait.js';

const CIDR = '10.9.0.0/24';
const ID = '00000000-0000-4000-8000-0000000000d1';

/** A logger whose lines land in `lines` (pino writes to the stream after a tick). */
function capture(lines: Array<Record<string, unknown>>): Logger {
  return pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
}

const self = (address: string, hostname: string) => ({
  id: ID,
  hostname,
  address,
  version: 'test',
  startedAt: 0,
  interfaces: [],
  segments: [CIDR],
  images: [],
});

describe('the instance registry on a real etcd member', () => {
  let etcd: LoopbackEtcd;
  /** A registry on this test's member, under `prefix`. */
  const openRegistry = (client: Etcd3, prefix: string, options: Omit<RegistryOptions, 'client' | 'prefix' | 'endpoints'>) =>
    InstanceRegistry.open({ client, prefix, endpoints: etcd.endpoints, ...options });
  let dir: string;
  beforeAll(async () => {
    etcd = await startLoopbackEtcd();
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-registry-'));
  });
  afterAll(async () => {
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const prefix = () => `/registry-${randomBytes(4).toString('hex')}`;
  const record = async (key: string): Promise<InstanceRecord | undefined> => {
    const out = await etcd.ctl(['get', key, '--print-value-only']);
    return out.trim() === '' ? undefined : parseInstance(out.trim());
  };

  it('two live instances on one id: each refuses new addresses as in an outage, says who the other is, and allocates again once it is gone', async () => {
    const p = prefix();
    const logs1: Array<Record<string, unknown>> = [];
    const open = (address: string, hostname: string, logs: Array<Record<string, unknown>>) =>
      EtcdLeaseClaims.open({
        endpoints: etcd.endpoints,
        prefix: p,
        logger: capture(logs),
        claimTimeoutMs: 2000,
        registry: { refreshMs: 300, idFile: '/var/lib/bootfarm/instance-id', self: () => self(address, hostname) },
      });
    const one = await open('10.9.0.1', 'host-one', logs1);
    const two = await open('10.9.0.2', 'host-two', []);
    let twoStopped = false;
    try {
      await waitUntil(() => one.identityHealth()?.healthy === false, 60_000, 'instance 1 sees the other on its id', 100);
      await waitUntil(() => two.identityHealth()?.healthy === false, 60_000, 'instance 2 sees the other on its id', 100);
      expect(one.identityHealth()?.reason).toBe(DUPLICATE_REFUSAL);
      // The outage's refusal (renewals from the binding go on), not the bad clock's silence.
      const refused = await one
        .claim(CIDR, '10.9.0.100', { key: 'k', mac: '52:54:00:d1:00:01', expiresAt: Date.now() + 60_000, instance: '10.9.0.1' }, Date.now())
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refused).toBeInstanceOf(Error);
      expect(refused).not.toBeInstanceOf(ClockSkewStop);
      expect((refused as Error).message).toBe(DUPLICATE_REFUSAL);
      expect(one.clockHealth()?.healthy).toBe(true);
      const error = logs1.find((l) => l.level === 50);
      expect(error).toMatchObject({ id: ID, idFile: '/var/lib/bootfarm/instance-id', otherHostname: 'host-two', otherAddress: '10.9.0.2' });
      // What `bootfarm status` shows: whichever wrote last names the other.
      await waitUntil(
        async () => (await record(`${p}/instances/${ID}`))?.duplicateOf !== undefined,
        30_000,
        'the duplicate published',
        100,
      );

      await two.stop();
      twoStopped = true;
      // Once the other has written nothing for a TTL, this one allocates again.
      await waitUntil(() => one.identityHealth()?.healthy === true, 60_000, 'instance 1 alone on its id again', 200);
      expect(
        await one.claim(
          CIDR,
          '10.9.0.101',
          { key: 'k', mac: '52:54:00:d1:00:01', expiresAt: Date.now() + 60_000, instance: '10.9.0.1' },
          Date.now(),
        ),
      ).toEqual({ ok: true });
      await waitUntil(async () => (await record(`${p}/instances/${ID}`))?.duplicateOf === undefined, 30_000, 'the duplicate cleared', 100);
    } finally {
      if (!twoStopped) await two.stop();
      await one.stop();
    }
  });

  it("a dead predecessor's value on the id (a restart within the TTL) is not another instance", async () => {
    const p = prefix();
    const key = `${p}/instances/${ID}`;
    // What a killed process left: its value, on a lease still running, with its own incarnation.
    const lease = (await etcd.ctl(['lease', 'grant', '60'])).match(/lease (\S+) granted/)?.[1] as string;
    const left = { ...self('10.9.0.1', 'host-one'), clock: Date.now(), skew: { stopped: false }, incarnation: 'dead-process' };
    await etcd.ctl(['put', key, JSON.stringify(left), `--lease=${lease}`]);
    const client = new Etcd3({ hosts: etcd.endpoints });
    const registry = await openRegistry(client, p, {
      timeoutMs: 2000,
      logger: pino({ level: 'silent' }),
      refreshMs: 300,
      self: () => self('10.9.0.1', 'host-one'),
    });
    try {
      // Several refreshes past the overwrite: each finds its own write there.
      const first = await record(key);
      expect(first?.incarnation).not.toBe('dead-process');
      await waitUntil(async () => (await record(key))?.clock !== first?.clock, 30_000, 'a later refresh', 100);
      expect(registry.identityHealth().healthy).toBe(true);
      expect(registry.refusal()).toBeUndefined();
    } finally {
      await registry.stop();
      client.close();
      await etcd.ctl(['lease', 'revoke', lease]);
    }
  });

  it('a forged 1 MB record on our id: the claim is refused with a fixed reason, the log names it bounded, and our record is still published', async () => {
    const p = prefix();
    const key = `${p}/instances/${ID}`;
    const logs: Array<Record<string, unknown>> = [];
    const claims = await EtcdLeaseClaims.open({
      endpoints: etcd.endpoints,
      prefix: p,
      logger: capture(logs),
      claimTimeoutMs: 2000,
      registry: { refreshMs: 300, self: () => self('10.9.0.1', 'host-one') },
    });
    // The full-mode handler over these claims, as dhcp-service.ts drives it: its result's detail is what the exchange's log line spreads.
    const state = await openFullModeState(
      '10.9.0.1',
      'dhcp:\n  mode: full\n  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.109] }]\n',
    );
    const handler = new FullModeHandler(new LeasePool(state.config.dhcp.subnets, state.store, 30_000, 60_000), '10.9.0.1', claims);
    const writer = new Etcd3({ hosts: etcd.endpoints });
    const huge = `evil\u001b]0;owned\u0007\u009b31m\u202e${'h'.repeat(1024 * 1024)}`;
    const forged = {
      ...self(`10.9.0.66\u001b[A${'a'.repeat(1000)}`, huge),
      clock: Date.now(),
      skew: { stopped: false },
      incarnation: 'forged',
    };
    try {
      // Put after our first write, as a live twin would: with another incarnation.
      await writer.put(key).value(JSON.stringify(forged));
      await waitUntil(() => claims.identityHealth()?.healthy === false, 60_000, 'the forged record seen', 100);
      const refused = await claims
        .claim(CIDR, '10.9.0.100', { key: 'k', mac: '52:54:00:d1:00:02', expiresAt: Date.now() + 60_000, instance: '10.9.0.1' }, Date.now())
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      // What full-handler.ts puts in the DHCP exchange's detail.reason.
      expect((refused as Error).message).toBe(DUPLICATE_REFUSAL);
      expect(claims.identityHealth()?.reason).toBe(DUPLICATE_REFUSAL);
      const answer = await handleAt(handler, state.store, '10.9.0.1', udhcpcPacket('discover', '52:54:00:d1:00:03', {}), Date.now());
      expect(answer.outcome).toBe('store-unavailable');
      expect(answer.detail).toEqual({ ip: '10.9.0.100', reason: DUPLICATE_REFUSAL });
      const error = logs.find((l) => l.level === 50);
      expect(error).toMatchObject({ id: ID, otherHostname: UNSHOWN, otherAddress: UNSHOWN });
      for (const l of logs) expect(JSON.stringify(l).length).toBeLessThan(2000);
      // Our record replaces the forged one on the next refreshes, naming it bounded.
      await waitUntil(async () => (await record(key))?.incarnation !== 'forged', 30_000, 'our record back', 100);
      await waitUntil(async () => (await record(key))?.duplicateOf !== undefined, 30_000, 'the duplicate published', 100);
      expect((await record(key))?.duplicateOf).toEqual({ hostname: UNSHOWN, address: UNSHOWN });
    } finally {
      writer.close();
      await claims.stop();
      await state.close();
    }
  });

  it("a record larger than half etcd's request limit is published (one put, not the value twice in a txn)", async () => {
    const p = prefix();
    const key = `${p}/instances/${ID}`;
    const client = new Etcd3({ hosts: etcd.endpoints });
    // ~0.9 MB of image versions: once fits etcd's 1.5 MiB request limit, twice does not.
    const versions = Array.from({ length: 9000 }, (_, i) => `v${String(i).padStart(6, '0')}-${'x'.repeat(90)}`);
    const registry = await openRegistry(client, p, {
      timeoutMs: 5000,
      logger: pino({ level: 'silent' }),
      refreshMs: 300,
      self: () => ({ ...self('10.9.0.1', 'host-one'), images: [{ image: 'big', versions }] }),
    });
    try {
      const first = await record(key);
      expect(first?.images[0]?.versions).toHaveLength(9000);
      await waitUntil(async () => (await record(key))?.clock !== first?.clock, 30_000, 'a later refresh published', 100);
      expect(registry.identityHealth().healthy).toBe(true);
    } finally {
      await registry.stop();
      client.close();
    }
  });

  it('a self() that never settles (a hung images.dir): refreshes go on with the last reading, and the verdict stays fresh', async () => {
    const p = prefix();
    const key = `${p}/instances/${ID}`;
    const client = new Etcd3({ hosts: etcd.endpoints });
    const logs: Array<Record<string, unknown>> = [];
    let calls = 0;
    let hang = false;
    let verdicts = 0;
    const registry = await openRegistry(client, p, {
      timeoutMs: 1000,
      logger: capture(logs),
      refreshMs: 300,
      onVerdict: () => void verdicts++,
      self: () => {
        calls++;
        return hang ? new Promise<never>(() => undefined) : self('10.9.0.1', 'host-one');
      },
    });
    try {
      hang = true;
      const before = verdicts;
      const clock = (await record(key))?.clock;
      await waitUntil(() => verdicts >= before + 3, 60_000, 'three refreshes past the hung self()', 100);
      expect((await record(key))?.clock).not.toBe(clock);
      expect((await record(key))?.hostname).toBe('host-one');
      expect(registry.refusal()).toBeUndefined();
      expect(registry.clockHealth().healthy).toBe(true);
      // The hung call is not repeated on each beat.
      expect(calls).toBe(2);
      expect(logs.some((l) => typeof l.msg === 'string' && l.msg.includes('not read in time'))).toBe(true);
    } finally {
      await registry.stop();
      client.close();
    }
  });

  it('stop() waits for a refresh in flight: the refresh ends before stop resolves, and nothing is published after it', async () => {
    const p = prefix();
    const client = new Etcd3({ hosts: etcd.endpoints });
    let verdicts = 0;
    let gate: Promise<void> | undefined;
    let release = () => {};
    let held = false;
    const registry = await openRegistry(client, p, {
      timeoutMs: 2000,
      logger: pino({ level: 'silent' }),
      refreshMs: 600_000,
      onVerdict: () => void verdicts++,
      // A refresh is held at its start until released: "in flight" made certain.
      self: async () => {
        if (gate) {
          held = true;
          await gate;
        }
        return self('10.9.0.1', 'host-one');
      },
    });
    try {
      expect(verdicts).toBe(1);
      gate = new Promise((r) => {
        release = r;
      });
      registry.refreshNow();
      expect(held).toBe(true);
      const stopped = registry.stop().then(() => verdicts);
      release();
      // The refresh finished (its verdict made) before stop resolved, and stop revoked the lease it published on.
      expect(await stopped).toBe(2);
      expect(await record(`${p}/instances/${ID}`)).toBeUndefined();
    } finally {
      release();
      await registry.stop();
      client.close();
    }
  });

  it('the images published follow the images directory: a version added, current moved, an image removed', async () => {
    const p = prefix();
    const images = path.join(dir, 'images');
    mkdirSync(path.join(images, 'debian', '2026-12-01'), { recursive: true });
    symlinkSync('2026-12-01', path.join(images, 'debian', 'current'));
    mkdirSync(path.join(images, 'alpine', 'v1'), { recursive: true });
    const client = new Etcd3({ hosts: etcd.endpoints });
    const registry = await openRegistry(client, p, {
      timeoutMs: 2000,
      logger: pino({ level: 'silent' }),
      refreshMs: 300,
      self: async () => ({ ...self('10.9.0.1', 'host-one'), images: await imagesHeld(images) }),
    });
    const key = `${p}/instances/${ID}`;
    try {
      expect((await record(key))?.images).toEqual([
        { image: 'alpine', versions: ['v1'] },
        { image: 'debian', current: '2026-12-01', versions: ['2026-12-01'] },
      ]);
      mkdirSync(path.join(images, 'debian', '2026-12-07'));
      unlinkSync(path.join(images, 'debian', 'current'));
      symlinkSync('2026-12-07', path.join(images, 'debian', 'current'));
      rmSync(path.join(images, 'alpine'), { recursive: true });
      const want = [{ image: 'debian', current: '2026-12-07', versions: ['2026-12-01', '2026-12-07'] }];
      await waitUntil(
        async () => JSON.stringify((await record(key))?.images) === JSON.stringify(want),
        30_000,
        'the new version published',
        100,
      );
    } finally {
      await registry.stop();
      client.close();
    }
  });
});
