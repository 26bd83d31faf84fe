// /healthz answers anyone on the boot segment: while the lease store (etcd) is
// unhealthy it says so with a fixed reason, never etcd's error text, which can
// name etcd's endpoints (the log keeps that detail for the operator).
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { HttpBootServer, LEASE_STORE_UNREACHABLE } from '../../server/http/server.js';
import { ResolverChain } from '../../server/boot/files/resolver.js';
import { Metrics } from '../../server/metrics.js';
import { TEST_HTTP_LIMITS } from '../lib/http-limits.js';
import type { ClaimsHealth } from '../../server/store/lease-claims.js';

const run = promisify(execFile);

describe('/healthz while the lease store cannot be reached', () => {
  let server: HttpBootServer | undefined;
  afterEach(async () => {
    await server?.stop();
  });

  it('is 200 degraded with a fixed reason; etcd endpoints in the error do not reach the answer', async () => {
    const since = Date.UTC(2026, 0, 1);
    const health: ClaimsHealth = {
      healthy: false,
      reason:
        'claim of 10.9.0.100: 14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.77.0.5:2379 (http://etcd-a.internal:2379)',
      since,
    };
    server = new HttpBootServer(
      { port: 0, host: '127.0.0.1', limits: TEST_HTTP_LIMITS, leaseStoreHealth: () => health },
      new ResolverChain([]),
      pino({ level: 'silent' }),
      new Metrics(),
    );
    await server.start();
    const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', `http://127.0.0.1:${server.port}/healthz`]);
    const [body, code] = stdout.split('\n');
    expect(code).toBe('200');
    expect(JSON.parse(body ?? '')).toEqual({
      status: 'degraded',
      leaseStore: { healthy: false, reason: LEASE_STORE_UNREACHABLE, since: new Date(since).toISOString() },
    });
    expect(body).not.toMatch(/10\.77\.0\.5|etcd-a|2379/);
  });
});
