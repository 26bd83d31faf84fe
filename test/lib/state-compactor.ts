// A child process for test/unit/store-compaction.test.ts, run under strace: opens
// a store with syncWrites off, commits one more lease than the default
// compactAfter (20,000; in batches that share writes), so exactly one compaction
// runs, and closes. Usage: state-compactor.ts STATE_DIR
import { FileStore } from '../../server/store/store.js';

const dir = process.argv[2] as string;
const { store } = await FileStore.open(dir, [], false);
for (let i = 0; i < 20_001; i += 1000) {
  const batch = [];
  for (let k = i; k < Math.min(i + 1000, 20_001); k++)
    batch.push(store.putLease({ ip: `10.9.${k >> 8}.${k & 255}`, key: `k${k}`, mac: `m${k}`, state: 'bound', expiresAt: 1, updatedAt: k }));
  await Promise.all(batch);
}
await store.close();
process.stdout.write('done\n');
