// Address allocation rules (RFC 2131 §4.3.1) on a real FileStore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig, type ResolvedConfig } from '../../server/config/load.js';
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
    config = parseConfig(`
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp: { mode: full, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.102], leaseSeconds: 60 }] }
nodes: [{ mac: "52:54:00:00:00:01", hostname: node-1, ip: 10.9.0.101 }]
`, 'pool.yaml');
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const subnet = () => config.dhcp.subnets[0] as ResolvedConfig['dhcp']['subnets'][number];
  const alloc = (key: string, now = t0, requested?: string, reserved?: string) => pool.allocate(subnet(), key, key, requested, reserved, now);

  it('never hands a reserved address to another client, and gives it to its owner', async () => {
    expect(alloc('a')).toEqual({ ok: true, ip: '10.9.0.100' });
    expect(alloc('b')).toEqual({ ok: true, ip: '10.9.0.102' });
    await pool.bind('10.9.0.100', 'a', 'a', 60, undefined, t0);
    await pool.bind('10.9.0.102', 'b', 'b', 60, undefined, t0);
    expect(alloc('c')).toEqual({ ok: false, reason: 'address pool of 10.9.0.0/24 is exhausted' });
    expect(pool.allocate(subnet(), '52:54:00:00:00:01', '52:54:00:00:00:01', undefined, '10.9.0.101', t0)).toEqual({ ok: true, ip: '10.9.0.101' });
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
    expect(await pool.decline('10.9.0.100', 'a', 'a', t0 + 1)).toBe(true);
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
