// TFTP transfer slots, against the real server on loopback with real sockets:
// a burst of read requests cannot overshoot tftp.maxTransfers (the slot is taken
// before the first await), one client address cannot hold more than
// tftp.maxTransfersPerClient, and every refusal path gives its slot back.
import { afterEach, describe, expect, it, vi } from 'vitest';
import dgram from 'node:dgram';
import { pino } from 'pino';
import { TftpServer, type TftpFiles } from '../../server/tftp/server.js';
import { DEFAULT_TFTP_LIMITS } from '../../server/tftp/options.js';
import { encodeError, encodeRequest, parseTftpPacket, type TftpPacket } from '../../server/tftp/packet.js';
import { Metrics } from '../../server/metrics.js';
import type { FileAnswer, FileSource } from '../../server/boot/files/resolver.js';

const FILE = Buffer.alloc(100_000, 7);

/** Resolves after a macrotask, as the real chain does (stat, cache), so a burst arrives before any answer. */
function files(behaviour: (path: string) => 'ok' | 'missing' | 'resolve-throws' | 'open-throws'): TftpFiles {
  return {
    resolve: async (request): Promise<FileAnswer> => {
      await new Promise((r) => setTimeout(r, 5));
      const b = behaviour(request.path);
      if (b === 'resolve-throws') throw new Error('resolver broke');
      if (b === 'missing') return { found: false, denied: false, detail: 'no such file' };
      return {
        found: true,
        from: 'test',
        size: FILE.length,
        open: async (): Promise<FileSource> => {
          if (b === 'open-throws') throw new Error('EACCES');
          return { size: FILE.length, read: (o, l) => FILE.subarray(o, o + l), release: () => undefined };
        },
      };
    },
  };
}

const running: TftpServer[] = [];
const sockets: dgram.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const s of running.splice(0)) await s.stop();
});

async function startServer(maxTransfers: number, maxTransfersPerClient: number, resolver: TftpFiles) {
  const metrics = new Metrics();
  const server = new TftpServer(
    { port: 0, addresses: ['127.0.0.1'], limits: DEFAULT_TFTP_LIMITS, maxTransfers, maxTransfersPerClient },
    resolver,
    pino({ level: 'silent' }),
    metrics,
  );
  await server.start();
  running.push(server);
  return { server, metrics, port: server.listening()[0]?.port ?? 0 };
}

/** A client socket on `address` that records the first reply and who sent it. */
async function client(address = '127.0.0.1') {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, address, r));
  let first: { packet: TftpPacket; port: number } | undefined;
  s.on('message', (msg, rinfo) => {
    const p = parseTftpPacket(msg);
    if (!first && p.ok) first = { packet: p.packet, port: rinfo.port };
  });
  return { socket: s, reply: () => first };
}

async function burst(port: number, count: number, address = '127.0.0.1', file = 'f') {
  const clients = await Promise.all(Array.from({ length: count }, () => client(address)));
  for (const c of clients) c.socket.send(encodeRequest('rrq', file, 'octet'), port, '127.0.0.1');
  await vi.waitUntil(() => clients.every((c) => c.reply()), { timeout: 5000 });
  const started = clients.filter((c) => c.reply()?.packet.op === 'data');
  const busy = clients.filter((c) => {
    const r = c.reply()?.packet;
    return r?.op === 'error' && r.message === 'server busy, retry later';
  });
  return { clients, started, busy };
}

const gauge = async (metrics: Metrics) => (await metrics.tftpTransfersInFlight.get()).values[0]?.value;

describe('TFTP transfer slots', () => {
  it('a burst of 40 read requests starts exactly tftp.maxTransfers (4); the rest are answered busy', async () => {
    const { server, metrics, port } = await startServer(
      4,
      100,
      files(() => 'ok'),
    );
    const { started, busy } = await burst(port, 40);
    expect(started).toHaveLength(4);
    expect(busy).toHaveLength(36);
    expect(server.transfersInFlight).toBe(4);
    expect(await gauge(metrics)).toBe(4);
    // The clients abort (ERROR from their port): every slot comes back.
    for (const c of started) c.socket.send(encodeError(0, 'bye'), c.reply()?.port ?? 0, '127.0.0.1');
    await vi.waitUntil(() => server.transfersInFlight === 0, { timeout: 5000 });
    expect(await gauge(metrics)).toBe(0);
    expect((await burst(port, 1)).started).toHaveLength(1);
  });

  it('one client address holds at most tftp.maxTransfersPerClient (3); another address has its own', async () => {
    const { server, metrics, port } = await startServer(
      100,
      3,
      files(() => 'ok'),
    );
    const first = await burst(port, 10, '127.0.0.1');
    expect(first.started).toHaveLength(3);
    expect(first.busy).toHaveLength(7);
    const second = await burst(port, 10, '127.0.0.2');
    expect(second.started).toHaveLength(3);
    expect(server.transfersInFlight).toBe(6);
    const busyClient = (await metrics.tftpRequests.get()).values.find((v) => v.labels.outcome === 'busy-client');
    expect(busyClient?.value).toBe(14);
  });

  it('not found, a resolver that throws and an open that fails each give the slot back', async () => {
    let brokenResolved = 0;
    const { server, port } = await startServer(
      2,
      2,
      files((p) => {
        if (p === 'broken') brokenResolved++;
        return p === 'gone' ? 'missing' : p === 'broken' ? 'resolve-throws' : p === 'locked' ? 'open-throws' : 'ok';
      }),
    );
    for (const name of ['gone', 'locked', 'gone', 'locked']) {
      const r = await burst(port, 1, '127.0.0.1', name);
      expect(r.clients[0]?.reply()?.packet).toMatchObject({ op: 'error', code: 1 });
    }
    // A resolver that throws gets no reply (the failure is logged); one at a time, so the per-client cap does not answer first.
    for (let i = 1; i <= 3; i++) {
      (await client()).socket.send(encodeRequest('rrq', 'broken', 'octet'), port, '127.0.0.1');
      await vi.waitUntil(() => brokenResolved === i, { timeout: 5000 });
      await vi.waitUntil(() => server.transfersInFlight === 0, { timeout: 5000 });
    }
    expect((await burst(port, 2)).started).toHaveLength(2);
  });
});
