// A state write that fails for real (ENOSPC on a full filesystem: a tiny tmpfs
// mounted in a private mount namespace the test creates, gone with its last
// process) is logged, retried with backoff, rejected to the callers waiting on
// it, never an unhandled rejection, and surfaced: bootfarm_state_healthy 0,
// bootfarm_state_write_errors_total, /healthz 503 with the reason. Once space is
// back the queued records are written and nothing acknowledged or kept in memory
// is lost.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Background, run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';

/** argv that runs `command` with a 256 KiB tmpfs on `mountDir`, visible to it alone. */
function onTinyTmpfs(mountDir: string, command: string[]): string[] {
  return [
    '-m',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'd=$1; shift; mount -t tmpfs -o size=256k bootfarm-state-test "$d" && exec "$@"',
    'sh',
    mountDir,
    ...command,
  ];
}

describe('state write errors (ENOSPC on a real filesystem)', () => {
  it('rejects the waiting callers, retries, surfaces it, and loses nothing once space is back', async () => {
    const mountDir = mkdtempSync(path.join(tmpdir(), 'bootfarm-enospc-'));
    try {
      const r = await run(
        'unshare',
        onTinyTmpfs(mountDir, [process.execPath, ...nodeArgs(path.join(REPO_ROOT, 'test/lib/state-disk-full.ts'), [mountDir])]),
        60_000,
      );
      expect(r.code, r.stderr).toBe(0);
      const seen = JSON.parse(r.stdout) as {
        refusedAt: number | undefined;
        refusal: string;
        leases: number[];
        events: number;
        unhandled: string[];
        whileFull: {
          health: { healthy: boolean; reason: string };
          healthyGauge: number;
          journalErrors: number;
          compactionErrors: number;
          nextCommit: string;
        };
        afterFree: { healthyGauge: number; commit: string };
      };
      expect(seen.unhandled).toEqual([]);
      expect(seen.refusal).toBe('ENOSPC');
      expect(seen.whileFull.health).toMatchObject({ healthy: false, reason: expect.stringContaining('ENOSPC') });
      expect(seen.whileFull.healthyGauge).toBe(0);
      expect(seen.whileFull.journalErrors).toBeGreaterThanOrEqual(1);
      expect(seen.whileFull.compactionErrors).toBeGreaterThanOrEqual(1);
      expect(seen.whileFull.nextCommit).toMatch(/^state not saved: .*ENOSPC/);
      expect(seen.afterFree).toEqual({ healthyGauge: 1, commit: 'ok' });
      // Every lease committed before the disk filled, the refused ones (kept in memory
      // and retried), and the one after: all on disk after a restart.
      const refusedAt = seen.refusedAt as number;
      expect(seen.leases).toEqual([...Array.from({ length: refusedAt }, (_, i) => i + 1), 250, 251]);
      expect(seen.events).toBe(120);
    } finally {
      rmSync(mountDir, { recursive: true, force: true });
    }
  });

  it('bootfarm serve answers /healthz 503 with the reason while the state disk is full, and 200 once it is not', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-enospc-serve-'));
    const mountDir = path.join(work, 'mnt');
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const token = 'state-test-token-0123456789';
    const configFile = path.join(work, 'bootfarm.yaml');
    writeFileSync(
      configFile,
      stringify({
        server: { address: '127.0.0.1', stateDir: path.join(mountDir, 'state') },
        http: { port, host: '127.0.0.1' },
        api: { token },
        log: { level: 'info' },
      }),
    );
    mkdirSync(mountDir);
    const server = Background.start(
      'unshare',
      onTinyTmpfs(mountDir, [process.execPath, ...nodeArgs(CLI, ['serve', '--config', configFile])]),
      'bootfarm',
    );
    const curl = async (method: string, url: string, body?: unknown) => {
      const args = ['-sS', '-X', method, '-o', '-', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${token}`];
      if (body !== undefined) args.push('-H', 'content-type: application/json', '--data', JSON.stringify(body));
      const res = await run('curl', [...args, `http://127.0.0.1:${port}${url}`]);
      const lines = res.stdout.trimEnd().split('\n');
      return { status: Number(lines.pop()), text: lines.join('\n') };
    };
    // Runs in the server's mount namespace, where the tmpfs is.
    const inServerMounts = (script: string) => run('nsenter', ['-t', String(server.pid), '-m', '--', 'sh', '-c', script]);
    try {
      await server.waitFor((l) => l.includes('"bootfarm ready"'), 30_000, 'bootfarm ready');
      expect(await curl('GET', '/healthz')).toEqual({ status: 200, text: '{"status":"ok"}' });

      // Bounded, and only onto the tmpfs: never a runaway file on the host's disk.
      const filled = await inServerMounts(`mountpoint -q ${mountDir} && { head -c 1M /dev/zero > ${mountDir}/filler; df -k ${mountDir}; }`);
      expect(filled.stdout).toMatch(/ 100% /);
      let refused: { status: number; text: string } | undefined;
      for (let i = 0; i < 60 && !refused; i++) {
        const res = await curl('POST', '/api/v1/nodes', {
          mac: `52:54:00:aa:00:${i.toString(16).padStart(2, '0')}`,
          hostname: `filler-${i}`,
        });
        if (res.status >= 500) refused = res;
      }
      expect(refused?.status, refused?.text).toBe(500);
      const unhealthy = await curl('GET', '/healthz');
      expect(unhealthy.status).toBe(503);
      expect(JSON.parse(unhealthy.text)).toMatchObject({ status: 'unhealthy', reason: 'state writes are failing (ENOSPC)' });
      // /healthz answers anyone on the segment: the state directory's path stays in the log.
      expect(unhealthy.text).not.toContain(mountDir);
      expect(refused?.text).not.toContain(mountDir);
      const metrics = (await curl('GET', '/metrics')).text;
      expect(metrics).toMatch(/^bootfarm_state_healthy 0$/m);
      expect(metrics).toMatch(/^bootfarm_state_write_errors_total\{operation="journal"\} [1-9]\d*$/m);
      await server.waitFor(
        (l) => l.includes('"state write failed; retrying"') && l.includes('ENOSPC'),
        5_000,
        'the write error in the log',
      );

      await inServerMounts(`rm ${mountDir}/filler`);
      await waitUntil(async () => (await curl('GET', '/healthz')).status === 200, 20_000, '/healthz 200 again');
      expect((await curl('POST', '/api/v1/nodes', { mac: '52:54:00:bb:00:01', hostname: 'after-space' })).status).toBe(201);
      expect(await server.stop('SIGTERM', 10_000)).toBe(0);
      expect(server.lines.filter((l) => l.includes('nhandled'))).toEqual([]);
    } finally {
      await server.stop('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    }
  });
});
