// What the installed package says about itself: its version (`bootfarm --version`)
// and the Node versions it supports (package.json engines.node). Read at run time
// from the package.json beside dist/, so an installed package reports the version
// it was packed as.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageInfo {
  version: string;
  /** engines.node, e.g. ">=20.19". */
  nodeRange: string;
}

/** package.json of this package: two levels up from server/cli, three from dist/server/cli. */
export function readPackageInfo(): PackageInfo {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..';
  const pkg = JSON.parse(readFileSync(path.resolve(here, up, 'package.json'), 'utf8')) as {
    version?: unknown;
    engines?: { node?: unknown };
  };
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  return { version: text(pkg.version), nodeRange: text(pkg.engines?.node) };
}

function numbers(version: string): number[] {
  return version
    .replace(/^v/, '')
    .split('.')
    .map((n) => Number.parseInt(n, 10) || 0);
}

/**
 * Why `nodeVersion` cannot run bootfarm, or undefined when it can. `range` is the
 * one form package.json uses, ">=MAJOR.MINOR[.PATCH]"; any other form is not
 * checked here (npm warns about it at install).
 */
export function nodeVersionProblem(nodeVersion: string, range: string): string | undefined {
  const m = /^\s*>=\s*v?(\d+(?:\.\d+){0,2})\s*$/.exec(range);
  if (!m) return undefined;
  const need = numbers(m[1] as string);
  const have = numbers(nodeVersion);
  for (let i = 0; i < 3; i++) {
    const d = (have[i] ?? 0) - (need[i] ?? 0);
    if (d > 0) return undefined;
    if (d < 0)
      return `needs Node ${range.trim()} (package.json engines.node); this is Node ${nodeVersion.replace(/^v?/, 'v')}: install a newer Node (https://nodejs.org) and run bootfarm with it`;
  }
  return undefined;
}
