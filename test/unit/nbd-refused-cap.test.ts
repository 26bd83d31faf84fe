// Connections of clients nbd.allow refuses have a small cap of their own and do
// not count against nbd.maxConnections: refused (e.g. forged) addresses cannot
// crowd out the nodes whose roots are served. Real NbdServer on loopback.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { pino } from 'pino';
import { NbdServer, MAX_REFUSED_CONNECTIONS } from '../../server/nbd/server.js';
import { ImageExportCatalog } from '../../server/nbd/catalog.js';
import { Metrics } from '../../server/metrics.js';

const PORT = 10899;

/** Connects from `source`; resolves after `ms` with the bytes received so far and whether it was closed. */
function probe(source: string, ms = 400): Promise<{ socket: net.Socket; bytes: () => number; closed: () => boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: PORT, localAddress: source });
    let bytes = 0;
    let closed = false;
    socket.on('data', (d) => {
      bytes += d.length;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
    });
    setTimeout(() => resolve({ socket, bytes: () => bytes, closed: () => closed }), ms);
  });
}

describe('NBD: refused clients have a cap of their own', () => {
  let server: NbdServer | undefined;
  const opened: net.Socket[] = [];
  afterEach(async () => {
    for (const s of opened) s.destroy();
    opened.length = 0;
    await server?.stop();
  });

  it(`accepts at most ${MAX_REFUSED_CONNECTIONS} refused connections at once, and they leave nbd.maxConnections to admitted clients`, async () => {
    const metrics = new Metrics();
    server = new NbdServer(
      {
        port: PORT,
        host: '127.0.0.1',
        handshakeTimeoutSeconds: 30,
        maxConnections: 2,
        maxConnectionsPerClient: 1000,
        maxHandshakeOptions: 32,
        maxBufferedReadMiB: 64,
      },
      new ImageExportCatalog('/nonexistent', []),
      // 127.0.0.1 is refused; any other loopback address is admitted.
      { refusal: (address) => (address === '127.0.0.1' ? 'no lease (test)' : undefined), nodeOf: () => undefined },
      pino({ level: 'silent' }),
      metrics,
    );
    await server.start();
    const refused = [];
    for (let i = 0; i < MAX_REFUSED_CONNECTIONS; i++) refused.push(probe('127.0.0.1', 0));
    const held = await Promise.all(refused);
    opened.push(...held.map((h) => h.socket));
    await new Promise((r) => setTimeout(r, 300));
    // Each refused client got its greeting (it is told why on its first option).
    expect(held.filter((h) => h.bytes() > 0 && !h.closed())).toHaveLength(MAX_REFUSED_CONNECTIONS);
    const overRefused = await probe('127.0.0.1');
    opened.push(overRefused.socket);
    expect({ bytes: overRefused.bytes(), closed: overRefused.closed() }).toEqual({ bytes: 0, closed: true });
    // Admitted clients still have nbd.maxConnections (2) for themselves.
    const admitted = await Promise.all([probe('127.0.0.2'), probe('127.0.0.3')]);
    opened.push(...admitted.map((a) => a.socket));
    expect(admitted.map((a) => a.bytes() > 0 && !a.closed())).toEqual([true, true]);
    const overAdmitted = await probe('127.0.0.4');
    opened.push(overAdmitted.socket);
    expect({ bytes: overAdmitted.bytes(), closed: overAdmitted.closed() }).toEqual({ bytes: 0, closed: true });
    const text = await metrics.registry.metrics();
    expect(text).toContain('bootfarm_nbd_connections_rejected_total{reason="refused-cap"} 1');
    expect(text).toContain('bootfarm_nbd_connections_rejected_total{reason="global-cap"} 1');
  });
});
