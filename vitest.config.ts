import { defineConfig } from 'vitest/config';

// Heavy suites run after the protocol tests, one file at a time: image builds and
// the emulation lab keep both cores busy for minutes, and the DHCP/TFTP/NBD tests
// beside them would only measure the contention.
const IMAGES = ['test/integration/imagebuild.test.ts', 'test/integration/server-container.test.ts'];
const LAB = ['test/integration/lab.test.ts'];

export default defineConfig({
  test: {
    // Integration tests start processes in network namespaces and QEMU guests on a
    // 2-core machine: run files one or two at a time, with generous timeouts.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'protocols', include: ['test/**/*.test.ts'], exclude: [...IMAGES, ...LAB], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'images', include: IMAGES, fileParallelism: false, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'lab', include: LAB, fileParallelism: false, sequence: { groupOrder: 2 } } },
    ],
  },
});
