// A tier that lacks a peer, root or the build stops before its first test with
// one line saying what to install (test/lib/peers.ts, test/lib/tier-setup.ts).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import vitestConfig from '../../vitest.config.js';
import { TIERS, whatIsMissing, type Situation } from '../lib/peers.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

const everything: Situation = { isRoot: true, present: () => true, built: () => true };

describe('test tier peers', () => {
  it('names nothing when all is there, and every tier of vitest.config.ts has its list', () => {
    const projects = (vitestConfig.test?.projects ?? []).map((p) => {
      const name = typeof p === 'object' && 'test' in p ? p.test?.name : undefined;
      return typeof name === 'string' ? name : '(unnamed)';
    });
    expect(projects).toEqual(['unit', 'protocols', 'images', 'lab']);
    for (const name of projects) expect(whatIsMissing(name, TIERS[name]!, everything)).toBeUndefined();
  });

  it('one line: root, then the missing programs with their packages, then the build', () => {
    const here: Situation = {
      isRoot: false,
      present: (p) => !['busybox', 'dhclient', 'unshare', 'nsenter'].includes(p.name),
      built: () => false,
    };
    expect(whatIsMissing('protocols', TIERS.protocols!, here)).toBe(
      'the protocols tests need root (the tests create network namespaces and bind port 67: run them with sudo); ' +
        'unshare, nsenter, busybox and dhclient: apt-get install util-linux busybox isc-dhcp-client (scripts/install-system-deps.sh test installs them); ' +
        'dist/server/cli/main.js: npm run build',
    );
    expect(whatIsMissing('unit', TIERS.unit!, { ...here, present: (p) => p.name !== 'strace', built: () => true })).toBe(
      'the unit tests need strace: apt-get install strace (scripts/install-system-deps.sh test installs it)',
    );
  });

  it('vitest stops at once with that line when PATH has none of the peers', () => {
    const emptyPath = mkdtempSync(path.join(tmpdir(), 'bf-no-peers-'));
    const r = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--project', 'unit', 'test/unit/version-sort.test.ts'],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, PATH: emptyPath, NO_COLOR: '1' } },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'the unit tests need curl, jq, strace, openssl, sort and mkimage: apt-get install curl jq strace openssl coreutils u-boot-tools ' +
        '(scripts/install-system-deps.sh test installs them)\n',
    );
    expect(r.stdout).not.toContain('version-sort');
  });
});
