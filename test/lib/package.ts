// The npm package as users get it: `npm pack` of this checkout's build (dist/,
// from `npm run build`), then `npm install -g` of the tarball into an empty prefix.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runOk } from '../../server/lab/proc.js';
import { REPO_ROOT } from './bootfarm.js';

export interface InstalledPackage {
  tarball: string;
  /** The --prefix: bin/bootfarm, lib/node_modules/bootfarm. */
  prefix: string;
  bin: string;
  /** Where the package itself landed. */
  root: string;
  /** Seconds `npm install -g` took (the dependencies come from the registry or npm's cache). */
  installSeconds: number;
}

/**
 * Packs with --ignore-scripts: the prepack script would rebuild dist/ in the work
 * tree, under the feet of tests running the built CLI beside this one.
 */
export async function packTarball(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pack-'));
  await runOk('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir, REPO_ROOT], 120_000);
  const [tgz] = readdirSync(dir).filter((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack left no tarball in ${dir}`);
  return path.join(dir, tgz);
}

export async function installTarball(tarball: string): Promise<InstalledPackage> {
  const prefix = mkdtempSync(path.join(tmpdir(), 'bootfarm-prefix-'));
  const started = Date.now();
  await runOk(
    'npm',
    ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball],
    600_000,
  );
  return {
    tarball,
    prefix,
    bin: path.join(prefix, 'bin/bootfarm'),
    root: path.join(prefix, 'lib/node_modules/bootfarm'),
    installSeconds: (Date.now() - started) / 1000,
  };
}
