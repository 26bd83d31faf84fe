// In-process DHCP cost benchmark: drives DhcpService.receive() directly with the
// same DISCOVER/REQUEST packets as ../shared/bench/bench-dhcp (new MAC per DORA,
// option 61, PXE options 60/93/94/55), 32 transactions in flight, no sockets and
// no kernel. It isolates bootfarm's own per-DORA cost (decode, identity, policy,
// lease pool, encode, metrics, journal) from the network path and from the load
// generator, which share the machine's cores in the run-anchors benchmark.
//
//   node --import tsx bench/dhcp-inprocess.ts [--store memory|file] \
//       [--dir /dev/shm/bf-inproc] [--count 20000] [--warmup 5000] [--concurrency 32]
//   add --cpu-prof --cpu-prof-dir=DIR before --import for a profile without contention.
//
// --store memory : putLease resolves at once (no journal): pure request-path cost
// --store file   : the real FileStore (group-committed journal + fdatasync) in --dir
//                  (/dev/shm = tmpfs: journal CPU without disk latency; a disk path
//                  adds the fdatasync wait).
// Prints one line: INPROC_SUMMARY {json} with CPU µs per DORA (process.cpuUsage,
// all threads) and the main thread's event-loop utilisation.
import { mkdirSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseConfig } from '../server/config/load.js';
import { DhcpService } from '../server/dhcp/server/dhcp-service.js';
import { Metrics } from '../server/metrics.js';
import { policySettings } from '../server/app.js';
import {
  FileStore,
  type BootSessionRecord,
  type LeaseRecord,
  type NodeEvent,
  type RootAttachment,
  type Store,
} from '../server/store/store.js';
import type { DiscoveredMachine } from '../server/store/discovered-index.js';
import type { LogHealth } from '../server/store/durable-log.js';
import { Inventory } from '../server/inventory/inventory.js';
import type { ResolvedNode } from '../server/config/types.js';

const { values: opt } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory' },
    dir: { type: 'string', default: '/dev/shm/bootfarm-inproc' },
    count: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '32' },
  },
});
const COUNT = Number(opt.count);
const WARMUP = Number(opt.warmup);
const CONC = Number(opt.concurrency);
// The pool 10.77.1.1-10.77.250.254 holds 63,500 addresses; a DISCOVER beyond it gets no reply.
if (WARMUP + COUNT > 63_000) throw new Error('--warmup + --count must stay below the 63,500-address pool');

class MemoryStore implements Store {
  private readonly leaseMap = new Map<string, LeaseRecord>();
  nodes(): ResolvedNode[] {
    return [];
  }
  nodeByMac(): ResolvedNode | undefined {
    return undefined;
  }
  nodeByPiSerial(): ResolvedNode | undefined {
    return undefined;
  }
  putNode(): Promise<void> {
    return Promise.resolve();
  }
  isConfigNode(): boolean {
    return false;
  }
  removeNode(): Promise<void> {
    return Promise.resolve();
  }
  readonly nodesVersion = 0;
  private readonly seen = new Map<string, DiscoveredMachine>();
  discovered(): DiscoveredMachine[] {
    return [...this.seen.values()];
  }
  discoveredByMac(mac: string): DiscoveredMachine | undefined {
    return this.seen.get(mac);
  }
  discoveredByPiSerial(serial: string): DiscoveredMachine | undefined {
    return [...this.seen.values()].find((m) => m.piSerial === serial);
  }
  health(): LogHealth {
    return { healthy: true };
  }
  putDiscovered(m: DiscoveredMachine): void {
    this.seen.set(m.mac, m);
  }
  removeDiscovered(mac: string): Promise<void> {
    this.seen.delete(mac);
    return Promise.resolve();
  }
  sessions(): BootSessionRecord[] {
    return [];
  }
  putSession(): Promise<void> {
    return Promise.resolve();
  }
  attachments(): RootAttachment[] {
    return [];
  }
  putAttachment(): Promise<void> {
    return Promise.resolve();
  }
  leases(): LeaseRecord[] {
    return [...this.leaseMap.values()];
  }
  leaseByIp(ip: string): LeaseRecord | undefined {
    return this.leaseMap.get(ip);
  }
  putLease(lease: LeaseRecord): Promise<void> {
    this.leaseMap.set(lease.ip, lease);
    return Promise.resolve();
  }
  recordEvent(_e: NodeEvent): void {}
  events(): NodeEvent[] {
    return [];
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

// --- packets exactly as bench-dhcp builds them (broadcast mode)
const MAGIC = Buffer.from([0x63, 0x82, 0x53, 0x63]);
const PXE = Buffer.concat([
  Buffer.from([60, 32]),
  Buffer.from('PXEClient:Arch:00000:UNDI:002001', 'latin1'),
  Buffer.from([93, 2, 0, 0]),
  Buffer.from([94, 3, 1, 2, 1]),
  Buffer.from([55, 7, 1, 3, 6, 15, 66, 67, 60]),
]);
function build(type: number, xid: number, mac: Buffer, extra: Buffer = Buffer.alloc(0)): Buffer {
  const hdr = Buffer.alloc(236);
  hdr[0] = 1;
  hdr[1] = 1;
  hdr[2] = 6;
  hdr.writeUInt32BE(xid >>> 0, 4);
  hdr.writeUInt16BE(0x8000, 10);
  mac.copy(hdr, 28);
  const opts = Buffer.concat([Buffer.from([53, 1, type, 61, 7, 1]), mac, extra, PXE, Buffer.from([255])]);
  return Buffer.concat([hdr, MAGIC, opts]);
}
function parseReply(b: Buffer): { xid: number; yiaddr: Buffer; type: number; sid: Buffer | undefined } {
  let type = 0;
  let sid: Buffer | undefined;
  for (let i = 240; i < b.length;) {
    const c = b[i] as number;
    if (c === 255) break;
    if (c === 0) {
      i++;
      continue;
    }
    const len = b[i + 1] as number;
    if (c === 53) type = b[i + 2] as number;
    if (c === 54 && len === 4) sid = b.subarray(i + 2, i + 6);
    i += 2 + len;
  }
  return { xid: b.readUInt32BE(4), yiaddr: b.subarray(16, 20), type, sid };
}

async function main(): Promise<void> {
  let store: Store;
  if (opt.store === 'file') {
    rmSync(opt.dir, { recursive: true, force: true });
    mkdirSync(opt.dir, { recursive: true });
    store = (await FileStore.open(opt.dir, [])).store;
  } else {
    store = new MemoryStore();
  }
  const config = parseConfig(
    `
server: { address: 10.77.0.1, stateDir: /nonexistent }
# The global budget for unknown machines is off, as in bench/bootfarm-dhcp-candidate.sh:
# the generator is exactly the random-MAC flood it exists to stop.
dhcp: { mode: full, subnets: [{ cidr: 10.77.0.0/16, range: [10.77.1.1, 10.77.250.254], leaseSeconds: 3600 }], limits: { unknownGlobalBurst: 0, unknownLeasePercent: 100 } }
log: { level: warn }
unknownNodes: boot-default
`,
    'inproc.yaml',
  );
  const service = new DhcpService({
    config,
    store,
    metrics: new Metrics(),
    logger: pino({ level: 'warn' }),
    policy: policySettings(config),
    inventory: new Inventory({ config }, store),
  });

  const inflight = new Map<number, Buffer>();
  let started = 0;
  let completed = 0;
  let failed = 0;
  let total = 0;
  let resolveDone: () => void = () => undefined;
  let onPhaseDone: (() => void) | undefined;
  const src = { address: '0.0.0.0', port: 68 };

  const startOne = () => {
    const n = started++;
    const mac = Buffer.alloc(6);
    mac[0] = 2;
    mac.writeUInt32BE(n, 1);
    mac[5] = 0x5a;
    const xid = (n * 2654435761) >>> 0;
    inflight.set(xid, mac);
    service.receive(build(1, xid, mac), src, 'dhcp');
  };
  // The fake socket: replies come here instead of the wire.
  (service as unknown as { sockets: unknown }).sockets = {
    send: (_l: string, data: Buffer) => {
      const r = parseReply(data);
      const mac = inflight.get(r.xid);
      if (!mac) return Promise.resolve();
      if (r.type === 2) {
        const extra = Buffer.concat([
          Buffer.from([50, 4]),
          r.yiaddr,
          r.sid ? Buffer.concat([Buffer.from([54, 4]), r.sid]) : Buffer.alloc(0),
        ]);
        setImmediate(() => service.receive(build(3, r.xid, mac, extra), src, 'dhcp'));
      } else {
        inflight.delete(r.xid);
        if (r.type === 5) completed++;
        else failed++;
        if (started < total) setImmediate(startOne);
        else if (inflight.size === 0) onPhaseDone?.();
      }
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };

  const phase = (n: number) =>
    new Promise<void>((resolve) => {
      total = started + n;
      onPhaseDone = resolve;
      resolveDone = resolve;
      for (let i = 0; i < CONC && started < total; i++) startOne();
    });

  await phase(WARMUP);
  const c0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const done0 = completed;
  await phase(COUNT);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const elu = performance.eventLoopUtilization(elu0);
  void resolveDone;
  const n = completed - done0;
  const summary = {
    store: opt.store,
    dir: opt.store === 'file' ? opt.dir : undefined,
    count: n,
    failed,
    concurrency: CONC,
    dora_per_s: Math.round(n / wall),
    cpu_us_per_dora: +((cpu.user + cpu.system) / n).toFixed(1),
    user_us_per_dora: +(cpu.user / n).toFixed(1),
    sys_us_per_dora: +(cpu.system / n).toFixed(1),
    event_loop_utilization: +elu.utilization.toFixed(3),
    node: process.version,
  };
  await store.close();
  if (opt.store === 'file') rmSync(opt.dir, { recursive: true, force: true });
  process.stdout.write(`INPROC_SUMMARY ${JSON.stringify(summary)}\n`);
}

process.on('beforeExit', () => {
  // Reached only if the event loop emptied before the summary: replies stopped coming.
  if (!process.exitCode) {
    console.error('dhcp-inprocess: transactions stalled (no reply)');
    process.exitCode = 1;
  }
});
main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
