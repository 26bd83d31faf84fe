// State store at scale, in one process (figures for bench/RESULTS.md):
//  1. lease commits/s through FileStore.putLease, 64 in flight, syncWrites true and false;
//  2. the cost of one DISCOVER from a new MAC (Inventory.discover) with 100,000
//     machines already discovered (server.maxDiscovered raised to hold them);
//  3. a restart of 200,000 discovered machines + 1,000 nodes x 200 events + 2,000
//     leases: build time, load time, files' size, and the process's peak RSS.
// Usage: node --import tsx bench/state-scale.ts [--leases-only] [WORK_DIR]   (prints one JSON object)
// --leases-only: part 1 alone (it runs on releases before server.maxDiscovered too).
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileStore } from '../server/store/store.js';
import { Inventory } from '../server/inventory/inventory.js';
import { parseConfig } from '../server/config/load.js';
import type { ClientIdentity } from '../server/dhcp/codec/identity.js';

const leasesOnly = process.argv.includes('--leases-only');
const workArg = process.argv.slice(2).find((a) => !a.startsWith('--'));
const work = workArg ?? mkdtempSync(path.join(tmpdir(), 'bootfarm-state-bench-'));
const t0 = Date.parse('2026-01-01T00:00:00Z');
const mac = (prefix: number, i: number) =>
  [prefix, 0x54, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

async function leaseCommits(sync: boolean): Promise<number> {
  const dir = path.join(work, `leases-${sync}`);
  const { store } = await FileStore.open(dir, [], sync);
  const total = 20_000;
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = next++; i < total; i = next++)
        await store.putLease({
          ip: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
          key: `k${i}`,
          mac: mac(0x5a, i),
          state: 'bound',
          expiresAt: t0,
          updatedAt: t0,
        });
    }),
  );
  const rate = total / (ms(start) / 1000);
  await store.close();
  return Math.round(rate);
}

async function discoverCost(): Promise<{ discoveredBefore: number; microsecondsPerDiscover: number }> {
  const dir = path.join(work, 'discover');
  const config = parseConfig(
    `server: { address: 10.9.0.1, stateDir: ${dir}, maxDiscovered: 1000000 }\nunknownNodes: discover\n`,
    'bench.yaml',
  );
  const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 1_000_000 });
  let now = t0;
  const inventory = new Inventory({ config }, store, () => now);
  const identity = (i: number): ClientIdentity => ({
    mac: mac(0x5a, i),
    leaseKey: mac(0x5a, i),
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
  for (let i = 0; i < 100_000; i++) {
    inventory.discover(identity(i));
    if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
  }
  const rounds = 2000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    now += 1;
    inventory.discover(identity(100_000 + i));
  }
  const perDiscover = (ms(start) * 1000) / rounds;
  await store.close();
  return { discoveredBefore: 100_000, microsecondsPerDiscover: Math.round(perDiscover * 10) / 10 };
}

async function restart() {
  const dir = path.join(work, 'restart');
  let start = process.hrtime.bigint();
  const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 250_000 });
  for (let i = 0; i < 1000; i++) await store.putNode({ mac: mac(0x52, i), hostname: `node-${i}` });
  for (let i = 0; i < 200_000; i++) {
    store.putDiscovered({
      mac: mac(0x5a, i),
      arch: 'amd64',
      firmware: 'uefi',
      piSerial: undefined,
      piModel: undefined,
      firstSeen: new Date(t0).toISOString(),
      lastSeen: new Date(t0 + i).toISOString(),
    });
    if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
  }
  for (let e = 0; e < 200; e++) {
    for (let i = 0; i < 1000; i++)
      store.recordEvent({
        at: new Date(t0 + e).toISOString(),
        mac: mac(0x52, i),
        type: 'tftp.file',
        detail: { path: 'ipxe.efi', bytes: 1024, from: 'static' },
      });
    await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 2000; i++)
    await store.putLease({
      ip: `10.9.${i >> 8}.${i & 255}`,
      key: `k${i}`,
      mac: mac(0x5a, i),
      state: 'bound',
      expiresAt: t0,
      updatedAt: t0,
    });
  await store.close();
  const buildMs = Math.round(ms(start));
  const files = Object.fromEntries(readdirSync(dir).map((f) => [f, statSync(path.join(dir, f)).size]));
  start = process.hrtime.bigint();
  const reopened = await FileStore.open(dir, [], false, { maxDiscovered: 250_000 });
  const loadMs = Math.round(ms(start));
  const loaded = {
    discovered: reopened.store.discovered().length,
    nodes: reopened.store.nodes().length,
    leases: reopened.store.leases().length,
    eventsOfOneNode: reopened.store.events(mac(0x52, 7)).length,
  };
  await reopened.store.close();
  return { buildMs, loadMs, files, loaded };
}

const result = {
  leaseCommitsPerSecond: { syncWrites: await leaseCommits(true), noSync: await leaseCommits(false) },
  ...(leasesOnly ? {} : { discover: await discoverCost(), restart: await restart() }),
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  node: process.version,
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (workArg === undefined) rmSync(work, { recursive: true, force: true });
