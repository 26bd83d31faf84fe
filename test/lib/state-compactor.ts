// A child process for test/unit/store-compaction.test.ts, run under strace: opens
// a store with syncWrites off and a tiny compactAfter, commits a few leases (one
// compaction), and closes. Usage: state-compactor.ts STATE_DIR
import { FileStore } from '../../server/store/store.js';

const dir = process.argv[2] as string;
const { store } = await FileStore.open(dir, [], false, { compactAfter: 5 });
for (let i = 0; i < 6; i++) await store.putLease({ ip: `10.9.0.${i + 1}`, key: `k${i}`, mac: `m${i}`, state: 'bound', expiresAt: 1, updatedAt: i });
await store.close();
process.stdout.write('done\n');
