import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The unit tier (npm run test:unit): test/unit needs no root, network namespace,
// Docker or QEMU, only a few local programs (test/lib/peers.ts). These files
// need none of that either but are slow for a quick tier: they start the built
// CLI a process per case (about a second of imports each) or wait out a
// program's real retry delays and crash rounds. They run with the protocols.
const UNIT_SLOW = [
  'test/unit/node-render.test.ts',
  'test/unit/config-cli.test.ts',
  'test/unit/cli-usage.test.ts',
  'test/unit/image-agent.test.ts',
  'test/unit/store-durability.test.ts',
];
// Listed, not globbed, so that the protocols project can exclude exactly these.
const UNIT = readdirSync(fileURLToPath(new URL('test/unit', import.meta.url)), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => `test/unit/${f}`)
  .filter((f) => !UNIT_SLOW.includes(f));
// Heavy suites run after the protocol tests, one file at a time: image builds and
// the emulation lab keep both cores busy for minutes, and the DHCP/TFTP/NBD tests
// beside them would only measure the contention.
const IMAGES = [
  'test/integration/imagebuild.test.ts',
  'test/integration/server-container.test.ts',
  'test/integration/systemd.test.ts',
  'test/integration/ansible.test.ts',
];
// Every lab file (test/integration/lab*.test.ts), one at a time: each boots QEMU guests.
const LAB = readdirSync(fileURLToPath(new URL('test/integration', import.meta.url)))
  .filter((f) => /^lab(-[a-z0-9-]+)?\.test\.ts$/.test(f))
  .map((f) => `test/integration/${f}`);

export default defineConfig({
  test: {
    // Integration tests start processes in network namespaces and QEMU guests on a
    // 2-core machine: run files one or two at a time, with generous timeouts.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // Each tier first checks that this machine has its peers (test/lib/peers.ts).
    globalSetup: ['test/lib/tier-setup.ts'],
    projects: [
      // No root, no namespaces, no Docker, no QEMU: `npm run test:unit` on a laptop.
      // In-process and loopback only: one file per core (a laptop has more than CI's two).
      {
        extends: true,
        test: { name: 'unit', include: UNIT, maxWorkers: Math.max(2, availableParallelism()), sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'protocols', include: ['test/**/*.test.ts'], exclude: [...UNIT, ...IMAGES, ...LAB], sequence: { groupOrder: 1 } },
      },
      { extends: true, test: { name: 'images', include: IMAGES, fileParallelism: false, sequence: { groupOrder: 2 } } },
      { extends: true, test: { name: 'lab', include: LAB, fileParallelism: false, sequence: { groupOrder: 3 } } },
    ],
  },
});
