// kill -9 at any moment loses no committed lease: a writer process prints each
// lease once it is committed, is SIGKILLed mid-stream, and the reopened store
// must contain every printed lease. Repeated, to hit different moments (also
// during snapshot compaction, which runs every 20,000 records).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Background } from '../../server/lab/proc.js';
import { nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';
import { FileStore } from '../../server/store/store.js';
import { mulberry32 } from '../lib/dhcp-fuzz-corpus.js';

describe('store durability', () => {
  // syncWrites false writes each batch from the event loop (server/store/durable-log.ts):
  // a lease must still be in the kernel before putLease() resolves.
  it.each([true, false])(
    'keeps every acknowledged lease across SIGKILL (syncWrites %s)',
    async (sync) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-kill-'));
      const rnd = mulberry32(42);
      const acknowledged = new Set<string>();
      try {
        for (let round = 0; round < 5; round++) {
          const writer = Background.start(
            process.execPath,
            nodeArgs(path.join(REPO_ROOT, 'test/lib/lease-writer.ts'), [dir, String(sync)]),
            'lease-writer',
          );
          await writer.waitFor((l) => l.startsWith('committed'), 20_000, 'first commit');
          await new Promise((r) => setTimeout(r, 200 + Math.floor(rnd() * 1500)));
          writer.child.kill('SIGKILL');
          await writer.exited;
          for (const line of writer.lines) if (line.startsWith('committed ')) acknowledged.add(line.slice(10));
          const { store } = await FileStore.open(dir, [], sync);
          const stored = new Set(store.leases().map((l) => l.ip));
          await store.close();
          const lost = [...acknowledged].filter((ip) => !stored.has(ip));
          expect(lost, `round ${round}: ${acknowledged.size} acknowledged`).toEqual([]);
        }
        expect(acknowledged.size).toBeGreaterThan(1000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
