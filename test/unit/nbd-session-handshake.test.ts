// NbdSession's decisions that nbd-session.test.ts and the backpressure tests
// leave open (server/nbd/session.ts): what each refusal says, a failing export
// open or image read, a peer that goes away while its export opens or its READs
// run, options and requests that arrive while the session awaits the catalog,
// and when reading stops and resumes around a backlog.
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../server/nbd/read-budget.js';
import type { NbdExport } from '../../server/nbd/session.js';
import { EXPORT_SIZE, harness, settle, type Harness } from '../lib/nbd-session-edge.js';
import { CLIENT_FLAGS, Cmd, goOption, listOption, option, parseOptionReplies, parseSimpleReplies, REP, request } from '../lib/nbd-wire.js';

const TEST_TIMEOUT_MS = 10_000;
/** server/nbd/session.ts MAX_PENDING_BYTES. */
const MAX_PENDING_BYTES = 256 * 1024;
const OPT = { EXPORT_NAME: 1, INFO: 6 } as const;

/** A promise the test settles by hand. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve: (v: T) => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

async function attach(h: Harness): Promise<void> {
  h.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
  await settle();
  expect(parseOptionReplies(h.edge.bytes()).replies.at(-1)?.type).toBe(REP.ACK);
  h.edge.clear();
}

const flushes = (count: number, from = 0): Buffer[] => Array.from({ length: count }, (_, i) => request(Cmd.FLUSH, BigInt(from + i), 0n, 0));
const simpleReplies = (h: Harness): number => parseSimpleReplies(h.edge.bytes()).length;

/** Records how many simple replies had been written at each resume(). */
function resumesAt(h: Harness): number[] {
  const at: number[] = [];
  const resume = h.edge.resume.bind(h.edge);
  h.edge.resume = () => {
    at.push(simpleReplies(h));
    resume();
  };
  return at;
}

describe('NBD session: what each refusal says', () => {
  it(
    'names the request in every refusal: READ past the end, writes on a read-only export, an unknown command, the option limit',
    async () => {
      const h = harness();
      await attach(h);
      h.session.onData(
        Buffer.concat([
          request(Cmd.READ, 1n, BigInt(EXPORT_SIZE - 4096), 4097),
          request(Cmd.WRITE, 2n, 5n, 10),
          Buffer.alloc(10),
          request(Cmd.TRIM, 3n, 512n, 4096),
          request(Cmd.WRITE_ZEROES, 4n, 1024n, 8192),
          request(9, 5n, 0n, 0),
        ]),
      );
      await settle();
      expect(h.refusalDetails).toEqual([
        `READ of 4097 bytes at ${EXPORT_SIZE - 4096} on an export of ${EXPORT_SIZE} bytes`,
        'write of 10 bytes at 5 on a read-only export',
        'trim of 4096 bytes at 512 on a read-only export',
        'write-zeroes of 8192 bytes at 1024 on a read-only export',
        'unknown command 9',
      ]);
      const limited = harness({ maxOptions: 3 });
      limited.session.onData(Buffer.concat([CLIENT_FLAGS, ...Array.from({ length: 4 }, () => option(42))]));
      await settle();
      expect({ ends: limited.handshakeEnds, details: limited.handshakeDetails }).toEqual({
        ends: ['too-many-options'],
        details: ['more than 3 options in one handshake'],
      });
      const refused = harness({ refusal: '10.9.0.7 holds no lease' });
      refused.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
      await settle();
      expect(refused.handshakeDetails).toEqual(['10.9.0.7 holds no lease']);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a failed image read is EIO naming the error, or the thrown value; its bytes go back to the read budget, and DISC then closes',
    async () => {
      const h = harness({
        read: async (offset) => {
          if (offset === 0) throw new Error('image ended early');
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a value that is no Error, as a broken export might reject with
          return Promise.reject('disk gone');
        },
      });
      await attach(h);
      h.session.onData(Buffer.concat([request(Cmd.READ, 1n, 0n, 4096), request(Cmd.READ, 2n, 4096n, 512)]));
      await settle();
      expect(parseSimpleReplies(h.edge.bytes())).toEqual([
        { error: 5, cookie: 1n },
        { error: 5, cookie: 2n },
      ]);
      expect(h.refusalDetails).toEqual(['READ of 4096 bytes at 0: image ended early', 'READ of 512 bytes at 4096: disk gone']);
      expect(h.budget.heldBytes()).toBe(0);
      // Nothing is in flight any more: DISC closes at once.
      h.session.onData(request(Cmd.DISC, 3n, 0n, 0));
      await settle();
      expect(h.edge.ended).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('NBD session: INFO and GO', () => {
  it(
    'answers each of several information requests, read from its own place after the count (BLOCK_SIZE then NAME)',
    async () => {
      const h = harness();
      const name = Buffer.from('disk');
      const data = Buffer.concat([Buffer.from([0, 0, 0, name.length]), name, Buffer.from([0, 2, 0, 3, 0, 1])]);
      h.session.onData(Buffer.concat([CLIENT_FLAGS, option(OPT.INFO, data)]));
      await settle();
      const replies = parseOptionReplies(h.edge.bytes()).replies;
      // Each INFO reply starts with its information type; ACK carries nothing.
      expect(replies.map((r) => [r.type, r.type === REP.INFO ? r.data.readUInt16BE(0) : r.data.length])).toEqual([
        [REP.INFO, 1],
        [REP.INFO, 3],
        [REP.INFO, 0],
        [REP.ACK, 0],
      ]);
      expect(replies[0]?.data.subarray(2).toString()).toBe('disk');
    },
    TEST_TIMEOUT_MS,
  );
});

describe('NBD session: an export open that fails', () => {
  /** Three ways into the option that opens: straight from onData, after drained(), after drained() with a backlog over 256 KiB. */
  const paths = ['data', 'drained', 'drained with a backlog'] as const;
  for (const path of paths) {
    it(
      `ends the connection as an internal error naming what failed (${path})`,
      async () => {
        for (const [thrown, reason] of [
          [new Error('EMFILE: too many open files'), 'internal error: EMFILE: too many open files'],
          ['catalog gone', 'internal error: catalog gone'],
        ] as const) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- one of them is no Error, as a broken catalog might reject with
          const h = harness({ open: () => Promise.reject(thrown) });
          const go = Buffer.concat([CLIENT_FLAGS, goOption('disk')]);
          if (path === 'data') h.session.onData(go);
          else {
            h.edge.congestedNow = true;
            h.session.onData(path === 'drained' ? go : Buffer.concat([go, Buffer.alloc(MAX_PENDING_BYTES)]));
            await settle();
            expect({ paused: h.edge.paused, errors: h.protocolErrors }).toEqual({ paused: true, errors: [] });
            h.edge.congestedNow = false;
            h.session.drained();
          }
          await settle();
          expect({ errors: h.protocolErrors, ended: h.edge.ended, bytes: h.edge.bytes().length }).toEqual({
            errors: [reason],
            ended: true,
            bytes: 0,
          });
        }
      },
      TEST_TIMEOUT_MS,
    );
  }
});

describe('NBD session: a peer that goes away while the session awaits', () => {
  it(
    'while its export opens for GO, INFO or EXPORT_NAME: the export is closed, nothing is attached, answered or reported',
    async () => {
      for (const ask of [
        goOption('disk'),
        option(OPT.INFO, Buffer.from([0, 0, 0, 4, ...Buffer.from('disk'), 0, 0])),
        option(OPT.EXPORT_NAME, Buffer.from('disk')),
      ]) {
        const opening = deferred<NbdExport | undefined>();
        let exp: NbdExport | undefined;
        const h = harness({
          open: (_name, e) => {
            exp = e;
            return opening.promise;
          },
        });
        h.session.onData(Buffer.concat([CLIENT_FLAGS, ask]));
        await settle();
        h.session.onClose();
        opening.resolve(exp);
        await settle();
        expect({ closes: h.closes.length, log: h.log, bytes: h.edge.bytes().length, errors: h.protocolErrors }).toEqual({
          closes: 1,
          log: ['closed'],
          bytes: 0,
          errors: [],
        });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'while an unknown export is looked up, or the lookup fails: no protocol error is reported for a connection already gone',
    async () => {
      for (const outcome of ['unknown', 'fails'] as const) {
        const opening = deferred<NbdExport | undefined>();
        const h = harness({ open: () => opening.promise });
        h.session.onData(Buffer.concat([CLIENT_FLAGS, option(OPT.EXPORT_NAME, Buffer.from('nope'))]));
        await settle();
        h.session.onClose();
        if (outcome === 'unknown') opening.resolve(undefined);
        else opening.reject(new Error('EIO'));
        await settle();
        expect({ errors: h.protocolErrors, log: h.log }).toEqual({ errors: [], log: ['closed'] });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'with READs running: one that finishes and one that fails after are neither answered nor refused, and both give their bytes back',
    async () => {
      const pending: Array<ReturnType<typeof deferred<Buffer>>> = [];
      const h = harness({
        read: () => {
          const d = deferred<Buffer>();
          pending.push(d);
          return d.promise;
        },
      });
      await attach(h);
      h.session.onData(Buffer.concat([request(Cmd.READ, 1n, 0n, 4096), request(Cmd.READ, 2n, 4096n, 4096)]));
      await settle();
      expect({ reads: pending.length, held: h.budget.heldBytes() }).toEqual({ reads: 2, held: 8192 });
      h.session.onClose();
      pending[0]?.resolve(Buffer.alloc(4096));
      pending[1]?.reject(new Error('EIO'));
      await settle();
      expect({ bytes: h.edge.bytes().length, refused: h.refusedRequests, held: h.budget.heldBytes() }).toEqual({
        bytes: 0,
        refused: [],
        held: 0,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'waiting for the read budget: the closed session leaves no waiter behind in the budget',
    async () => {
      class WatchedBudget extends ReadBudget {
        readonly waiters = new Set<() => void>();
        override wait(wake: () => void): void {
          super.wait(wake);
          this.waiters.add(wake);
        }
        override forget(wake: () => void): void {
          super.forget(wake);
          this.waiters.delete(wake);
        }
      }
      const budget = new WatchedBudget(4096);
      const h = harness({ budget, read: () => new Promise(() => undefined) });
      await attach(h);
      h.session.onData(Buffer.concat([request(Cmd.READ, 1n, 0n, 4096), request(Cmd.READ, 2n, 4096n, 4096)]));
      await settle();
      expect({ waiters: budget.waiters.size, paused: h.edge.paused }).toEqual({ waiters: 1, paused: true });
      h.session.onClose();
      expect(budget.waiters.size).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('NBD session: bytes that arrive while the session is busy or closed', () => {
  it(
    'an option alone in its 16-byte header, after client flags alone in their 4 bytes, is answered',
    async () => {
      const h = harness();
      h.session.onData(CLIENT_FLAGS);
      h.session.onData(listOption());
      await settle();
      expect(parseOptionReplies(h.edge.bytes()).replies.map((r) => r.type)).toEqual([REP.SERVER, REP.SERVER, REP.ACK]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a request sent right behind GO, before the export has opened, is served after the GO replies',
    async () => {
      const opening = deferred<NbdExport | undefined>();
      const h = harness({ open: (_name, exp) => opening.promise.then(() => exp) });
      h.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
      await settle();
      h.session.onData(request(Cmd.READ, 7n, 0n, 512));
      await settle();
      expect(h.edge.bytes()).toHaveLength(0);
      opening.resolve(undefined);
      await settle();
      const { replies, rest } = parseOptionReplies(h.edge.bytes());
      expect(replies.map((r) => r.type)).toEqual([REP.INFO, REP.ACK]);
      expect(parseSimpleReplies(rest, () => 512)).toEqual([{ error: 0, cookie: 7n }]);
      expect(h.protocolErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a request that follows ABORT in the same read is not answered: the session stops parsing once it closes',
    async () => {
      const h = harness();
      h.session.onData(Buffer.concat([CLIENT_FLAGS, option(2), request(Cmd.FLUSH, 1n, 0n, 0)]));
      await settle();
      const { replies, rest } = parseOptionReplies(h.edge.bytes());
      expect({ replies: replies.map((r) => r.type), rest: rest.length, ended: h.edge.ended }).toEqual({
        replies: [REP.ACK],
        rest: 0,
        ended: true,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'data after ABORT is not kept: even past 256 KiB it does not stop reading',
    async () => {
      const h = harness();
      h.session.onData(Buffer.concat([CLIENT_FLAGS, option(2)]));
      await settle();
      expect(h.edge.ended).toBe(true);
      h.session.onData(Buffer.alloc(MAX_PENDING_BYTES));
      h.session.onData(Buffer.alloc(MAX_PENDING_BYTES));
      await settle();
      expect({ pauses: h.edge.pauses, replies: parseOptionReplies(h.edge.bytes()).replies.length }).toEqual({ pauses: 0, replies: 1 });
    },
    TEST_TIMEOUT_MS,
  );
});

describe('NBD session: when reading stops and resumes', () => {
  it(
    'a peer that is not reading and keeps sending is paused once, and drained() while it still does not read resumes nothing',
    async () => {
      const h = harness();
      await attach(h);
      h.edge.congestedNow = true;
      h.session.onData(Buffer.concat(flushes(2)));
      await settle();
      h.session.onData(Buffer.concat(flushes(2, 2)));
      await settle();
      h.session.drained();
      await settle();
      expect({ pauses: h.edge.pauses, resumes: h.edge.resumes, paused: h.edge.paused, replies: simpleReplies(h) }).toEqual({
        pauses: 1,
        resumes: 0,
        paused: true,
        replies: 0,
      });
      h.edge.congestedNow = false;
      h.session.drained();
      await settle();
      expect({ resumes: h.edge.resumes, paused: h.edge.paused, replies: simpleReplies(h) }).toEqual({
        resumes: 1,
        paused: false,
        replies: 4,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'exactly 256 KiB held while the peer was not reading: reading resumes at drained(), before the backlog is answered',
    async () => {
      const h = harness();
      await attach(h);
      const whole = Math.floor(MAX_PENDING_BYTES / 28);
      const held = Buffer.concat(flushes(whole + 1)).subarray(0, MAX_PENDING_BYTES);
      h.edge.congestedNow = true;
      h.session.onData(held);
      await settle();
      expect({ paused: h.edge.paused, replies: simpleReplies(h) }).toEqual({ paused: true, replies: 0 });
      const at = resumesAt(h);
      h.edge.congestedNow = false;
      h.session.drained();
      await settle();
      expect({ resumedAt: at, replies: simpleReplies(h) }).toEqual({ resumedAt: [0], replies: whole });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a backlog over 256 KiB that ends in a bad request: the connection closes and reading is never resumed',
    async () => {
      const h = harness();
      await attach(h);
      const requests = flushes(9400);
      requests[9000] = request(Cmd.FLUSH, 9000n, 0n, 0, 0x25609514);
      h.session.onData(Buffer.concat(requests));
      await settle();
      expect({ errors: h.protocolErrors, replies: simpleReplies(h), pauses: h.edge.pauses, resumes: h.edge.resumes }).toEqual({
        errors: ['request without the request magic'],
        replies: 9000,
        pauses: 1,
        resumes: 0,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a backlog over 256 KiB from a peer that reads: resumed once it is parsed, and later requests resume nothing more',
    async () => {
      const h = harness();
      await attach(h);
      h.session.onData(Buffer.concat(flushes(9400)));
      await settle();
      expect({ replies: simpleReplies(h), pauses: h.edge.pauses, resumes: h.edge.resumes }).toEqual({
        replies: 9400,
        pauses: 1,
        resumes: 1,
      });
      h.session.onData(Buffer.concat(flushes(4, 9400)));
      await settle();
      expect({ replies: simpleReplies(h), pauses: h.edge.pauses, resumes: h.edge.resumes }).toEqual({
        replies: 9404,
        pauses: 1,
        resumes: 1,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a backlog over 256 KiB whose replies fill the peer: reading stays stopped until it drains, then all is answered',
    async () => {
      const h = harness();
      await attach(h);
      const write = h.edge.write.bind(h.edge);
      let written = 0;
      h.edge.write = (parts, sent) => {
        write(parts, sent);
        if (++written === 100) h.edge.congestedNow = true;
      };
      h.session.onData(Buffer.concat(flushes(9400)));
      await settle();
      expect({ replies: simpleReplies(h), paused: h.edge.paused, resumes: h.edge.resumes }).toEqual({
        replies: 100,
        paused: true,
        resumes: 0,
      });
      h.edge.congestedNow = false;
      h.session.drained();
      await settle();
      expect({ replies: simpleReplies(h), paused: h.edge.paused, resumes: h.edge.resumes }).toEqual({
        replies: 9400,
        paused: false,
        resumes: 1,
      });
    },
    TEST_TIMEOUT_MS,
  );
});
