// One TFTP transfer's failure paths: each must end through the same finish() —
// onEnd once, source released once, socket closed, no timer left — and a
// datagram nobody can answer (source port 0) must neither throw nor disturb it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { Transfer, type TransferObserver, type TransferResult } from '../../server/tftp/transfer.js';
import { encodeAck, encodeError, parseTftpPacket } from '../../server/tftp/packet.js';
import type { Negotiated } from '../../server/tftp/options.js';
import type { FileSource } from '../../server/boot/files/resolver.js';

const plain: Negotiated = { blockSize: 512, windowSize: 1, timeoutMs: 1000, oack: [], ignored: [] };

class CountingSource implements FileSource {
  releases = 0;
  constructor(
    private readonly data: Buffer,
    private readonly failRead?: 'throw' | 'reject',
  ) {}
  get size(): number {
    return this.data.length;
  }
  read(offset: number, length: number): Buffer | Promise<Buffer> {
    if (this.failRead === 'throw') throw new Error('EIO: disk gone');
    if (this.failRead === 'reject') return Promise.reject(new Error('EIO: disk gone'));
    return this.data.subarray(offset, offset + length);
  }
  release(): void {
    this.releases++;
  }
}

type SendMode = 'ok' | 'async-error' | 'throw';

/** Records what a transfer sends; fails sends the way Node does, on demand. */
class FakeSocket extends EventEmitter {
  sent: Array<{ packet: Buffer; port: number; address: string }> = [];
  closes = 0;
  constructor(private readonly mode: SendMode = 'ok') {
    super();
  }
  send(parts: Buffer | Buffer[], port: number, address: string, callback?: (err: Error | null) => void): void {
    if (this.mode === 'throw') throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    this.sent.push({ packet: Buffer.concat(Array.isArray(parts) ? parts : [parts]), port, address });
    const err = this.mode === 'async-error' ? Object.assign(new Error('send EPERM'), { code: 'EPERM' }) : null;
    queueMicrotask(() => callback?.(err));
  }
  close(): void {
    this.closes++;
  }
}

function observe() {
  const ends: TransferResult[] = [];
  const strays: dgram.RemoteInfo[] = [];
  const sendErrors: Error[] = [];
  const observer: TransferObserver = { strayDropped: (r) => strays.push(r), sendFailed: (e) => sendErrors.push(e) };
  return { ends, strays, sendErrors, observer, onEnd: (r: TransferResult) => ends.push(r) };
}

const peer = { address: '127.0.0.1', port: 40000 };

describe('TFTP transfer failure paths', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a datagram from source port 0 to the transfer port is dropped without a reply and without throwing (real socket)', async () => {
    const server = dgram.createSocket('udp4');
    const client = dgram.createSocket('udp4');
    await Promise.all([new Promise<void>((r) => server.bind(0, '127.0.0.1', r)), new Promise<void>((r) => client.bind(0, '127.0.0.1', r))]);
    const received: Buffer[] = [];
    const got = new Promise<void>((resolve) =>
      client.on('message', (m) => {
        received.push(m);
        resolve();
      }),
    );
    const source = new CountingSource(Buffer.from('hello'));
    const o = observe();
    const transfer = new Transfer(server, { address: '127.0.0.1', port: client.address().port }, source, plain, o.onEnd, o.observer);
    transfer.start();
    await got;
    // What the kernel delivers for a forged datagram: rinfo.port 0. dgram.send to port 0 throws.
    expect(() => server.emit('message', encodeAck(1), { address: '127.0.0.1', port: 0, family: 'IPv4', size: 4 })).not.toThrow();
    expect(o.strays).toHaveLength(1);
    expect(o.ends).toEqual([]);
    // The transfer goes on: the client's ACK of the single block completes it.
    client.send(encodeAck(1), server.address().port, '127.0.0.1');
    await vi.waitUntil(() => o.ends.length > 0);
    expect(o.ends.map((e) => e.outcome)).toEqual(['complete']);
    expect(source.releases).toBe(1);
    const first = parseTftpPacket(received[0] as Buffer);
    expect(first.ok && first.packet.op === 'data' && first.packet.data.toString()).toBe('hello');
    client.close();
  });

  it('a client at port 0 ends in finish() at start: no throw, onEnd once, source released, socket closed, no timer', () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    const transfer = new Transfer(socket, { address: '10.9.0.2', port: 0 }, source, plain, o.onEnd, o.observer);
    expect(() => transfer.start()).not.toThrow();
    expect(o.ends.map((e) => e.outcome)).toEqual(['error']);
    expect({ releases: source.releases, closes: socket.closes, sent: socket.sent.length, timers: vi.getTimerCount() }).toEqual({
      releases: 1,
      closes: 1,
      sent: 0,
      timers: 0,
    });
  });

  it('a send that throws synchronously (socket closed under it, real socket) ends the transfer once', async () => {
    const server = dgram.createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    server.close();
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    const transfer = new Transfer(server, peer, source, plain, o.onEnd, o.observer);
    expect(() => transfer.start()).not.toThrow();
    expect(o.ends.map((e) => e.outcome)).toEqual(['error']);
    expect(o.ends[0]?.detail).toMatch(/send failed/);
    expect(source.releases).toBe(1);
  });

  it('a socket closed from outside (server stopping) ends the transfer at once (real socket)', async () => {
    const server = dgram.createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    new Transfer(server, peer, source, plain, o.onEnd, o.observer).start();
    server.close();
    await vi.waitUntil(() => o.ends.length > 0);
    expect(o.ends.map((e) => e.detail)).toEqual(['socket closed']);
    expect(source.releases).toBe(1);
  });

  it('a send the kernel refuses (callback error) ends the transfer once, with no timer left', async () => {
    vi.useFakeTimers();
    const socket = new FakeSocket('async-error');
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    new Transfer(socket, peer, source, { ...plain, windowSize: 4 }, o.onEnd, o.observer).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(o.ends.map((e) => e.outcome)).toEqual(['error']);
    expect(o.sendErrors.length).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect({ ends: o.ends.length, releases: source.releases, closes: socket.closes, timers: vi.getTimerCount() }).toEqual({
      ends: 1,
      releases: 1,
      closes: 1,
      timers: 0,
    });
  });

  it('a socket error, then a client ERROR and the timer: still one end, one release, one close', async () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    new Transfer(socket, peer, source, plain, o.onEnd, o.observer).start();
    socket.emit('error', new Error('EBADF'));
    socket.emit('message', encodeError(0, 'bye'), { address: peer.address, port: peer.port, family: 'IPv4', size: 7 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(o.ends.map((e) => e.outcome)).toEqual(['error']);
    expect({ releases: source.releases, closes: socket.closes, timers: vi.getTimerCount() }).toEqual({ releases: 1, closes: 1, timers: 0 });
  });

  it('a silent client times out once; the timer stops', async () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const source = new CountingSource(Buffer.alloc(2000));
    const o = observe();
    new Transfer(socket, peer, source, { ...plain, timeoutMs: 5000 }, o.onEnd, o.observer).start();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(o.ends.map((e) => e.outcome)).toEqual(['timeout']);
    expect({ releases: source.releases, closes: socket.closes, timers: vi.getTimerCount() }).toEqual({ releases: 1, closes: 1, timers: 0 });
  });

  it('a peer that never ACKs (a forged source address) is given up after 5 s; one that did ACK keeps its 15 s', async () => {
    vi.useFakeTimers();
    const dataSent = (socket: FakeSocket) => socket.sent.filter((p) => p.packet[1] === 3).length;
    const forged = new FakeSocket();
    const o1 = observe();
    new Transfer(forged, peer, new CountingSource(Buffer.alloc(2000)), plain, o1.onEnd, o1.observer).start();
    await vi.advanceTimersByTimeAsync(6_500);
    // Block 1 and 5 retransmissions, 1 s apart, then the end.
    expect(o1.ends.map((e) => e.outcome)).toEqual(['timeout']);
    expect(dataSent(forged)).toBe(6);

    const real = new FakeSocket();
    const o2 = observe();
    new Transfer(real, peer, new CountingSource(Buffer.alloc(2000)), plain, o2.onEnd, o2.observer).start();
    real.emit('message', encodeAck(1), { address: peer.address, port: peer.port, family: 'IPv4', size: 4 });
    await vi.advanceTimersByTimeAsync(6_500);
    expect(o2.ends).toEqual([]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(o2.ends.map((e) => e.outcome)).toEqual(['timeout']);
    // Block 1, block 2 after the ACK, then 15 retransmissions of block 2.
    expect(dataSent(real)).toBe(17);
  });

  for (const failRead of ['throw', 'reject'] as const) {
    it(`a source read that fails (${failRead}) sends ERROR 0 to the client, then closes; one end, one release`, async () => {
      vi.useFakeTimers();
      const socket = new FakeSocket();
      const source = new CountingSource(Buffer.alloc(2000), failRead);
      const o = observe();
      new Transfer(socket, peer, source, plain, o.onEnd, o.observer).start();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(o.ends.map((e) => e.outcome)).toEqual(['error']);
      const last = parseTftpPacket(socket.sent.at(-1)?.packet ?? Buffer.alloc(0));
      expect(last.ok && last.packet).toEqual({ op: 'error', code: 0, message: 'read error' });
      expect({ releases: source.releases, closes: socket.closes, timers: vi.getTimerCount() }).toEqual({
        releases: 1,
        closes: 1,
        timers: 0,
      });
    });
  }

  it('a stranger at a real port gets ERROR 5 and the transfer goes on', async () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const source = new CountingSource(Buffer.alloc(100));
    const o = observe();
    new Transfer(socket, peer, source, plain, o.onEnd, o.observer).start();
    socket.emit('message', encodeAck(1), { address: peer.address, port: 1, family: 'IPv4', size: 4 });
    const reply = socket.sent.at(-1);
    expect(reply?.port).toBe(1);
    const parsed = parseTftpPacket(reply?.packet ?? Buffer.alloc(0));
    expect(parsed.ok && parsed.packet).toMatchObject({ op: 'error', code: 5 });
    socket.emit('message', encodeAck(1), { address: peer.address, port: peer.port, family: 'IPv4', size: 4 });
    expect(o.ends.map((e) => e.outcome)).toEqual(['complete']);
    expect(source.releases).toBe(1);
  });
});
