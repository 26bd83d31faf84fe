// tftp.singlePort against the real server on loopback with real sockets: every
// reply comes from the listener's port, concurrent transfers are told apart by
// the client's (address, port), a datagram from a peer with no transfer is dropped
// without a reply and disturbs no one, a new RRQ from a peer with a transfer
// running restarts it, and the transfer caps still hold.
import { afterEach, describe, expect, it, vi } from 'vitest';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { TftpServer, type TftpFiles } from '../../server/tftp/server.js';
import { DEFAULT_TFTP_LIMITS } from '../../server/tftp/options.js';
import { encodeAck, encodeError, encodeRequest, parseTftpPacket, type TftpPacket } from '../../server/tftp/packet.js';
import { Metrics } from '../../server/metrics.js';

const FILE = randomBytes(40_000 + 77);

const files: TftpFiles = {
  resolve: () =>
    Promise.resolve({
      found: true,
      from: 'test',
      size: FILE.length,
      open: () => Promise.resolve({ size: FILE.length, read: (o: number, l: number) => FILE.subarray(o, o + l), release: () => undefined }),
    }),
};

const running: TftpServer[] = [];
const sockets: dgram.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const s of running.splice(0)) await s.stop();
});

async function startServer(maxTransfersPerClient = 8) {
  const metrics = new Metrics();
  const server = new TftpServer(
    { port: 0, addresses: ['127.0.0.1'], limits: DEFAULT_TFTP_LIMITS, maxTransfers: 100, maxTransfersPerClient, singlePort: true },
    files,
    pino({ level: 'silent' }),
    metrics,
  );
  await server.start();
  running.push(server);
  return { server, metrics, port: server.listening()[0]?.port ?? 0 };
}

/** A client socket that queues every reply with the port it came from. */
async function client() {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  type Reply = { packet: TftpPacket; port: number };
  const queue: Reply[] = [];
  let waiting: ((r: Reply) => void) | undefined;
  let seen = 0;
  s.on('message', (msg, rinfo) => {
    seen++;
    const p = parseTftpPacket(msg);
    if (!p.ok) return;
    const reply = { packet: p.packet, port: rinfo.port };
    if (waiting) {
      waiting(reply);
      waiting = undefined;
    } else queue.push(reply);
  });
  // Resolves on the datagram itself (polling would cost an interval per block); vitest's test timeout bounds a lost one.
  const next = (): Promise<Reply> => {
    const queued = queue.shift();
    return queued
      ? Promise.resolve(queued)
      : new Promise((resolve) => {
          waiting = resolve;
        });
  };
  return { socket: s, next, seen: () => seen };
}

type Client = Awaited<ReturnType<typeof client>>;

/** The next DATA block (its number and bytes), asserting it came from the listener's port. */
async function nextData(c: Client, serverPort: number): Promise<{ block: number; data: Buffer }> {
  const { packet, port } = await c.next();
  expect(port).toBe(serverPort);
  if (packet.op !== 'data') throw new Error(`expected DATA, got ${JSON.stringify(packet)}`);
  return { block: packet.block, data: Buffer.from(packet.data) };
}

/** Lock-step from `first` (already received) to the short last block; returns the bytes from `first` on. */
async function finish(c: Client, serverPort: number, first: { block: number; data: Buffer }): Promise<Buffer> {
  const chunks = [first.data];
  let current = first;
  while (current.data.length === 512) {
    c.socket.send(encodeAck(current.block), serverPort, '127.0.0.1');
    current = await nextData(c, serverPort);
    chunks.push(current.data);
  }
  c.socket.send(encodeAck(current.block), serverPort, '127.0.0.1');
  return Buffer.concat(chunks);
}

const counter = async (c: Metrics['tftpDropped'] | Metrics['tftpTransfers'], label: string) =>
  (await c.get()).values.find((v) => Object.values(v.labels).includes(label))?.value ?? 0;

describe('TFTP single-port mode', () => {
  it('two clients download at once, every reply from the listener port, each gets its own bytes', async () => {
    const { server, port } = await startServer();
    const [a, b] = [await client(), await client()];
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    b.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const [firstA, firstB] = [await nextData(a, port), await nextData(b, port)];
    expect(server.transfersInFlight).toBe(2);
    const [gotA, gotB] = await Promise.all([finish(a, port, firstA), finish(b, port, firstB)]);
    expect(gotA.equals(FILE)).toBe(true);
    expect(gotB.equals(FILE)).toBe(true);
    await vi.waitUntil(() => server.transfersInFlight === 0, { timeout: 5000 });
  });

  it('an ERROR or ACK from a peer with no transfer gets no reply and does not disturb a transfer', async () => {
    const { server, metrics, port } = await startServer();
    const a = await client();
    const stranger = await client();
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const first = await nextData(a, port);
    // Same address as the client, another port: it must not abort a's transfer.
    stranger.socket.send(encodeError(0, 'go away'), port, '127.0.0.1');
    stranger.socket.send(encodeAck(1), port, '127.0.0.1');
    await vi.waitUntil(async () => (await counter(metrics.tftpDropped, 'unknown-peer')) === 2, { timeout: 5000 });
    expect(server.transfersInFlight).toBe(1);
    expect((await finish(a, port, first)).equals(FILE)).toBe(true);
    await vi.waitUntil(async () => (await counter(metrics.tftpTransfers, 'complete')) === 1, { timeout: 5000 });
    expect(stranger.seen()).toBe(0);
    expect(await counter(metrics.tftpTransfers, 'error')).toBe(0);
  });

  it('a new RRQ from the address and port of a running transfer restarts it: block 1 again, one slot held', async () => {
    const { server, metrics, port } = await startServer();
    const a = await client();
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const one = await nextData(a, port);
    a.socket.send(encodeAck(one.block), port, '127.0.0.1');
    expect((await nextData(a, port)).block).toBe(2);
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const again = await nextData(a, port);
    expect(again.block).toBe(1);
    expect(server.transfersInFlight).toBe(1);
    expect(await counter(metrics.tftpTransfers, 'aborted-by-client')).toBe(1);
    expect((await finish(a, port, again)).equals(FILE)).toBe(true);
    await vi.waitUntil(() => server.transfersInFlight === 0, { timeout: 5000 });
    expect(await counter(metrics.tftpTransfers, 'complete')).toBe(1);
  });

  it('two RRQs from one address and port back to back: the later wins, whichever order the two resolutions end in', async () => {
    const { server, metrics, port } = await startServer();
    const a = await client();
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    // Each request's transfer sent its block 1; the first was then superseded.
    expect((await nextData(a, port)).block).toBe(1);
    const second = await nextData(a, port);
    expect(second.block).toBe(1);
    await vi.waitUntil(async () => (await counter(metrics.tftpTransfers, 'aborted-by-client')) === 1, { timeout: 5000 });
    expect(server.transfersInFlight).toBe(1);
    expect((await finish(a, port, second)).equals(FILE)).toBe(true);
    await vi.waitUntil(() => server.transfersInFlight === 0, { timeout: 5000 });
  });

  it('a WRQ from the address and port of a running transfer is refused and does not end it', async () => {
    const { server, port } = await startServer();
    const a = await client();
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const first = await nextData(a, port);
    a.socket.send(encodeRequest('wrq', 'f', 'octet'), port, '127.0.0.1');
    expect((await a.next()).packet).toMatchObject({ op: 'error', code: 4 });
    expect(server.transfersInFlight).toBe(1);
    expect((await finish(a, port, first)).equals(FILE)).toBe(true);
  });

  it('tftp.maxTransfersPerClient still holds: a third port of the same address is answered busy, from the listener port', async () => {
    const { server, port } = await startServer(2);
    const clients = [await client(), await client(), await client()];
    for (const c of clients.slice(0, 2)) {
      c.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
      await nextData(c, port);
    }
    clients[2]?.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    const refused = await (clients[2] as Client).next();
    expect(refused.port).toBe(port);
    expect(refused.packet).toMatchObject({ op: 'error', message: 'server busy, retry later' });
    expect(server.transfersInFlight).toBe(2);
  });

  it('stop() ends the transfers answered from the listener and gives their slots back', async () => {
    const { server, metrics, port } = await startServer();
    const a = await client();
    a.socket.send(encodeRequest('rrq', 'f', 'octet'), port, '127.0.0.1');
    await nextData(a, port);
    await server.stop();
    expect(server.transfersInFlight).toBe(0);
    expect(await counter(metrics.tftpTransfers, 'error')).toBe(1);
  });
});
