// Starts the real bootfarm CLI (`bootfarm serve`) inside a test namespace.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { NetLab } from '../../server/lab/netlab.js';
import type { Background } from '../../server/lab/proc.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO_ROOT, 'server/cli/main.ts');

/** node with the tsx loader, so tests run the TypeScript sources without a build step. */
export function nodeArgs(script: string, args: string[]): string[] {
  return ['--import', 'tsx', script, ...args];
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export class BootfarmProcess {
  constructor(
    readonly bg: Background,
    readonly configFile: string,
    readonly stateDir: string,
  ) {}

  /** Parsed JSON log lines so far. */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.bg.lines) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        /* a non-JSON line */
      }
    }
    return out;
  }

  /** Resolves with the first log line (from output line `since` on) that passes `test`. */
  waitForLog(test: (l: LogLine) => boolean, timeoutMs: number, what: string, since = 0): Promise<LogLine> {
    return this.bg
      .waitFor(
        (line) => {
          if (!line.startsWith('{')) return false;
          try {
            return test(JSON.parse(line) as LogLine);
          } catch {
            return false;
          }
        },
        timeoutMs,
        what,
        since,
      )
      .then((line) => JSON.parse(line) as LogLine);
  }

  stop(): Promise<number | null> {
    return this.bg.stop('SIGTERM', 5000);
  }
}

/**
 * Writes `config` (stateDir filled in) and starts `bootfarm serve` in `ns`; resolves once ready.
 * `wrap`: a command the server runs under (e.g. faketime and its arguments), given node and its arguments.
 */
export async function startBootfarm(
  lab: NetLab,
  ns: string,
  config: Record<string, unknown>,
  stateDir?: string,
  wrap: string[] = [],
): Promise<BootfarmProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-test-'));
  const state = stateDir ?? path.join(dir, 'state');
  const server = { ...(config.server as Record<string, unknown>), stateDir: state };
  const file = path.join(dir, 'bootfarm.yaml');
  writeFileSync(file, stringify({ ...config, server, log: { level: 'debug' } }));
  const command = [...wrap, process.execPath, ...nodeArgs(CLI, ['serve', '--config', file])];
  const bg = lab.spawn(ns, command[0] as string, command.slice(1), 'bootfarm');
  const proc = new BootfarmProcess(bg, file, state);
  await Promise.race([
    // A bound, not a timing: from sources under tsx a start takes 8-9 s on a loaded
    // 2-core machine, and several protocol files start servers at once beside QEMU.
    proc.waitForLog((l) => l.msg === 'bootfarm ready', 60_000, 'bootfarm ready'),
    bg.exited.then((code) => {
      throw new Error(`bootfarm exited (${code}) before ready:\n${bg.lines.join('\n')}`);
    }),
  ]);
  return proc;
}
