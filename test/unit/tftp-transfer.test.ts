// One TFTP transfer's failure paths: each must end through the same finish() —
// onEnd once, source released once, socket closed, no timer left — and a
// datagram nobody can answer (source port 0) must neither throw nor disturb it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { Transfer, type TransferObserver, type TransferResult } from '../../server/tftp/transfer.js';
import { dataHeader, encodeAck, encodeError, encodeRequest, parseTftpPacket } from '../../server/tftp/packet.js';
import type { Negotiated } from '../../server/tftp/options.js';
import type { FileSource } from '../../server/boot/files/resolver.js';

const plain: Negotiated = { blockSize: 512, windowSize: 1, timeoutMs: 1000, oack: [], ignored: [] };

class CountingSource implements FileSource {
  releases = 0;
  constructor(
    private readonly data: Buffer,
    private readonly failRead?: 'throw' | 'reject' | 'async',
  ) {}
  get size(): number {
    return this.data.length;
  }
  readsAfterRelease = 0;
  read(offset: number, length: number): Buffer | Promise<Buffer> {
    // A transfer asks only for bytes the file has (the final empty block is no read).
    if (length <= 0 || offset + length > this.data.length) throw new Error(`read of ${length} bytes at ${offset} outside the file`);
    if (this.releases > 0) this.readsAfterRelease++;
    if (this.failRead === 'throw') throw new Error('EIO: disk gone');
    if (this.failRead === 'reject') return Promise.reject(new Error('EIO: disk gone'));
    if (this.failRead === 'async') return Promise.resolve(this.data.subarray(offset, offset + length));
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
    expect(o.ends.map((e) => [e.outcome, e.detail])).toEqual([['error', 'client port 0 cannot be answered']]);
    expect(o.sendErrors).toEqual([]);
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
    expect(o.ends.map((e) => [e.outcome, e.detail])).toEqual([['error', 'socket error: EBADF']]);
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

// The state machine's decisions, seen from the wire: which block goes out when,
// which ACK moves the transfer on, when it retransmits, when it gives up, and
// what its result says (bytes, retransmits, outcome).
describe('TFTP transfer decisions', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const fromPeer = { address: peer.address, port: peer.port, family: 'IPv4' as const, size: 4 };
  /** Bytes 0, 1, ... 250, 0, 1, ...: every block's content is distinct from its neighbours'. */
  const pattern = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => i % 251));

  function start(size: number, negotiated: Partial<Negotiated> = {}, mode?: 'async') {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const data = pattern(size);
    const source = new CountingSource(data, mode);
    const o = observe();
    const transfer = new Transfer(socket, peer, source, { ...plain, ...negotiated }, o.onEnd, o.observer);
    transfer.start();
    const ack = (block: number) => socket.emit('message', encodeAck(block), fromPeer);
    /** The packets sent to the peer (the last `last` of them), decoded. */
    const packets = (last = socket.sent.length) =>
      socket.sent
        .slice(socket.sent.length - last)
        .map((s) => parseTftpPacket(s.packet))
        .map((r) => (r.ok ? r.packet : undefined));
    /** The DATA packets sent as [wire block, length]. */
    const blocks = (last?: number) => packets(last).flatMap((p) => (p?.op === 'data' ? [[p.block, p.data.length]] : []));
    return { socket, source, data, o, transfer, ack, packets, blocks };
  }

  it('sends a 1025-byte file at blksize 512 as blocks of 512, 512 and 1 bytes, one per ACK, and completes on the last ACK', () => {
    const t = start(1025);
    expect(t.blocks()).toEqual([[1, 512]]);
    t.ack(1);
    expect(t.blocks()).toEqual([
      [1, 512],
      [2, 512],
    ]);
    t.ack(2);
    expect(t.blocks()).toEqual([
      [1, 512],
      [2, 512],
      [3, 1],
    ]);
    expect(t.o.ends).toEqual([]);
    t.ack(3);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 1025, retransmits: 0 }]);
    const payload = Buffer.concat(t.packets().flatMap((p) => (p?.op === 'data' ? [p.data] : [])));
    expect(payload.equals(t.data)).toBe(true);
    expect({ releases: t.source.releases, closes: t.socket.closes, timers: vi.getTimerCount() }).toEqual({
      releases: 1,
      closes: 1,
      timers: 0,
    });
  });

  it('ends a file of an exact multiple of blksize with an empty block (RFC 1350 §6) and completes only on its ACK', () => {
    const t = start(1024);
    t.ack(1);
    t.ack(2);
    expect(t.blocks()).toEqual([
      [1, 512],
      [2, 512],
      [3, 0],
    ]);
    expect(t.o.ends).toEqual([]);
    t.ack(3);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 1024 }]);
  });

  it('sends an empty file as one empty block', () => {
    const t = start(0);
    expect(t.blocks()).toEqual([[1, 0]]);
    t.ack(1);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 0 }]);
  });

  it('windowsize 4: sends four blocks at once, continues after the ACK of a block inside the window, never past the last block', () => {
    const t = start(8 * 512 + 100, { windowSize: 4 });
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 3, 4]);
    // The ACK of block 2 (3 and 4 lost): the next window starts at 3.
    t.ack(2);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 3, 4, 3, 4, 5, 6]);
    // Blocks 7..9 are the rest of the file: the window stops at block 9, not at 10.
    t.ack(6);
    expect(t.blocks().slice(8)).toEqual([
      [7, 512],
      [8, 512],
      [9, 100],
    ]);
    t.ack(9);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 8 * 512 + 100, retransmits: 2 }]);
  });

  it("ignores a duplicate ACK, an ACK of a block not sent yet and an ACK 0 after the start (no Sorcerer's Apprentice retransmission)", () => {
    const t = start(3000);
    t.ack(1);
    const sent = t.socket.sent.length;
    t.ack(1);
    t.ack(5);
    t.ack(0);
    expect(t.socket.sent.length).toBe(sent);
    expect(t.o.ends).toEqual([]);
    t.ack(2);
    expect(t.blocks().at(-1)).toEqual([3, 512]);
  });

  it('with options: sends the OACK first, ignores ACKs other than 0 until then, starts DATA on ACK 0 and resends the OACK on timeout', async () => {
    const t = start(600, { oack: [['blksize', '512']] });
    expect(t.packets()).toEqual([{ op: 'oack', options: [['blksize', '512']] }]);
    t.ack(1);
    expect(t.socket.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.packets()).toEqual([
      { op: 'oack', options: [['blksize', '512']] },
      { op: 'oack', options: [['blksize', '512']] },
    ]);
    t.ack(0);
    expect(t.blocks()).toEqual([[1, 512]]);
    t.ack(1);
    t.ack(2);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 600, retransmits: 1 }]);
  });

  it('block numbers wrap 65535 -> 0, and the ACK of block 0 after the wrap acknowledges block 65536', () => {
    const size = 65_540;
    // One-byte blocks in windows of 4096 (no limit applies here: negotiate() clamps, not the transfer).
    const t = start(size, { blockSize: 1, windowSize: 4096 });
    for (let acked = 0; acked < 61_440; acked += 4096) t.ack(acked + 4096);
    // Blocks 61441..65536 are out: the last of them is wire block 0.
    expect(t.blocks(2)).toEqual([
      [65_535, 1],
      [0, 1],
    ]);
    // A stale number (block 61440, acknowledged already) moves nothing.
    const sent = t.socket.sent.length;
    t.ack(61_440);
    expect(t.socket.sent.length).toBe(sent);
    t.ack(0);
    expect(t.blocks(5)).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
      [5, 0],
    ]);
    t.ack(5);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: size, retransmits: 0 }]);
  });

  it('retransmits the unacknowledged window once per timeout, not before, and counts each resent block', async () => {
    const t = start(3000, { windowSize: 2, timeoutMs: 2000 });
    await vi.advanceTimersByTimeAsync(1999);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 1, 2]);
    t.ack(2);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 1, 2, 3, 4]);
    // The ACK re-armed the timer: a full timeout after it, not after the last one.
    await vi.advanceTimersByTimeAsync(1999);
    expect(t.blocks()).toHaveLength(6);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
    t.ack(4);
    t.ack(6);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 3000, retransmits: 4 }]);
  });

  it('gives up after at least 3 retransmissions even when the timeout is long: 5 s timeout, 4 sends, ends at 20 s', async () => {
    const t = start(3000, { timeoutMs: 5000 });
    await vi.advanceTimersByTimeAsync(19_999);
    expect(t.o.ends).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.o.ends).toMatchObject([{ outcome: 'timeout', bytes: 0, retransmits: 3, durationMs: 20_000 }]);
    expect(t.blocks()).toHaveLength(4);
    expect(t.o.ends[0]?.detail).toBe('no ACK after 3 retransmissions');
  });

  it('a client that ACKed every block but the last and fell silent: final-ack-missing with the whole file counted', async () => {
    const t = start(600);
    t.ack(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.o.ends).toMatchObject([
      { outcome: 'final-ack-missing', bytes: 600, detail: 'no ACK for the last block after 15 retransmissions' },
    ]);
  });

  it('is no final-ack-missing when the client never ACKed the OACK of a one-block file: a timeout with 0 bytes', async () => {
    const t = start(100, { oack: [['tsize', '100']] });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.o.ends).toMatchObject([{ outcome: 'timeout', bytes: 0 }]);
  });

  it('is no final-ack-missing when the whole window went out but earlier blocks were not ACKed: a timeout', async () => {
    const t = start(1100, { windowSize: 4 });
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 3]);
    t.ack(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.o.ends).toMatchObject([{ outcome: 'timeout', bytes: 512 }]);
  });

  it('a disk read that never returns does not hold the transfer forever: it times out with the bytes ACKed, not as final-ack-missing', async () => {
    vi.useFakeTimers();
    const socket = new FakeSocket();
    const source = new CountingSource(pattern(600), 'async');
    const read = source.read.bind(source);
    source.read = (offset, length) => (offset >= 512 ? new Promise<Buffer>(() => undefined) : read(offset, length));
    const o = observe();
    new Transfer(socket, peer, source, plain, o.onEnd, o.observer).start();
    await vi.advanceTimersByTimeAsync(0);
    socket.emit('message', encodeAck(1), fromPeer);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(o.ends).toMatchObject([{ outcome: 'timeout', bytes: 512 }]);
  });

  it('a transfer that ends while a disk read is pending reads nothing more and sends nothing more', async () => {
    const t = start(5 * 512, { windowSize: 4 }, 'async');
    t.socket.emit('message', encodeError(0, 'Early terminate'), fromPeer);
    await vi.advanceTimersByTimeAsync(60_000);
    expect({ sent: t.socket.sent.length, readsAfterRelease: t.source.readsAfterRelease, outcome: t.o.ends.map((e) => e.outcome) }).toEqual({
      sent: 0,
      readsAfterRelease: 0,
      outcome: ['aborted-by-client'],
    });
  });

  it('after the end, a datagram from a stranger gets no ERROR 5 (the socket is closed)', () => {
    const t = start(100);
    t.ack(1);
    t.socket.emit('message', encodeAck(1), { ...fromPeer, port: 1 });
    expect(t.packets().map((p) => p?.op)).toEqual(['data']);
  });

  it('a send that throws at once ends the transfer with no timer armed', () => {
    vi.useFakeTimers();
    const o = observe();
    new Transfer(new FakeSocket('throw'), peer, new CountingSource(pattern(2000)), plain, o.onEnd, o.observer).start();
    expect({ outcomes: o.ends.map((e) => e.outcome), timers: vi.getTimerCount() }).toEqual({ outcomes: ['error'], timers: 0 });
  });

  it('tells the observer whether a failed send was to the peer or the ERROR 5 to a stranger', async () => {
    vi.useFakeTimers();
    // Sends to port 1 (the stranger) fail in the kernel; the peer's go through.
    class StrangerRefused extends FakeSocket {
      override send(parts: Buffer | Buffer[], port: number, address: string, callback?: (err: Error | null) => void): void {
        if (port !== 1) return super.send(parts, port, address, callback);
        queueMicrotask(() => callback?.(new Error('send EPERM')));
      }
    }
    const failed: Array<[string, boolean]> = [];
    const o = observe();
    const socket = new StrangerRefused();
    const observer: TransferObserver = { strayDropped: () => undefined, sendFailed: (e, toPeer) => failed.push([e.message, toPeer]) };
    new Transfer(socket, peer, new CountingSource(pattern(100)), plain, o.onEnd, observer).start();
    socket.emit('message', encodeAck(1), { ...fromPeer, port: 1 });
    await vi.advanceTimersByTimeAsync(0);
    expect({ failed, ends: o.ends }).toEqual({ failed: [['send EPERM', false]], ends: [] });
    const refused = new FakeSocket('async-error');
    new Transfer(refused, peer, new CountingSource(pattern(100)), plain, o.onEnd, observer).start();
    await vi.advanceTimersByTimeAsync(0);
    expect(failed.at(-1)).toEqual(['send EPERM', true]);
  });

  it('a client silent after the first of three blocks times out with the bytes it acknowledged', async () => {
    const t = start(1100);
    t.ack(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.o.ends).toMatchObject([{ outcome: 'timeout', bytes: 512 }]);
  });

  it('a client ERROR ends the transfer as aborted-by-client with its code, message and the bytes it acknowledged, without a reply', () => {
    const t = start(1100);
    t.ack(1);
    const sent = t.socket.sent.length;
    t.socket.emit('message', encodeError(0, 'Early terminate'), fromPeer);
    expect(t.o.ends).toMatchObject([{ outcome: 'aborted-by-client', bytes: 512, clientError: { code: 0, message: 'Early terminate' } }]);
    expect(t.socket.sent.length).toBe(sent);
    expect(t.socket.closes).toBe(1);
  });

  it('ignores from the peer what is neither a 4-byte ACK nor an ERROR: a short ACK, an opcode with a high byte set, DATA, a request', () => {
    const t = start(1100);
    for (const msg of [
      Buffer.from([0, 4, 0]),
      Buffer.from([1, 4, 0, 1]),
      Buffer.concat([dataHeader(1), Buffer.from('x')]),
      encodeRequest('rrq', 'f', 'octet'),
    ]) {
      t.socket.emit('message', msg, fromPeer);
    }
    expect(t.blocks()).toEqual([[1, 512]]);
    expect(t.o.ends).toEqual([]);
  });

  it("a stranger on the peer's port but another address gets ERROR 5 and does not move the transfer", () => {
    const t = start(1100);
    t.socket.emit('message', encodeAck(1), { ...fromPeer, address: '127.0.0.2' });
    expect(t.socket.sent.at(-1)).toMatchObject({ address: '127.0.0.2', port: peer.port });
    expect(t.packets().at(-1)).toMatchObject({ op: 'error', code: 5, message: 'Unknown transfer ID' });
    expect(t.blocks()).toEqual([[1, 512]]);
  });

  it('supersede() ends the transfer as aborted-by-client without an ERROR to the client', () => {
    const t = start(1100);
    t.transfer.supersede();
    expect(t.o.ends).toMatchObject([
      { outcome: 'aborted-by-client', detail: 'superseded by a new read request from the same client address and port' },
    ]);
    expect(t.packets().map((p) => p?.op)).toEqual(['data']);
    expect({ releases: t.source.releases, closes: t.socket.closes, timers: vi.getTimerCount() }).toEqual({
      releases: 1,
      closes: 1,
      timers: 0,
    });
  });

  it('abort() sends the ERROR, closes the socket only once it has left, and ends once with the message as detail', async () => {
    const t = start(1100);
    t.transfer.abort(2, 'Access violation');
    expect(t.packets().at(-1)).toEqual({ op: 'error', code: 2, message: 'Access violation' });
    expect(t.socket.closes).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(t.socket.closes).toBe(1);
    expect(t.o.ends).toMatchObject([{ outcome: 'error', detail: 'Access violation' }]);
    t.transfer.abort(0, 'again');
    expect(t.o.ends).toHaveLength(1);
    expect(t.packets()).toHaveLength(2);
  });

  it('reads from disk (promises): the window goes out in order with the right bytes, and an ACK during a read continues after it', async () => {
    const t = start(5 * 512 + 7, { windowSize: 3 }, 'async');
    await vi.advanceTimersByTimeAsync(0);
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 3]);
    t.ack(1);
    // Block 1's ACK asks for blocks 2..4 while the reads are pending; block 3's ACK arrives during them.
    t.ack(3);
    await vi.advanceTimersByTimeAsync(0);
    t.ack(6);
    await vi.advanceTimersByTimeAsync(0);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 5 * 512 + 7 }]);
    // One window at a time: the window after block 1's ACK (2..4) finishes, then the one after block 3's (4..6).
    expect(t.blocks().map(([b]) => b)).toEqual([1, 2, 3, 2, 3, 4, 4, 5, 6]);
    expect(t.o.ends[0]?.retransmits).toBe(3);
    const byBlock = new Map(t.packets().flatMap((p) => (p?.op === 'data' ? [[p.block, p.data]] : [])));
    expect(Buffer.concat([...byBlock.entries()].sort((a, b) => a[0] - b[0]).map(([, d]) => d)).equals(t.data)).toBe(true);
  });

  it('reads from disk: the final empty block of an exact multiple of blksize is sent inside the window, without a read', async () => {
    const t = start(1024, { windowSize: 4 }, 'async');
    await vi.advanceTimersByTimeAsync(0);
    expect(t.blocks()).toEqual([
      [1, 512],
      [2, 512],
      [3, 0],
    ]);
    t.ack(3);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', bytes: 1024 }]);
  });

  it('reports how long the transfer ran', async () => {
    const t = start(100);
    await vi.advanceTimersByTimeAsync(700);
    t.ack(1);
    expect(t.o.ends).toMatchObject([{ outcome: 'complete', durationMs: 700 }]);
  });
});
