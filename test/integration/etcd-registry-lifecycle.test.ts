// The instance registry (server/store/instance-registry.ts) against one real etcd
// member on loopback (docs/design.md "Instances and their clocks"):
// - two live processes publishing one id (a copied state directory) find each
//   other by their incarnations and refuse new addresses as an outage does (not
//   as a bad clock), with an error naming the id, its file and the other one;
//   a dead predecessor's value (a restart within the TTL) is not a twin;
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
import { imagesHeld, InstanceRegistry, parseInstance, type InstanceRecord } from '../../server/store/instance-registry.js';
import { ClockSkewStop } from '../../server/store/lease-claims.js';
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
      expect(one.identityHealth()?.reason).toBe('instance id shared with host-two (10.9.0.2)');
      // The outage's refusal (renewals from the binding go on), not the bad clock's silence.
      const refused = await one
        .claim(CIDR, '10.9.0.100', { key: 'k', mac: '52:54:00:d1:00:01', expiresAt: Date.now() + 60_000, instance: '10.9.0.1' }, Date.now())
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refused).toBeInstanceOf(Error);
      expect(refused).not.toBeInstanceOf(ClockSkewStop);
      expect((refused as Error).message).toContain('host-two (10.9.0.2)');
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
    const registry = await InstanceRegistry.open({
      client,
      prefix: p,
      endpoints: etcd.endpoints,
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

  it('stop() waits for a refresh in flight: the refresh ends before stop resolves, and nothing is published after it', async () => {
    const p = prefix();
    const client = new Etcd3({ hosts: etcd.endpoints });
    let verdicts = 0;
    let gate: Promise<void> | undefined;
    let release = () => {};
    let held = false;
    const registry = await InstanceRegistry.open({
      client,
      prefix: p,
      endpoints: etcd.endpoints,
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
    const registry = await InstanceRegistry.open({
      client,
      prefix: p,
      endpoints: etcd.endpoints,
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
