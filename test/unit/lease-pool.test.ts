// Address allocation rules (RFC 2131 §4.3.1) on a real FileStore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';

describe('lease pool', () => {
  let dir: string;
  let config: ResolvedConfig;
  let store: FileStore;
  let pool: LeasePool;
  const t0 = 1_800_000_000_000;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pool-'));
    config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp: { mode: full, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.102], leaseSeconds: 60 }] }
nodes: [{ mac: "52:54:00:00:00:01", hostname: node-1, ip: 10.9.0.101 }]
`,
      'pool.yaml',
    );
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const subnet = () => config.dhcp.subnets[0] as ResolvedConfig['dhcp']['subnets'][number];
  const alloc = (key: string, now = t0, requested?: string, reserved?: string) =>
    pool.allocate(subnet(), key, key, requested, reserved, now);

  it('never hands a reserved address to another client, and gives it to its owner', async () => {
    expect(alloc('a')).toEqual({ ok: true, ip: '10.9.0.100' });
    expect(alloc('b')).toEqual({ ok: true, ip: '10.9.0.102' });
    await pool.bind('10.9.0.100', 'a', 'a', 60, undefined, t0);
    await pool.bind('10.9.0.102', 'b', 'b', 60, undefined, t0);
    expect(alloc('c')).toEqual({ ok: false, reason: 'address pool of 10.9.0.0/24 is exhausted' });
    expect(pool.allocate(subnet(), '52:54:00:00:00:01', '52:54:00:00:00:01', undefined, '10.9.0.101', t0)).toEqual({
      ok: true,
      ip: '10.9.0.101',
    });
  });

  it('re-offers the same address to a client that asks again, and honours option 50 when free', () => {
    expect(alloc('a', t0, '10.9.0.102')).toEqual({ ok: true, ip: '10.9.0.102' });
    expect(alloc('a', t0 + 1000)).toEqual({ ok: true, ip: '10.9.0.102' });
  });

  it('gives a returning client its previous binding after release, and reuses expired leases', async () => {
    await pool.bind('10.9.0.102', 'a', 'a', 60, undefined, t0);
    expect(await pool.release('10.9.0.102', 'a', t0 + 1)).toBe(true);
    expect(alloc('a', t0 + 2)).toEqual({ ok: true, ip: '10.9.0.102' });
    await pool.bind('10.9.0.100', 'b', 'b', 60, undefined, t0);
    await pool.bind('10.9.0.102', 'a', 'a', 60, undefined, t0);
    expect(alloc('c', t0 + 10_000)).toMatchObject({ ok: false });
    // After b's lease expires its address can go to c.
    expect(alloc('c', t0 + 61_000)).toEqual({ ok: true, ip: '10.9.0.100' });
  });

  it('treats offer holds as soft: a flood of DISCOVERs cannot lock out a new client', () => {
    expect(alloc('flood-1').ok).toBe(true);
    expect(alloc('flood-2').ok).toBe(true);
    expect(alloc('real', t0 + 5)).toEqual({ ok: true, ip: '10.9.0.100' });
  });

  it('quarantines a declined address and does not give it back to the decliner', async () => {
    expect(alloc('a')).toEqual({ ok: true, ip: '10.9.0.100' });
    expect(await pool.decline('10.9.0.100', 'a', 'a', t0 + 1)).toBe('declined');
    expect(alloc('a', t0 + 2)).toEqual({ ok: true, ip: '10.9.0.102' });
    expect(pool.isAvailableTo(0x0a090064, 'z', 'z', t0 + 599_000)).toBe(false);
    expect(pool.isAvailableTo(0x0a090064, 'z', 'z', t0 + 601_001)).toBe(true);
  });

  it('persists bindings: a new pool over the reopened store knows them', async () => {
    await pool.bind('10.9.0.100', 'a', 'a', 60, 'host-a', t0);
    await store.close();
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000);
    expect(pool.binding('a', t0 + 1)).toMatchObject({ ip: '10.9.0.100', hostname: 'host-a', state: 'bound' });
    expect(alloc('b', t0 + 1)).toEqual({ ok: true, ip: '10.9.0.102' });
  });
});

describe('lease pool under hostile clients', () => {
  let dir: string;
  let config: ResolvedConfig;
  let store: FileStore;
  let pool: LeasePool;
  const t0 = 1_800_000_000_000;
  const subnet = () => config.dhcp.subnets[0] as ResolvedConfig['dhcp']['subnets'][number];
  const alloc = (key: string, now = t0) => pool.allocate(subnet(), key, key, undefined, undefined, now);

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pool-'));
    config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp: { mode: full, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.119], leaseSeconds: 60 }] }
`,
      'pool.yaml',
    );
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000, { unknownLeasePercent: 50, maxQuarantinedPercent: 10 }, t0);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client has a claim only to what it was offered or holds', async () => {
    const offered = alloc('a');
    if (!offered.ok) throw new Error(offered.reason);
    expect(pool.hasClaim('a', offered.ip)).toBe(true);
    expect(pool.hasClaim('b', offered.ip)).toBe(false);
    expect(pool.hasClaim('a', '10.9.0.119')).toBe(false);
    expect(pool.hasClaim('never-seen', '10.9.0.110')).toBe(false);
    await pool.bind(offered.ip, 'a', 'a', 60, undefined, t0);
    // The offer is gone once bound; the binding is the claim now (renewals).
    expect(pool.hasClaim('a', offered.ip)).toBe(true);
    expect(await pool.decline(offered.ip, 'a', 'a', t0 + 1)).toBe('declined');
    expect(pool.hasClaim('a', offered.ip)).toBe(false);
  });

  it('machines in no inventory hold at most unknownLeasePercent of the range, counted while they hold it', () => {
    for (let i = 0; i < 10; i++) {
      expect(pool.unknownCapReached(subnet(), t0)).toBe(false);
      const r = alloc(`u${i}`);
      if (!r.ok) throw new Error(r.reason);
      pool.noteUnknownHolder(r.ip, `u${i}`);
    }
    expect(pool.unknownCapReached(subnet(), t0)).toBe(true);
    expect(pool.holds('u3', t0)).toBe(true);
    expect(pool.holds('newcomer', t0)).toBe(false);
    // Offers are held 30 s: after that they no longer count.
    expect(pool.unknownCapReached(subnet(), t0 + 30_001)).toBe(false);
  });

  it('quarantines at most maxQuarantinedPercent of the range; DECLINE of an address never offered is ignored', async () => {
    expect(await pool.decline('10.9.0.110', 'stranger', 'stranger', t0)).toBe('not-offered');
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = alloc(`d${i}`);
      if (!r.ok) throw new Error(r.reason);
      results.push(await pool.decline(r.ip, `d${i}`, `d${i}`, t0));
    }
    // 10% of 20 addresses.
    expect(results).toEqual(['declined', 'declined', 'quarantine-full', 'quarantine-full']);
    const later = alloc('d9', t0 + 600_001);
    if (!later.ok) throw new Error(later.reason);
    expect(await pool.decline(later.ip, 'd9', 'd9', t0 + 600_001)).toBe('declined');
  });

  it('a machine in no inventory takes back only an offer older than 2 s; an inventory node any', () => {
    for (let i = 0; i < 20; i++) expect(alloc(`f${i}`, t0).ok).toBe(true);
    const unknown = (now: number) => pool.allocate(subnet(), 'newcomer', 'newcomer', undefined, undefined, now, false);
    // Every address is offered, and each offer is 1 s old: a client mid-exchange keeps it.
    expect(unknown(t0 + 1000)).toEqual({ ok: false, reason: 'address pool of 10.9.0.0/24 is exhausted' });
    expect(pool.hasClaim('f0', '10.9.0.100')).toBe(true);
    expect(pool.allocate(subnet(), 'node', 'node', undefined, undefined, t0 + 1000, true).ok).toBe(true);
    // 2 s on, the oldest offer may go to the newcomer.
    expect(unknown(t0 + 2000).ok).toBe(true);
  });

  it('at the unknown-machine cap, an offer older than 2 s is given up for a newcomer; a lease never is', async () => {
    for (let i = 0; i < 10; i++) {
      const r = alloc(`u${i}`, t0);
      if (!r.ok) throw new Error(r.reason);
      pool.noteUnknownHolder(r.ip, `u${i}`);
    }
    expect(pool.unknownCapReached(subnet(), t0 + 500)).toBe(true);
    expect(pool.releaseStaleUnknownOffer(subnet(), t0 + 500)).toBe(false);
    expect(pool.releaseStaleUnknownOffer(subnet(), t0 + 2000)).toBe(true);
    expect(pool.unknownCapReached(subnet(), t0 + 2000)).toBe(false);
    // Bound leases are never given up.
    const bound = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000, { unknownLeasePercent: 10, maxQuarantinedPercent: 10 }, t0);
    for (let i = 0; i < 2; i++) {
      const r = bound.allocate(subnet(), `b${i}`, `b${i}`, undefined, undefined, t0);
      if (!r.ok) throw new Error(r.reason);
      bound.noteUnknownHolder(r.ip, `b${i}`);
      await bound.bind(r.ip, `b${i}`, `b${i}`, 60, undefined, t0);
    }
    expect(bound.unknownCapReached(subnet(), t0 + 5000)).toBe(true);
    expect(bound.releaseStaleUnknownOffer(subnet(), t0 + 5000)).toBe(false);
  });

  it('forgets offers to MACs that never came back, so random MACs cannot grow the offer table', () => {
    // One DISCOVER every 2 s: each offer's 30 s hold runs out, so its address is reused
    // without taking the offer back, and only the sweep forgets the old MAC.
    for (let i = 0; i < 5_000; i++) alloc(`m${i}`, t0 + i * 2000);
    // 2 x range + 1024, at most.
    expect(pool.offerCount).toBeLessThanOrEqual(2 * 20 + 1024 + 1);
  });
});
