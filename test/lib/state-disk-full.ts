// A child process for test/integration/state-write-errors.test.ts, started in a
// private mount namespace with STATE_DIR on a tiny tmpfs: commits leases, fills
// the filesystem, goes on committing and recording events, frees the space, and
// prints one JSON line of what it saw. Usage: state-disk-full.ts MOUNT_DIR
import { openSync, rmSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import { FileStore, type LeaseRecord } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';

const mount = process.argv[2] as string;
const stateDir = path.join(mount, 'state');
const unhandled: string[] = [];
process.on('unhandledRejection', (err) => {
  unhandled.push(String(err));
});

const metrics = new Metrics();
const metric = async (name: string, labels: Record<string, string> = {}) => {
  const values = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
};
const lease = (i: number): LeaseRecord => ({ ip: `10.9.0.${i}`, key: `k${i}`, mac: `m${i}`, state: 'bound', expiresAt: 1, updatedAt: i });
const until = async (test: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !test();) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

const { store } = await FileStore.open(stateDir, [], true, { metrics, compactAfter: 50 });
for (let i = 1; i <= 10; i++) await store.putLease(lease(i));

// Fill the filesystem to the last block (bounded: 4 MiB is far more than the tmpfs holds).
const filler = path.join(mount, 'filler');
const fd = openSync(filler, 'w');
let full = false;
try {
  for (let n = 0, block = Buffer.alloc(4096, 1); n < 1024; n++) writeSync(fd, block);
} catch (err) {
  if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  full = true;
} finally {
  closeSync(fd);
}
if (!full) throw new Error(`${mount} took 4 MiB: it is not the tiny tmpfs this script expects`);

// The journal's last page may still take a few records: commit until one is refused.
let refusedAt: number | undefined;
let refusal = '';
for (let i = 11; i <= 200 && refusedAt === undefined; i++) {
  await store.putLease(lease(i)).catch((err: NodeJS.ErrnoException) => {
    refusedAt = i;
    refusal = err.code ?? err.message;
  });
}
// Events nobody waits for, more than compactAfter: the queue is dropped for a snapshot, which fails too.
for (let i = 0; i < 120; i++) store.recordEvent({ at: new Date().toISOString(), mac: 'm1', type: 'dhcp.ack', detail: { n: i } });
await until(() => store.health().healthy === false, 10_000);
await new Promise((r) => setTimeout(r, 700));
const whileFull = {
  health: store.health(),
  healthyGauge: await metric('bootfarm_state_healthy'),
  journalErrors: await metric('bootfarm_state_write_errors_total', { operation: 'journal' }),
  compactionErrors: await metric('bootfarm_state_write_errors_total', { operation: 'compaction' }),
  // While unhealthy a caller is told at once (its record is kept and retried).
  nextCommit: await store.putLease(lease(250)).then(
    () => 'ok',
    (err: Error) => err.message,
  ),
};

rmSync(filler);
await until(() => store.health().healthy, 20_000);
const afterFree = {
  healthyGauge: await metric('bootfarm_state_healthy'),
  commit: await store.putLease(lease(251)).then(
    () => 'ok',
    (err: Error) => err.message,
  ),
};
await store.close();

const reopened = await FileStore.open(stateDir, []);
const leases = reopened.store
  .leases()
  .map((l) => l.updatedAt)
  .sort((a, b) => a - b);
const events = reopened.store.events('m1').length;
await reopened.store.close();
process.stdout.write(`${JSON.stringify({ refusedAt, refusal, whileFull, afterFree, leases, events, unhandled })}\n`);
