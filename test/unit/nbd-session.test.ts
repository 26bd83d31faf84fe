// NbdSession's decisions, driven through a fake edge: reads past the end are
// refused before any data, a refused client is answered once and hung up on, the
// handshake is bounded (options, option size), writes are refused by the server,
// and no reply path writes while the peer is not reading.
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../server/nbd/read-budget.js';
import {
  NbdSession,
  type ExportCatalog,
  type HandshakeEnd,
  type NbdExport,
  type RequestCommand,
  type RequestError,
  type SessionIO,
} from '../../server/nbd/session.js';
import {
  Cmd,
  CLIENT_FLAGS,
  goOption,
  GREETING_LENGTH,
  listOption,
  option,
  parseOptionReplies,
  parseSimpleReplies,
  REP,
  request,
  u32,
} from '../lib/nbd-wire.js';

const EXPORT_SIZE = 1024 * 1024;

class FakeEdge implements SessionIO {
  out: Buffer[] = [];
  ended = false;
  paused = false;
  congestedNow = false;
  write(parts: Buffer[], sent?: () => void): void {
    this.out.push(Buffer.concat(parts));
    sent?.();
  }
  congested(): boolean {
    return this.congestedNow;
  }
  end(): void {
    this.ended = true;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  /** Everything written after the greeting. */
  bytes(): Buffer {
    return Buffer.concat(this.out).subarray(GREETING_LENGTH);
  }
}

interface Harness {
  edge: FakeEdge;
  session: NbdSession;
  reads: Array<{ offset: number; length: number }>;
  refusedRequests: Array<{ command: RequestCommand; error: RequestError }>;
  handshakeEnds: HandshakeEnd[];
  protocolErrors: string[];
}

function harness(options: { refusal?: string; maxOptions?: number; read?: NbdExport['read']; budget?: ReadBudget } = {}): Harness {
  const edge = new FakeEdge();
  const reads: Harness['reads'] = [];
  const exp: NbdExport = {
    name: 'disk',
    size: BigInt(EXPORT_SIZE),
    source: '/dev/null',
    read:
      options.read ??
      (async (offset, length) => {
        reads.push({ offset, length });
        return Buffer.alloc(length, 0xab);
      }),
    recycle: () => undefined,
    close: () => undefined,
  };
  const catalog: ExportCatalog = { names: async () => ['disk'], open: async (name) => (name === 'disk' ? exp : undefined) };
  const h: Omit<Harness, 'session'> = { edge, reads, refusedRequests: [], handshakeEnds: [], protocolErrors: [] };
  const readBudget = options.budget ?? new ReadBudget(256 * 1024 * 1024);
  const session = new NbdSession(
    edge,
    catalog,
    { refusal: options.refusal, maxOptions: options.maxOptions ?? 256, readBudget },
    {
      attached: () => undefined,
      served: () => undefined,
      protocolError: (reason) => h.protocolErrors.push(reason),
      handshakeEnded: (reason) => h.handshakeEnds.push(reason),
      requestRefused: (command, error) => h.refusedRequests.push({ command, error }),
      closed: () => undefined,
    },
  );
  return { ...h, session };
}

/** Lets the session's option handling (which awaits the catalog) and read promises run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

async function attached(h: Harness): Promise<void> {
  h.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
  await settle();
  const { replies } = parseOptionReplies(h.edge.bytes());
  expect(replies.at(-1)?.type).toBe(REP.ACK);
  h.edge.out = [Buffer.alloc(GREETING_LENGTH)];
}

describe('NBD session', () => {
  it('refuses a READ that runs past the end of the export with EINVAL, before reading anything', async () => {
    const h = harness();
    await attached(h);
    h.session.onData(
      Buffer.concat([
        request(Cmd.READ, 1n, BigInt(EXPORT_SIZE - 4096), 4097),
        request(Cmd.READ, 2n, BigInt(EXPORT_SIZE), 1),
        request(Cmd.READ, 3n, 0xffffffffffff0000n, 4096),
        request(Cmd.READ, 4n, BigInt(EXPORT_SIZE - 4096), 4096), // ends exactly at the end: served
      ]),
    );
    await settle();
    const replies = parseSimpleReplies(h.edge.bytes(), () => 4096);
    expect(replies).toEqual([
      { error: 22, cookie: 1n },
      { error: 22, cookie: 2n },
      { error: 22, cookie: 3n },
      { error: 0, cookie: 4n },
    ]);
    expect(h.reads).toEqual([{ offset: EXPORT_SIZE - 4096, length: 4096 }]);
    expect(h.refusedRequests).toEqual([
      { command: 'read', error: 'EINVAL' },
      { command: 'read', error: 'EINVAL' },
      { command: 'read', error: 'EINVAL' },
    ]);
  });

  it('fails a READ whose image read fails with EIO, and never sends a zero-error header for it', async () => {
    const h = harness({
      read: async () => {
        throw new Error('image ended early');
      },
    });
    await attached(h);
    h.session.onData(request(Cmd.READ, 9n, 0n, 4096));
    await settle();
    expect(h.edge.bytes()).toHaveLength(16);
    expect(parseSimpleReplies(h.edge.bytes())).toEqual([{ error: 5, cookie: 9n }]);
    expect(h.refusedRequests).toEqual([{ command: 'read', error: 'EIO' }]);
  });

  it('refuses WRITE, TRIM and WRITE_ZEROES with EPERM, the write payload consumed even when it arrives in pieces', async () => {
    const h = harness();
    await attached(h);
    const payload = Buffer.alloc(10000, 7);
    const stream = Buffer.concat([
      request(Cmd.WRITE, 1n, 0n, payload.length),
      payload,
      request(Cmd.TRIM, 2n, 0n, 4096),
      request(Cmd.WRITE_ZEROES, 3n, 0n, 4096),
      request(Cmd.FLUSH, 4n, 0n, 0),
    ]);
    for (let at = 0; at < stream.length; at += 999) h.session.onData(stream.subarray(at, at + 999));
    await settle();
    expect(parseSimpleReplies(h.edge.bytes())).toEqual([
      { error: 1, cookie: 1n },
      { error: 1, cookie: 2n },
      { error: 1, cookie: 3n },
      { error: 0, cookie: 4n },
    ]);
    expect(h.refusedRequests.map((r) => `${r.command}/${r.error}`)).toEqual(['write/EPERM', 'trim/EPERM', 'write-zeroes/EPERM']);
    expect(h.protocolErrors).toEqual([]);
  });

  it('answers a refused client ERR_POLICY once and hangs up; options sent after it are not answered', async () => {
    for (const ask of [goOption('disk'), listOption()]) {
      const h = harness({ refusal: '10.9.0.3 holds no lease' });
      h.session.onData(Buffer.concat([CLIENT_FLAGS, ask, ...Array.from({ length: 50 }, () => option(99)), ask]));
      await settle();
      const { replies } = parseOptionReplies(h.edge.bytes());
      expect(replies.map((r) => r.type)).toEqual([REP.ERR_POLICY]);
      expect(replies[0]?.data.toString()).toBe('10.9.0.3 holds no lease');
      expect(h.edge.ended).toBe(true);
      expect(h.handshakeEnds).toEqual(['policy']);
      // The peer keeps sending: nothing more is answered or kept.
      h.session.onData(Buffer.concat(Array.from({ length: 50 }, () => listOption())));
      await settle();
      expect(parseOptionReplies(h.edge.bytes()).replies).toHaveLength(1);
    }
  });

  it('ends a handshake after nbd.maxHandshakeOptions options', async () => {
    const h = harness({ maxOptions: 20 });
    h.session.onData(Buffer.concat([CLIENT_FLAGS, ...Array.from({ length: 100 }, (_, i) => option(100 + i))]));
    await settle();
    expect(parseOptionReplies(h.edge.bytes()).replies.map((r) => r.type)).toEqual(Array.from({ length: 20 }, () => REP.ERR_UNSUP));
    expect(h.edge.ended).toBe(true);
    expect(h.handshakeEnds).toEqual(['too-many-options']);
  });

  it('closes on an option longer than a name can be, as soon as its header is in', async () => {
    const h = harness();
    h.session.onData(Buffer.concat([CLIENT_FLAGS, Buffer.from('IHAVEOPT'), u32(99), u32(60_000), Buffer.alloc(100)]));
    await settle();
    expect(h.edge.ended).toBe(true);
    expect(h.protocolErrors).toEqual(['option 99 claims 60000 bytes of data']);
    expect(h.edge.bytes()).toHaveLength(0);
  });

  it('stops answering while the peer is not reading its replies, on every reply path, and goes on once drained', async () => {
    const h = harness();
    await attached(h);
    const requests: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const kind = i % 4;
      if (kind === 0) requests.push(request(Cmd.FLUSH, BigInt(i), 0n, 0));
      if (kind === 1) requests.push(request(Cmd.TRIM, BigInt(i), 0n, 512));
      if (kind === 2) requests.push(request(Cmd.READ, BigInt(i), BigInt(EXPORT_SIZE), 512));
      if (kind === 3) requests.push(request(77, BigInt(i), 0n, 0));
    }
    h.edge.congestedNow = true;
    h.session.onData(Buffer.concat(requests));
    await settle();
    // Congested from the start: nothing is answered, and reading has stopped.
    expect(parseSimpleReplies(h.edge.bytes())).toHaveLength(0);
    expect(h.edge.paused).toBe(true);
    h.edge.congestedNow = false;
    h.session.drained();
    await settle();
    expect(parseSimpleReplies(h.edge.bytes()).map((r) => r.cookie)).toEqual(Array.from({ length: 100 }, (_, i) => BigInt(i)));
    expect(h.edge.paused).toBe(false);
  });

  it('holds option replies too while the peer is not reading', async () => {
    const h = harness();
    h.session.onData(CLIENT_FLAGS);
    h.edge.congestedNow = true;
    h.session.onData(Buffer.concat(Array.from({ length: 30 }, () => listOption())));
    await settle();
    expect(parseOptionReplies(h.edge.bytes()).replies).toHaveLength(0);
    h.edge.congestedNow = false;
    h.session.drained();
    await settle();
    // Each LIST: one SERVER entry, then ACK.
    expect(parseOptionReplies(h.edge.bytes()).replies).toHaveLength(60);
  });

  it('starts no READ whose bytes do not fit the shared read budget, beyond one per connection, and goes on as the budget frees', async () => {
    const budget = new ReadBudget(3 * 4096);
    const pendingReads: Array<() => void> = [];
    const read: NbdExport['read'] = (_offset, length) =>
      new Promise((resolve) => pendingReads.push(() => resolve(Buffer.alloc(length, 1))));
    // Another connection already holds the whole budget.
    expect(budget.tryTake(3 * 4096, true)).toBe(true);
    const h = harness({ read, budget });
    await attached(h);
    h.session.onData(Buffer.concat(Array.from({ length: 6 }, (_, i) => request(Cmd.READ, BigInt(i), BigInt(i * 4096), 4096))));
    await settle();
    // Nothing in flight on this connection: one read may start anyway, and no more.
    expect(pendingReads).toHaveLength(1);
    expect(h.edge.paused).toBe(true);
    budget.give(3 * 4096);
    await settle();
    // The budget now holds this connection's first read plus two more.
    expect(pendingReads).toHaveLength(3);
    expect(budget.heldBytes()).toBe(3 * 4096);
    for (const finish of pendingReads.splice(0)) finish();
    await settle();
    for (const finish of pendingReads.splice(0)) finish();
    await settle();
    expect(parseSimpleReplies(h.edge.bytes(), () => 4096).map((r) => r.cookie)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(budget.heldBytes()).toBe(0);
  });
});
