// `bootfarm config check` as operators run it (the built CLI and the sources):
// it reports the loader's problems and exits 2. Kept apart from config.test.ts,
// whose in-process checks are the mutation-testing tier (vitest.mutation.config.ts).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';

describe('configuration', () => {
  it('the built CLI (dist/, as users run it) finds its templates and checks the example', async () => {
    const built = path.join(REPO_ROOT, 'dist/server/cli/main.js');
    const r = await run(process.execPath, [built, 'config', 'check', path.join(REPO_ROOT, 'examples/bootfarm.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('bootfarm config check: ok exits 0, problems exit 2 on stderr, a missing file is named', async () => {
    const ok = await run(process.execPath, nodeArgs(CLI, ['config', 'check', path.join(REPO_ROOT, 'examples/bootfarm.yaml')]));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok (dhcp full, subnets: 10.9.0.0/24, 2 nodes, ');

    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-cfg-'));
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'server: { address: 10.9.0.1, stateDir: s }\ndhcp: { mode: full }\n');
    const r = await run(process.execPath, nodeArgs(CLI, ['config', 'check', bad]));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`bootfarm: ${bad}:2:7: dhcp.subnets: expected at least one subnet when dhcp.mode is full`);

    const missing = await run(process.execPath, nodeArgs(CLI, ['config', 'check', path.join(dir, 'nope.yaml')]));
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`bootfarm: ${path.join(dir, 'nope.yaml')}: cannot read the file (ENOENT)`);
  });
});
