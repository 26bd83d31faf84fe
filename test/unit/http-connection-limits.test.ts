// The HTTP connection caps and deadlines (server/http/connection-limits.ts) on
// a real HttpBootServer on loopback, with raw sockets from several loopback
// source addresses: which connections are closed unanswered, and how each
// close is counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { pino } from 'pino';
import { HttpBootServer } from '../../server/http/server.js';
import { clientAddress, httpServerOptions } from '../../server/http/connection-limits.js';
import { ResolverChain } from '../../server/boot/files/resolver.js';
import { Metrics } from '../../server/metrics.js';

const LIMITS = {
  maxConnections: 6,
  maxConnectionsPerClient: 3,
  headersTimeoutSeconds: 1,
  requestTimeoutSeconds: 2,
  keepAliveTimeoutSeconds: 1,
  idleTimeoutSeconds: 60,
};

interface Peer {
  socket: net.Socket;
  bytes: number;
  closed: Promise<void>;
}

describe('HTTP connection limits', () => {
  const metrics = new Metrics();
  const server = new HttpBootServer(
    { port: 0, host: '127.0.0.1', limits: LIMITS },
    new ResolverChain([]),
    pino({ level: 'silent' }),
    metrics,
  );
  beforeAll(async () => {
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
  });

  const connect = (from: string): Promise<Peer> =>
    new Promise((resolve) => {
      const socket = net.connect({ port: server.port, host: '127.0.0.1', localAddress: from });
      const peer: Peer = { socket, bytes: 0, closed: new Promise((done) => socket.once('close', () => done())) };
      socket.on('data', (chunk: Buffer) => {
        peer.bytes += chunk.length;
      });
      socket.on('error', () => undefined);
      socket.once('connect', () => resolve(peer));
    });
  const settled = (peer: Peer) =>
    Promise.race([peer.closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('open'), 300))]);
  const count = async (name: string, labels: string) => {
    const text = await metrics.registry.getSingleMetricAsString(name);
    return Number(new RegExp(`\\{${labels}\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };

  it('keeps http.maxConnectionsPerClient per address and http.maxConnections in all, closing the rest unanswered', async () => {
    const first = await Promise.all(Array.from({ length: 5 }, () => connect('127.0.0.2')));
    const states = await Promise.all(first.map(settled));
    expect(states.filter((s) => s === 'open')).toHaveLength(3);
    expect(first.filter((p, i) => states[i] === 'closed' && p.bytes === 0)).toHaveLength(2);
    const second = await Promise.all(Array.from({ length: 3 }, () => connect('127.0.0.3')));
    expect((await Promise.all(second.map(settled))).filter((s) => s === 'open')).toHaveLength(3);
    // 6 of 6 open: a seventh, from an address holding none, is closed too.
    const seventh = await connect('127.0.0.4');
    expect(await settled(seventh)).toBe('closed');
    expect(seventh.bytes).toBe(0);
    expect(await count('bootfarm_http_connections_refused_total', 'reason="client-full"')).toBe(2);
    expect(await count('bootfarm_http_connections_refused_total', 'reason="server-full"')).toBe(1);
    for (const p of [...first, ...second, seventh]) p.socket.destroy();
    // The server has seen them go before the next test opens more.
    for (
      let i = 0;
      i < 50 &&
      /bootfarm_http_connections_open [1-9]/.test(await metrics.registry.getSingleMetricAsString('bootfarm_http_connections_open'));
      i++
    )
      await new Promise((r) => setTimeout(r, 20));
    expect(await metrics.registry.getSingleMetricAsString('bootfarm_http_connections_open')).toMatch(/bootfarm_http_connections_open 0/);
  });

  it('counts a headers deadline as request and an expired keep-alive as keep-alive, not as a stalled reply', async () => {
    const silent = await connect('127.0.0.5');
    await silent.closed;
    expect(silent.bytes).toBeGreaterThan(0); // the 408 reply: not a refusal
    expect(await count('bootfarm_http_connections_timed_out_total', 'phase="request"')).toBeGreaterThanOrEqual(1);
    const kept = await connect('127.0.0.5');
    kept.socket.write('GET /healthz HTTP/1.1\r\nHost: bootfarm\r\n\r\n');
    await kept.closed;
    expect(kept.bytes).toBeGreaterThan(0);
    expect(await count('bootfarm_http_connections_timed_out_total', 'phase="keep-alive"')).toBe(1);
    expect(await count('bootfarm_http_connections_timed_out_total', 'phase="idle"')).toBe(0);
  });

  it('checks the deadlines often enough for the shorter one, and names IPv4-mapped peers as IPv4', () => {
    expect(httpServerOptions({ ...LIMITS, headersTimeoutSeconds: 10, requestTimeoutSeconds: 30 })).toEqual({
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 1000,
      connectionsCheckingInterval: 1000,
    });
    expect(httpServerOptions(LIMITS).connectionsCheckingInterval).toBe(250);
    expect(clientAddress('::ffff:10.9.0.2')).toBe('10.9.0.2');
    expect(clientAddress('fe80::1')).toBe('fe80::1');
    expect(clientAddress(undefined)).toBe('unknown');
  });
});
