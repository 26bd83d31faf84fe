// The built CLI (dist/, as operators run it) on usage mistakes: an unknown
// command or option exits 2 with one line naming it, even when --help follows;
// help that was asked for still exits 0 (server/cli/usage.ts).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../lib/bootfarm.js';

const CLI = path.join(REPO_ROOT, 'dist/server/cli/main.js');

function bootfarm(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bootfarm usage errors', () => {
  it.each([
    [['rpi', 'eeprom-config', '--help'], "bootfarm: unknown command 'rpi' (see bootfarm --help)"],
    [['frobnicate'], "bootfarm: unknown command 'frobnicate' (see bootfarm --help)"],
    [['image', 'frobnicate', '--help'], "bootfarm image: unknown command 'frobnicate' (see bootfarm image --help)"],
    [['help', 'frobnicate'], "bootfarm: unknown command 'frobnicate' (see bootfarm --help)"],
    [['node', 'list', '--bogus'], "bootfarm node list: unknown option '--bogus'"],
    [['serve'], "bootfarm serve: required option '-c, --config <file>' not specified"],
  ])('bootfarm %j exits 2 with one line', (args, line) => {
    const r = bootfarm(...args);
    expect(r).toEqual({ code: 2, stdout: '', stderr: `${line}\n` });
  });

  it('--help of a real command prints its help on stdout and exits 0', () => {
    const r = bootfarm('config', 'check', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: bootfarm config check \[options\] <file>\n/);
    expect(r.stderr).toBe('');
  });

  it('no command at all is a usage error: the help on stderr, exit 2', () => {
    const r = bootfarm();
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: bootfarm \[options\] \[command\]\n/);
  });
});
