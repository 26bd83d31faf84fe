// NbdSession's backpressure (server/nbd/session.ts), counted: reading from a
// peer stops at 64 READs or 64 MiB in flight and resumes only once half of it
// is answered (hysteresis: one pause and one resume, not one per reply); a
// backlog of unparsed bytes over 256 KiB stops reading until it is parsed; a
// closed session is never resumed. Driven through a fake edge and an export
// whose reads finish when the test says.
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../server/nbd/read-budget.js';
import { FakeEdge, harness, settle as rest, type Harness } from '../lib/nbd-session-edge.js';
import { CLIENT_FLAGS, Cmd, goOption, parseOptionReplies, parseSimpleReplies, REP, request } from '../lib/nbd-wire.js';

const TEST_TIMEOUT_MS = 10_000;
const MiB = 1024 * 1024;
/** server/nbd/session.ts MAX_PENDING_BYTES. */
const MAX_PENDING_BYTES = 256 * 1024;

/** The fake edge, counting: how many simple replies were written when each resume() came. */
class CountingEdge extends FakeEdge {
  resumedAfterReplies: number[] = [];
  /** Data bytes in each successful reply (the export below answers every READ with one byte; FLUSH has none). */
  dataBytes = 0;
  override resume(): void {
    super.resume();
    this.resumedAfterReplies.push(this.replies());
  }
  /** Simple replies written so far, after the handshake's option replies. */
  replies(): number {
    const { rest } = parseOptionReplies(this.bytes());
    return parseSimpleReplies(rest, () => this.dataBytes).length;
  }
}

interface Held {
  edge: CountingEdge;
  session: Harness['session'];
  /** READs started on the export, each finished by calling it. */
  reads: Array<() => void>;
}

/** A session over a CountingEdge and a `size`-byte export whose reads each answer one byte once the test finishes them. */
function heldSession(size: number, budget = new ReadBudget(1024 * MiB)): Held {
  const reads: Held['reads'] = [];
  const h = harness({
    edge: new CountingEdge(),
    size,
    budget,
    maxOptions: 16,
    read: () => new Promise((resolve) => reads.push(() => resolve(Buffer.alloc(1)))),
  });
  return { edge: h.edge, session: h.session, reads };
}

/** The same, attached to the export by GO. */
async function attachedSession(size: number): Promise<Held> {
  const h = heldSession(size);
  h.session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk')]));
  await rest();
  expect(parseOptionReplies(h.edge.bytes()).replies.at(-1)?.type).toBe(REP.ACK);
  h.edge.clear();
  return h;
}

/** Answers the i-th READ the session started; a READ that was never started fails the test. */
function answerRead(h: Held, i: number): void {
  const answer = h.reads[i];
  if (!answer) throw new Error(`READ ${i} was never started (${h.reads.length} started)`);
  answer();
}

const reads = (count: number, length: number): Buffer =>
  Buffer.concat(Array.from({ length: count }, (_, i) => request(Cmd.READ, BigInt(i), BigInt(i) * BigInt(length), length)));
const flushes = (count: number): Buffer => Buffer.concat(Array.from({ length: count }, (_, i) => request(Cmd.FLUSH, BigInt(i), 0n, 0)));

describe('NBD session backpressure', () => {
  it(
    '64 READs in flight stop reading; it resumes when 31 are left, once, and starts the 65th',
    async () => {
      const h = await attachedSession(MiB);
      h.edge.dataBytes = 1;
      h.session.onData(reads(65, 4096));
      await rest();
      expect(h.reads).toHaveLength(64);
      expect(h.edge.paused).toBe(true);
      for (let answered = 1; answered <= 32; answered++) {
        answerRead(h, answered - 1);
        await rest();
      }
      // 32 still in flight: half of the limit is not below it.
      expect(h.edge.paused).toBe(true);
      expect(h.reads).toHaveLength(64);
      answerRead(h, 32);
      await rest();
      expect(h.edge.paused).toBe(false);
      expect(h.reads).toHaveLength(65);
      expect(h.edge.pauses).toBe(1);
      expect(h.edge.resumedAfterReplies).toEqual([33]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '64 MiB of READs in flight stop reading; it resumes below 32 MiB',
    async () => {
      const h = await attachedSession(128 * MiB);
      h.session.onData(reads(5, 16 * MiB));
      await rest();
      expect(h.reads).toHaveLength(4);
      expect(h.edge.paused).toBe(true);
      answerRead(h, 0);
      await rest();
      answerRead(h, 1);
      await rest();
      // 32 MiB in flight: not below half.
      expect(h.edge.paused).toBe(true);
      expect(h.reads).toHaveLength(4);
      answerRead(h, 2);
      await rest();
      expect(h.edge.paused).toBe(false);
      expect(h.reads).toHaveLength(5);
      expect(h.edge.pauses).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'unparsed bytes past 256 KiB stop reading while an option is answered; reading resumes once they are parsed',
    async () => {
      const { edge, session } = heldSession(1, new ReadBudget(MiB));
      const all = flushes(Math.ceil((MAX_PENDING_BYTES + 28) / 28));
      // GO is being answered (the catalog is asked): 8 bytes of the first request wait behind it...
      session.onData(Buffer.concat([CLIENT_FLAGS, goOption('disk'), all.subarray(0, 8)]));
      // ...then exactly 256 KiB are buffered: reading goes on.
      session.onData(all.subarray(8, MAX_PENDING_BYTES));
      expect(edge.paused).toBe(false);
      // One byte more: it stops.
      session.onData(all.subarray(MAX_PENDING_BYTES, MAX_PENDING_BYTES + 1));
      expect(edge.paused).toBe(true);
      await rest();
      // Every whole request was answered, and only then did reading resume.
      const answered = Math.floor((MAX_PENDING_BYTES + 1) / 28);
      expect(edge.replies()).toBe(answered);
      expect(edge.paused).toBe(false);
      expect(edge.resumedAfterReplies).toEqual([answered]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a backlog over 256 KiB held by a congested peer is parsed before reading resumes',
    async () => {
      const h = await attachedSession(MiB);
      const count = Math.ceil((MAX_PENDING_BYTES + 1) / 28);
      h.edge.congestedNow = true;
      h.session.onData(flushes(count));
      await rest();
      expect(h.edge.replies()).toBe(0);
      expect(h.edge.paused).toBe(true);
      h.edge.congestedNow = false;
      h.session.drained();
      await rest();
      expect(h.edge.replies()).toBe(count);
      expect(h.edge.paused).toBe(false);
      expect(h.edge.resumedAfterReplies).toEqual([count]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a session whose peer went away is not resumed, whatever drains',
    async () => {
      const h = await attachedSession(MiB);
      h.edge.congestedNow = true;
      h.session.onData(flushes(4));
      await rest();
      expect(h.edge.paused).toBe(true);
      h.session.onClose();
      h.edge.congestedNow = false;
      h.session.drained();
      await rest();
      expect(h.edge.resumedAfterReplies).toEqual([]);
      expect(h.edge.replies()).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});
