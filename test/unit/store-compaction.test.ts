// A compaction replaces the snapshot and empties the journal: it is fsynced even
// with server.syncWrites off (a snapshot not on disk when the journal is emptied
// loses both). Observed with strace on a real child process: the tmp file is
// created 0600, fsynced, renamed, the directory fsynced, and only then is the
// journal truncated.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../server/lab/proc.js';
import { nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';

describe('state store: compaction', () => {
  it('fsyncs the snapshot and its directory before emptying the journal, with syncWrites off', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-compact-'));
    try {
      const dir = path.join(work, 'state');
      const trace = path.join(work, 'trace');
      const r = await run('strace', [
        '-f',
        '-qq',
        '-o',
        trace,
        '-e',
        'trace=openat,fsync,fdatasync,rename,ftruncate',
        process.execPath,
        ...nodeArgs(path.join(REPO_ROOT, 'test/lib/state-compactor.ts'), [dir]),
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('done\n');
      // "PID syscall(args) = result", or split into "<unfinished ...>" / "<... resumed>".
      const calls = readFileSync(trace, 'utf8')
        .split('\n')
        .map((l) => l.replace(/^\d+\s+/, ''));
      const index = (test: (l: string) => boolean, from = 0) => {
        const i = calls.findIndex((l, n) => n >= from && test(l));
        expect(i, `not in the trace after line ${from}`).toBeGreaterThanOrEqual(0);
        return i;
      };
      const fdOf = (line: string) => Number(/= (\d+)$/.exec(line)?.[1]);
      const tmpOpen = index(
        (l) => l.startsWith('openat(') && l.includes(`"${dir}/state.snapshot`) && l.includes('.tmp"') && l.includes('O_CREAT'),
      );
      const tmpFd = fdOf(calls[tmpOpen] as string);
      const tmpSync = index((l) => l.startsWith(`fsync(${tmpFd}`) || l.startsWith(`fdatasync(${tmpFd}`), tmpOpen);
      const renamed = index((l) => l.startsWith(`rename("${dir}/state.snapshot`), tmpSync);
      const dirOpen = index((l) => l.startsWith(`openat(AT_FDCWD, "${dir}", O_RDONLY`), renamed);
      const dirSync = index((l) => l.startsWith(`fsync(${fdOf(calls[dirOpen] as string)}`), dirOpen);
      const journalOpen = index((l) => l.startsWith('openat(') && l.includes(`"${dir}/state.journal"`));
      index((l) => l.startsWith(`ftruncate(${fdOf(calls[journalOpen] as string)}, 0`), dirSync);
      // And the snapshot never exists with wider permissions, not even as the tmp file.
      expect(calls[tmpOpen]).toMatch(/, 0600\) = \d+$/);
      expect(calls[renamed]).toBe(`rename("${dir}/state.snapshot.tmp", "${dir}/state.snapshot") = 0`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
