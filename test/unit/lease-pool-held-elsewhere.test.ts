// Addresses another bootfarm instance's client holds (store.backend: etcd, whose
// watch feeds LeasePool.setHeldElsewhere) are never offered here, in none of the
// ways allocate() chooses; the same client may have its address; a reservation
// stays its owner's whatever the claims say. On a real FileStore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';

describe('lease pool: addresses held through another instance', () => {
  let dir: string;
  let config: ResolvedConfig;
  let store: FileStore;
  let pool: LeasePool;
  /** ip -> [client key, expiry] as another instance claimed it. */
  let elsewhere: Map<string, [string, number]>;
  const t0 = 1_800_000_000_000;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pool-'));
    config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp: { mode: full, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.102], leaseSeconds: 60 }] }
nodes: [{ mac: "52:54:00:00:00:01", hostname: node-1, ip: 10.9.0.50 }]
`,
      'pool.yaml',
    );
    store = (await FileStore.open(dir, config.nodes)).store;
    pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000);
    elsewhere = new Map();
    pool.setHeldElsewhere((ip, key, now) => {
      const held = elsewhere.get(ip);
      return held !== undefined && held[0] !== key && held[1] > now;
    });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const subnet = () => config.dhcp.subnets[0] as ResolvedConfig['dhcp']['subnets'][number];
  const alloc = (key: string, now = t0, requested?: string, reserved?: string) =>
    pool.allocate(subnet(), key, key, requested, reserved, now);

  it('skips a fresh address and a requested one another instance holds, until that claim expires', () => {
    elsewhere.set('10.9.0.100', ['other', t0 + 1000]);
    expect(alloc('a', t0, '10.9.0.100')).toEqual({ ok: true, ip: '10.9.0.101' });
    expect(pool.isAvailableTo(0x0a090064, 'a', 'a', t0 + 999)).toBe(false);
    expect(pool.isAvailableTo(0x0a090064, 'a', 'a', t0 + 1000)).toBe(true);
    expect(pool.isAvailableTo(0x0a090064, 'other', 'other', t0)).toBe(true);
    expect(alloc('b', t0 + 1000, '10.9.0.100')).toEqual({ ok: true, ip: '10.9.0.100' });
  });

  it("does not give a client its previous address back once another instance's client holds it", async () => {
    await pool.bind('10.9.0.100', 'a', 'a', 1, undefined, t0);
    elsewhere.set('10.9.0.100', ['other', t0 + 60_000]);
    expect(alloc('a', t0 + 2000)).toEqual({ ok: true, ip: '10.9.0.101' });
    // A claim elsewhere in the client's own name (its other server offered it too) does not keep it from that address.
    elsewhere.set('10.9.0.102', ['c', t0 + 60_000]);
    expect(alloc('c', t0 + 2000, '10.9.0.102')).toEqual({ ok: true, ip: '10.9.0.102' });
  });

  it("a reservation is its owner's whatever another instance claims", () => {
    elsewhere.set('10.9.0.50', ['other', t0 + 60_000]);
    expect(alloc('52:54:00:00:00:01', t0, undefined, '10.9.0.50')).toEqual({ ok: true, ip: '10.9.0.50' });
    expect(pool.isAvailableTo(0x0a090032, 'x', '52:54:00:00:00:01', t0)).toBe(true);
  });
});
