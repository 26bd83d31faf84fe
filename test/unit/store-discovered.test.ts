// Machines in no inventory (unknownNodes: discover) are bounded by
// server.maxDiscovered: the one seen longest ago is evicted and counted, on the
// wire and on load. A DISCOVER looks its machine up by MAC (and a Pi by serial)
// without copying the whole set.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import { FileStore } from '../../server/store/store.js';
import type { DiscoveredMachine } from '../../server/store/discovered-index.js';
import { Inventory } from '../../server/inventory/inventory.js';
import { Metrics } from '../../server/metrics.js';
import type { ClientIdentity } from '../../server/dhcp/codec/identity.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');
const macOf = (i: number) =>
  `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const machine = (i: number, seenAt = t0 + i * 1000, piSerial?: string): DiscoveredMachine => ({
  mac: macOf(i),
  arch: 'amd64',
  firmware: 'uefi',
  piSerial,
  piModel: undefined,
  firstSeen: new Date(t0).toISOString(),
  lastSeen: new Date(seenAt).toISOString(),
});
const metricValue = async (metrics: Metrics, name: string) => (await metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value;

describe('state store: discovered machines', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-disc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps at most maxDiscovered, evicting the one seen longest ago, and counts evictions', async () => {
    const metrics = new Metrics();
    const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 100, metrics });
    for (let i = 0; i < 100; i++) store.putDiscovered(machine(i));
    // Machine 0 asks again: it is now the newest; machine 1 is the oldest.
    store.putDiscovered(machine(0, t0 + 500_000));
    for (let i = 100; i < 150; i++) store.putDiscovered(machine(i, t0 + 600_000 + i));
    expect(store.discovered()).toHaveLength(100);
    expect(store.discoveredByMac(macOf(0))).toBeDefined();
    for (let i = 1; i <= 50; i++) expect(store.discoveredByMac(macOf(i))).toBeUndefined();
    expect(store.discoveredByMac(macOf(51))).toBeDefined();
    expect(await metricValue(metrics, 'bootfarm_discovered_evicted_total')).toBe(50);
    expect(await metricValue(metrics, 'bootfarm_discovered_machines')).toBe(100);
    await store.close();
  });

  it('finds a discovered Pi by serial, and forgets the serial with the machine', async () => {
    const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 2 });
    store.putDiscovered(machine(1, t0, '1a2b3c4d'));
    expect(store.discoveredByPiSerial('1a2b3c4d')?.mac).toBe(macOf(1));
    store.putDiscovered(machine(2));
    store.putDiscovered(machine(3));
    expect(store.discoveredByPiSerial('1a2b3c4d')).toBeUndefined();
    await store.close();
  });

  it('applies the bound on load, by lastSeen, whatever order the files hold them in', async () => {
    // The release before kept first-seen order: here the newest machines come first.
    mkdirSync(dir, { recursive: true });
    const records = Array.from({ length: 150 }, (_, i) => ({ t: 'discovered', machine: machine(i, t0 + (150 - i) * 1000) }));
    writeFileSync(path.join(dir, 'state.snapshot.json'), JSON.stringify(records));
    const metrics = new Metrics();
    const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 100, metrics });
    expect(store.discovered()).toHaveLength(100);
    for (let i = 0; i < 100; i++) expect(store.discoveredByMac(macOf(i))).toBeDefined();
    expect(store.discoveredByMac(macOf(100))).toBeUndefined();
    expect(await metricValue(metrics, 'bootfarm_discovered_evicted_total')).toBe(50);
    await store.close();
    // The rewrite kept only the 100: a second start evicts nothing.
    const again = await FileStore.open(dir, [], false, { maxDiscovered: 100 });
    expect(again.store.discovered()).toHaveLength(100);
    await again.store.close();
  });

  it('a DISCOVER from an unknown machine never copies the discovered set', async () => {
    const config = parseConfig(`server: { address: 10.9.0.1, stateDir: ${dir} }\nunknownNodes: discover\n`, 'disc.yaml');
    const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 500 });
    const copies = vi.spyOn(store, 'discovered');
    let now = t0;
    const inventory = new Inventory({ config }, store, () => now);
    const identity = (i: number): ClientIdentity => ({
      mac: macOf(i),
      leaseKey: macOf(i),
      vendorClass: 'PXEClient',
      archCodes: [7],
      archCode: 7,
      cpu: 'x86_64',
      firmware: 'uefi',
      wantsNetboot: true,
      ipxe: undefined,
      raspberryPi: undefined,
      machineId: undefined,
    });
    for (let i = 0; i < 2000; i++) {
      now += 10;
      inventory.discover(identity(i % 1000));
    }
    expect(copies).not.toHaveBeenCalled();
    expect(store.discoveredByMac(macOf(999))?.arch).toBe('amd64');
    expect(store.discovered()).toHaveLength(500);
    await store.close();
  });
});
