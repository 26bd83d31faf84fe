// A child process that commits leases as fast as it can and prints each one as
// soon as putLease() resolved: the test kills it with SIGKILL at a random moment
// and checks every printed lease survived. Usage: lease-writer.ts STATE_DIR [SYNC]
// SYNC: true (default; server.syncWrites) or false (journal written without O_DSYNC).
import { FileStore } from '../../server/store/store.js';

const dir = process.argv[2] as string;
const { store } = await FileStore.open(dir, [], process.argv[3] !== 'false');
let n = 0;
// Many in flight at once, as under DHCP load: they share fsyncs (group commit).
const writer = async (lane: number) => {
  for (;;) {
    const i = n++;
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    await store.putLease({ ip, key: `k${i}`, mac: `m${lane}`, state: 'bound', expiresAt: 1, updatedAt: i });
    process.stdout.write(`committed ${ip}\n`);
  }
};
for (let lane = 0; lane < 16; lane++) void writer(lane);
