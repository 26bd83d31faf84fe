#!/usr/bin/env node
// The installed `bootfarm` command (package.json bin). It checks the Node version
// before main.js is loaded: on an old Node, main.js's imports would fail with a
// stack trace (an unknown API, a syntax error), not a sentence saying what to do.
import { nodeVersionProblem, readPackageInfo } from './package-info.js';

const problem = nodeVersionProblem(process.versions.node, readPackageInfo().nodeRange);
if (problem !== undefined) {
  process.stderr.write(`bootfarm: ${problem}\n`);
  process.exit(1);
}
await import('./main.js');
