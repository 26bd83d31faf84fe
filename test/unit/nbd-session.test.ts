// NbdSession's decisions, driven through a fake edge: reads past the end are
// refused before any data, a refused client is answered once and hung up on, the
// handshake is bounded (options, option size), writes are refused by the server,
// and no reply path writes while the peer is not reading.
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../server/nbd/read-budget.js';
import type { NbdExport } from '../../server/nbd/session.js';
import { EXPORT_SIZE, harness, settle, type Harness } from '../lib/nbd-session-edge.js';
import {
  Cmd,
  CLIENT_FLAGS,
  goOption,
  listOption,
  option,
  parseOptionReplies,
  parseSimpleReplies,
  REP,
  request,
  u32,
} from '../lib/nbd-wire.js';

async function attached(h: Harness): Promise<void> {
  h.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
  await settle();
  const { replies } = parseOptionReplies(h.edge.bytes());
  expect(replies.at(-1)?.type).toBe(REP.ACK);
  h.edge.clear();
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
    // Each LIST: a SERVER entry per export (two), then ACK.
    expect(parseOptionReplies(h.edge.bytes()).replies).toHaveLength(90);
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

/** INFO (6) or GO (7) data: name length, name, count, then the requested info types. */
const infoData = (name: string, types: number[] = [], count = types.length): Buffer => {
  const n = Buffer.from(name);
  const head = Buffer.alloc(2);
  head.writeUInt16BE(count);
  const list = Buffer.alloc(types.length * 2);
  types.forEach((t, i) => list.writeUInt16BE(t, i * 2));
  return Buffer.concat([u32(n.length), n, head, list]);
};
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
const READ_ONLY_FLAGS = 1 | 2 | 4 | 256;

/** Sends the client flags and `options`; returns the option replies as [option, type, data as text or hex]. */
async function handshake(h: Harness, ...options: Buffer[]): Promise<Array<[number, number, string]>> {
  h.session.onData(Buffer.concat([CLIENT_FLAGS, ...options]));
  await settle();
  return parseOptionReplies(h.edge.bytes()).replies.map((r) => [r.option, r.type, r.data.toString('latin1')]);
}

describe('NBD session: the handshake', () => {
  it('closes on client flags with an unknown bit, or without fixed newstyle, and answers nothing', async () => {
    for (const [flags, error] of [
      [7, 'unknown client flags 0x7'],
      [0x80000001, 'unknown client flags 0x80000001'],
      [2, 'client does not speak fixed newstyle'],
      [0, 'client does not speak fixed newstyle'],
    ] as const) {
      const h = harness();
      h.session.onData(Buffer.concat([u32(flags), listOption()]));
      await settle();
      expect(h.protocolErrors).toEqual([error]);
      expect({ ended: h.edge.ended, bytes: h.edge.bytes().length }).toEqual({ ended: true, bytes: 0 });
    }
  });

  it('EXPORT_NAME: 10 bytes of size and flags with NO_ZEROES, 124 zero bytes more without; client flags may come in pieces', async () => {
    for (const [flags, length] of [
      [3, 10],
      [1, 134],
    ] as const) {
      const h = harness();
      const stream = Buffer.concat([u32(flags), option(OPT.EXPORT_NAME, Buffer.from('disk'))]);
      for (let at = 0; at < stream.length; at += 3) h.session.onData(stream.subarray(at, at + 3));
      await settle();
      const reply = h.edge.bytes();
      expect(reply).toHaveLength(length);
      expect({ size: reply.readBigUInt64BE(0), flags: reply.readUInt16BE(8), rest: reply.subarray(10).every((b) => b === 0) }).toEqual({
        size: BigInt(EXPORT_SIZE),
        flags: READ_ONLY_FLAGS,
        rest: true,
      });
      expect(h.log).toEqual(['attached disk']);
      // In transmission now: a READ is served.
      h.session.onData(request(Cmd.READ, 5n, 0n, 512));
      await settle();
      expect(parseSimpleReplies(h.edge.bytes().subarray(length), () => 512)).toEqual([{ error: 0, cookie: 5n }]);
    }
  });

  it('EXPORT_NAME of an unknown export closes the connection; from a refused client it ends the handshake unanswered', async () => {
    const unknown = harness();
    expect(await handshake(unknown, option(OPT.EXPORT_NAME, Buffer.from('nope')))).toEqual([]);
    expect(unknown.protocolErrors).toEqual(['EXPORT_NAME for unknown export "nope"']);
    expect(unknown.edge.ended).toBe(true);
    const refused = harness({ refusal: 'no lease' });
    expect(await handshake(refused, option(OPT.EXPORT_NAME, Buffer.from('disk')))).toEqual([]);
    expect({ ends: refused.handshakeEnds, ended: refused.edge.ended, log: refused.log }).toEqual({
      ends: ['policy'],
      ended: true,
      log: [],
    });
  });

  it('closes on an option without the IHAVEOPT magic', async () => {
    const h = harness();
    const bad = option(OPT.LIST);
    bad.write('IHAVEOPX', 0, 'latin1');
    expect(await handshake(h, bad)).toEqual([]);
    expect(h.protocolErrors).toEqual(['option without IHAVEOPT magic']);
  });

  it('answers an option of the largest accepted length (4234 bytes) once all of it is in', async () => {
    const h = harness();
    const opt = option(99, Buffer.alloc(4096 + 4 + 2 + 128));
    h.session.onData(Buffer.concat([CLIENT_FLAGS, opt.subarray(0, 100)]));
    await settle();
    expect(h.edge.bytes()).toHaveLength(0);
    h.session.onData(opt.subarray(100));
    await settle();
    expect(parseOptionReplies(h.edge.bytes()).replies.map((r) => [r.option, r.type])).toEqual([[99, REP.ERR_UNSUP]]);
    expect(h.protocolErrors).toEqual([]);
  });

  it('ABORT is acknowledged, then the connection closes and later options are not answered', async () => {
    const h = harness();
    expect(await handshake(h, option(OPT.ABORT), listOption())).toEqual([[OPT.ABORT, REP.ACK, '']]);
    expect(h.edge.ended).toBe(true);
  });

  it('LIST: one SERVER reply per export (length, name), then ACK; LIST with data is invalid', async () => {
    const h = harness();
    expect(await handshake(h, listOption(), option(OPT.LIST, Buffer.from('x')))).toEqual([
      [OPT.LIST, REP.SERVER, '\0\0\0\x04disk'],
      [OPT.LIST, REP.SERVER, '\0\0\0\x08pi/arm64'],
      [OPT.LIST, REP.ACK, ''],
      [OPT.LIST, REP.ERR_INVALID, 'LIST takes no data'],
    ]);
  });

  it('INFO: the requested NAME and BLOCK_SIZE, then EXPORT and ACK; the export is closed and the handshake goes on', async () => {
    const h = harness();
    const block = Buffer.alloc(14);
    block.writeUInt16BE(3, 0);
    block.writeUInt32BE(1, 2);
    block.writeUInt32BE(4096, 6);
    block.writeUInt32BE(32 * 1024 * 1024, 10);
    const exportInfo = Buffer.alloc(12);
    exportInfo.writeBigUInt64BE(BigInt(EXPORT_SIZE), 2);
    exportInfo.writeUInt16BE(READ_ONLY_FLAGS, 10);
    expect(await handshake(h, option(OPT.INFO, infoData('disk', [1, 3, 2])), option(OPT.INFO, infoData('disk')), listOption())).toEqual([
      [OPT.INFO, REP.INFO, '\0\x01disk'],
      [OPT.INFO, REP.INFO, block.toString('latin1')],
      [OPT.INFO, REP.INFO, exportInfo.toString('latin1')],
      [OPT.INFO, REP.ACK, ''],
      [OPT.INFO, REP.INFO, exportInfo.toString('latin1')],
      [OPT.INFO, REP.ACK, ''],
      [OPT.LIST, REP.SERVER, '\0\0\0\x04disk'],
      [OPT.LIST, REP.SERVER, '\0\0\0\x08pi/arm64'],
      [OPT.LIST, REP.ACK, ''],
    ]);
    expect({ closes: h.closes.length, log: h.log }).toEqual({ closes: 2, log: [] });
  });

  it('GO: attaches the export and enters transmission, the export left open', async () => {
    const h = harness();
    await attached(h);
    expect({ closes: h.closes.length, log: h.log }).toEqual({ closes: 0, log: ['attached disk'] });
  });

  it('INFO/GO data that does not add up is invalid, an unknown name is ERR_UNKNOWN, and the handshake goes on', async () => {
    const h = harness();
    const noName = infoData('');
    const replies = await handshake(
      h,
      option(OPT.GO, Buffer.alloc(5)),
      option(OPT.GO, Buffer.concat([u32(5), Buffer.from('disk'), Buffer.alloc(2)])),
      option(OPT.GO, infoData('disk', [1], 2)),
      option(OPT.GO, infoData('disk', [1], 0)),
      option(OPT.GO, noName),
      option(OPT.INFO, infoData('nope', [1])),
      option(OPT.GO, infoData('disk')),
    );
    expect(noName).toHaveLength(6);
    expect(replies.slice(0, 6)).toEqual([
      [OPT.GO, REP.ERR_INVALID, 'INFO/GO data too short'],
      [OPT.GO, REP.ERR_INVALID, 'export name runs past the option data'],
      [OPT.GO, REP.ERR_INVALID, 'information request count does not match the data'],
      [OPT.GO, REP.ERR_INVALID, 'information request count does not match the data'],
      [OPT.GO, REP.ERR_UNKNOWN, 'no export named ""'],
      [OPT.INFO, REP.ERR_UNKNOWN, 'no export named "nope"'],
    ]);
    expect(replies.at(-1)).toEqual([OPT.GO, REP.ACK, '']);
    expect(h.log).toEqual(['attached disk']);
  });

  it('refuses STRUCTURED_REPLY and unknown options with ERR_UNSUP, saying which', async () => {
    const h = harness();
    expect(await handshake(h, option(OPT.STRUCTURED_REPLY), option(42))).toEqual([
      [OPT.STRUCTURED_REPLY, REP.ERR_UNSUP, 'structured replies are not supported'],
      [42, REP.ERR_UNSUP, 'option 42 is not supported'],
    ]);
  });
});

describe('NBD session: transmission', () => {
  it('serves READ bytes as read from the export, reports them, and answers FLUSH and CACHE with success', async () => {
    const h = harness({ read: async (offset, length) => Buffer.alloc(length, offset / 512) });
    await attached(h);
    h.session.onData(Buffer.concat([request(Cmd.READ, 1n, 1024n, 512), request(Cmd.CACHE, 2n, 0n, 4096), request(Cmd.FLUSH, 3n, 0n, 0)]));
    await settle();
    const out = h.edge.bytes();
    expect(parseSimpleReplies(out, (r) => (r.cookie === 1n ? 512 : 0))).toEqual([
      { error: 0, cookie: 2n },
      { error: 0, cookie: 3n },
      { error: 0, cookie: 1n },
    ]);
    expect(out.subarray(32 + 16, 32 + 16 + 512).every((b) => b === 2)).toBe(true);
    expect(h.log).toEqual(['attached disk', 'served 512']);
  });

  it('closes on a request without the request magic, and on a WRITE longer than 32 MiB before its payload', async () => {
    const badMagic = harness();
    await attached(badMagic);
    badMagic.session.onData(request(Cmd.FLUSH, 1n, 0n, 0, 0x25609514));
    await settle();
    expect({ errors: badMagic.protocolErrors, bytes: badMagic.edge.bytes().length }).toEqual({
      errors: ['request without the request magic'],
      bytes: 0,
    });
    const bigWrite = harness();
    await attached(bigWrite);
    bigWrite.session.onData(Buffer.concat([request(Cmd.WRITE, 1n, 0n, 32 * 1024 * 1024 + 1), Buffer.alloc(1000)]));
    await settle();
    expect(bigWrite.protocolErrors).toEqual([`WRITE of ${32 * 1024 * 1024 + 1} bytes`]);
    // The largest WRITE is refused as read-only, its payload skipped.
    const maxWrite = harness();
    await attached(maxWrite);
    maxWrite.session.onData(request(Cmd.WRITE, 1n, 0n, 32 * 1024 * 1024));
    maxWrite.session.onData(Buffer.alloc(32 * 1024 * 1024));
    await settle();
    expect({ errors: maxWrite.protocolErrors, replies: parseSimpleReplies(maxWrite.edge.bytes()) }).toEqual({
      errors: [],
      replies: [{ error: 1, cookie: 1n }],
    });
  });

  it('serves a READ of exactly 32 MiB and refuses one byte more with EINVAL, inside a larger export', async () => {
    const h = harness({ size: 64 * 1024 * 1024 });
    await attached(h);
    h.session.onData(Buffer.concat([request(Cmd.READ, 1n, 0n, 32 * 1024 * 1024 + 1), request(Cmd.READ, 2n, 0n, 32 * 1024 * 1024)]));
    await settle();
    expect(parseSimpleReplies(h.edge.bytes(), () => 32 * 1024 * 1024)).toEqual([
      { error: 22, cookie: 1n },
      { error: 0, cookie: 2n },
    ]);
    expect(h.reads).toEqual([{ offset: 0, length: 32 * 1024 * 1024 }]);
  });

  it('refuses an unknown command with EINVAL', async () => {
    const h = harness();
    await attached(h);
    h.session.onData(request(7, 4n, 0n, 0));
    await settle();
    expect(parseSimpleReplies(h.edge.bytes())).toEqual([{ error: 22, cookie: 4n }]);
    expect(h.refusedRequests).toEqual([{ command: 'unknown', error: 'EINVAL' }]);
  });

  it('DISC: the READs in flight are answered first, then the connection closes; nothing after DISC is served', async () => {
    const pending: Array<() => void> = [];
    const h = harness({ read: (_o, length) => new Promise((resolve) => pending.push(() => resolve(Buffer.alloc(length, 9)))) });
    await attached(h);
    h.session.onData(
      Buffer.concat([
        request(Cmd.READ, 1n, 0n, 512),
        request(Cmd.READ, 2n, 512n, 512),
        request(Cmd.DISC, 3n, 0n, 0),
        request(Cmd.READ, 4n, 0n, 512),
        request(Cmd.FLUSH, 5n, 0n, 0),
      ]),
    );
    await settle();
    expect({ reads: pending.length, ended: h.edge.ended }).toEqual({ reads: 2, ended: false });
    pending.shift()?.();
    await settle();
    expect(h.edge.ended).toBe(false);
    pending.shift()?.();
    await settle();
    expect(h.edge.ended).toBe(true);
    expect(parseSimpleReplies(h.edge.bytes(), () => 512).map((r) => r.cookie)).toEqual([1n, 2n]);
  });

  it('DISC with nothing in flight closes at once', async () => {
    const h = harness();
    await attached(h);
    h.session.onData(request(Cmd.DISC, 1n, 0n, 0));
    await settle();
    expect({ ended: h.edge.ended, bytes: h.edge.bytes().length }).toEqual({ ended: true, bytes: 0 });
  });

  it('a peer that goes away: the export is closed once, a READ that finishes after is recycled and not answered', async () => {
    const pending: Array<() => void> = [];
    const recycled: number[] = [];
    const h = harness({
      read: (_o, length) => new Promise((resolve) => pending.push(() => resolve(Buffer.alloc(length)))),
      recycle: (buf) => recycled.push(buf.length),
    });
    await attached(h);
    h.session.onData(request(Cmd.READ, 1n, 0n, 512));
    await settle();
    h.session.onClose();
    pending.shift()?.();
    await settle();
    expect({ closes: h.closes.length, log: h.log, recycled, bytes: h.edge.bytes().length }).toEqual({
      closes: 1,
      log: ['attached disk', 'closed'],
      recycled: [512],
      bytes: 0,
    });
    h.session.onData(request(Cmd.FLUSH, 2n, 0n, 0));
    await settle();
    expect(h.edge.bytes()).toHaveLength(0);
  });

  it('recycles a READ buffer only once its reply has been sent', async () => {
    const recycled: Buffer[] = [];
    const h = harness({ recycle: (buf) => recycled.push(buf) });
    const sent: Array<() => void> = [];
    h.edge.write = (parts, done) => {
      h.edge.out.push(Buffer.concat(parts));
      if (done) sent.push(done);
    };
    await attached(h);
    h.session.onData(request(Cmd.READ, 1n, 0n, 512));
    await settle();
    expect(recycled).toHaveLength(0);
    sent.shift()?.();
    expect(recycled.map((b) => b.length)).toEqual([512]);
  });
});
