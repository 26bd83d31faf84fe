// The state directory holds per-boot secrets: it is created 0700, every state
// file 0600 (journal, snapshot, the snapshot's tmp file), and a directory or file
// left wider by an older release is tightened. Checked with real stat().
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileStore } from '../../server/store/store.js';

const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);

describe('state store: permissions', () => {
  let parent: string;
  let previousUmask: number;
  beforeEach(() => {
    parent = mkdtempSync(path.join(tmpdir(), 'bootfarm-perm-'));
    // The usual umask of a service: what it lets through is what the code asks for.
    previousUmask = process.umask(0o022);
  });
  afterEach(() => {
    process.umask(previousUmask);
    rmSync(parent, { recursive: true, force: true });
  });

  it('creates the state directory 0700 and the journal and snapshot 0600', async () => {
    const dir = path.join(parent, 'state');
    const { store } = await FileStore.open(dir, [], false, { compactAfter: 5 });
    // Past compactAfter: a snapshot is written (its tmp file's mode: test/unit/store-compaction.test.ts).
    for (let i = 0; i < 12; i++)
      await store.putLease({ ip: `10.9.0.${i}`, key: `k${i}`, mac: `m${i}`, state: 'bound', expiresAt: 1, updatedAt: i });
    await store.close();
    expect(readdirSync(dir).sort()).toEqual(['state.journal', 'state.snapshot']);
    expect(mode(dir)).toBe('700');
    expect(mode(path.join(dir, 'state.journal'))).toBe('600');
    expect(mode(path.join(dir, 'state.snapshot'))).toBe('600');
  });

  it('tightens a 0755 state directory and 0644 state files left by an older release', async () => {
    const dir = path.join(parent, 'state');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(
      path.join(dir, 'state.journal'),
      `${JSON.stringify({ t: 'lease', lease: { ip: '10.9.0.5', key: 'k', mac: 'm', state: 'bound', expiresAt: 1, updatedAt: 1 } })}\n`,
      { mode: 0o644 },
    );
    writeFileSync(path.join(dir, 'state.snapshot.json'), '[]', { mode: 0o644 });
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (_obj: unknown, msg: string) => warnings.push(msg), error: () => undefined };
    const { store } = await FileStore.open(dir, [], false, { logger: logger as never });
    expect(store.leases()).toHaveLength(1);
    await store.close();
    expect(mode(dir)).toBe('700');
    expect(mode(path.join(dir, 'state.journal'))).toBe('600');
    expect(mode(path.join(dir, 'state.snapshot'))).toBe('600');
    expect(warnings).toContain(`${dir} was mode 0755; tightened to 0700 (state files hold per-boot secrets)`);
    expect(warnings).toContain(`${path.join(dir, 'state.journal')} was mode 0644; tightened to 0600 (state files hold per-boot secrets)`);
  });
});
