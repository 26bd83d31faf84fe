// vitest globalSetup of every project (vitest.config.ts): before a tier's first
// test, check that this machine has what the tier runs (test/lib/peers.ts) and
// stop the run (exit 1) with one line naming what to install.
import type { TestProject } from 'vitest/node';
import { TIERS, thisMachine, whatIsMissing } from './peers.js';
import { REPO_ROOT } from './bootfarm.js';

export default function setup(project: TestProject): void {
  // The root configuration runs it too, under no name; its projects are the tiers.
  if (project.name === '') return;
  const needs = TIERS[project.name];
  if (!needs) throw new Error(`test/lib/peers.ts has no tier named ${project.name}`);
  const missing = whatIsMissing(project.name, needs, thisMachine(REPO_ROOT));
  if (missing === undefined) return;
  // The line is the whole story. Thrown, it would come after vitest's "No test
  // files found" and a stack into this file; nothing has started yet, so exit.
  process.stderr.write(`${missing}\n`);
  process.exit(1);
}
