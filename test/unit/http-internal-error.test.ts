// A request that fails inside bootfarm is a 500 whose answer names no detail:
// anyone on the boot segment can send it, and an error's text can carry a path
// under the state directory, an errno or a peer's address. The log keeps it.
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { HttpBootServer } from '../../server/http/server.js';
import { ResolverChain, type FileResolver } from '../../server/boot/files/resolver.js';
import { Metrics } from '../../server/metrics.js';
import { TEST_HTTP_LIMITS } from '../lib/http-limits.js';

const run = promisify(execFile);

const DETAIL = "EACCES: permission denied, open '/var/lib/bootfarm/tpm-eks.json.tmp'";

describe('HTTP: an internal error', () => {
  let server: HttpBootServer | undefined;
  afterEach(async () => {
    await server?.stop();
  });

  it('answers 500 with a fixed message and logs the detail', async () => {
    const failing: FileResolver = {
      name: 'failing',
      resolve: () => Promise.reject(new Error(DETAIL)),
    };
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => logged.push(line) });
    server = new HttpBootServer(
      { port: 0, host: '127.0.0.1', limits: TEST_HTTP_LIMITS },
      new ResolverChain([failing]),
      logger,
      new Metrics(),
    );
    await server.start();
    const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', `http://127.0.0.1:${server.port}/boot/vmlinuz`]);
    const [body, code] = stdout.split('\n');
    expect(code).toBe('500');
    expect(JSON.parse(body ?? '')).toEqual({ error: 'internal error', message: 'internal error: the server log has the detail' });
    expect(body).not.toMatch(/EACCES|tpm-eks|\/var\/lib/);
    expect(logged.some((l) => l.includes('EACCES') && l.includes('http request failed'))).toBe(true);
  }, 20_000);
});
