// server/log.ts endLog: every line logged before the exit reaches stdout, in
// order, even while the asynchronous write of an earlier line is still queued
// in the thread pool (pino's own exit hook would write the later lines first
// and drop the queued one).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../lib/bootfarm.js';

function runChild(): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/lib/log-exit-child.ts')], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout })));
}

describe('the process log at exit', () => {
  it('writes every line, in order, before the process exits', async () => {
    const { code, stdout } = await runChild();
    expect(code).toBe(0);
    const msgs = stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toEqual(['transfers in flight finished', 'stopped']);
  });
});
