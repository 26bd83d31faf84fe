// vitest globalSetup of every project (vitest.config.ts): before a tier's first
// test, check that this machine has what the tier runs (test/lib/peers.ts) and
// stop the run (exit 1) with one line naming what to install.
// The root configuration's run also gets a temporary directory of its own as
// TMPDIR (inherited by every worker, so by every os.tmpdir() in tests and the
// processes they start), removed when the run ends: a test that forgets its
// mkdtemp, or dies before its afterAll, leaves nothing in /tmp.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { TIERS, thisMachine, whatIsMissing } from './peers.js';
import { REPO_ROOT } from './bootfarm.js';

/** TMPDIR for the whole run; the returned teardown removes it (not across a mount a test left inside). */
function runTempDir(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-vitest-'));
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    const rm = spawnSync('rm', ['-rf', '--one-file-system', dir], { encoding: 'utf8' });
    if (rm.status !== 0) process.stderr.write(`the run's temporary directory ${dir} was not fully removed: ${rm.stderr}`);
  };
}

export default function setup(project: TestProject): (() => void) | undefined {
  // The root configuration runs it too, under no name; its projects are the tiers.
  if (project.name === '') return runTempDir();
  const needs = TIERS[project.name];
  if (!needs) throw new Error(`test/lib/peers.ts has no tier named ${project.name}`);
  const missing = whatIsMissing(project.name, needs, thisMachine(REPO_ROOT));
  if (missing === undefined) return undefined;
  // The line is the whole story. Thrown, it would come after vitest's "No test
  // files found" and a stack into this file; nothing has started yet, so exit.
  process.stderr.write(`${missing}\n`);
  process.exit(1);
}
