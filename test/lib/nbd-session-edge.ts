// An NbdSession (server/nbd/session.ts) driven in-process: a fake edge that
// records what the session writes and whether it paused, resumed or ended the
// connection, a one-export catalog, and the session's events as lists. Shared
// by the unit tests of the session's handshake, transmission and backpressure.
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
import { GREETING_LENGTH } from './nbd-wire.js';

export const EXPORT_SIZE = 1024 * 1024;

export class FakeEdge implements SessionIO {
  out: Buffer[] = [];
  ended = false;
  paused = false;
  pauses = 0;
  resumes = 0;
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
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
  /** Everything written after the greeting. */
  bytes(): Buffer {
    return Buffer.concat(this.out).subarray(GREETING_LENGTH);
  }
  /** Forgets what was written so far (the greeting's place is kept, so bytes() stays right). */
  clear(): void {
    this.out = [Buffer.alloc(GREETING_LENGTH)];
  }
}

export interface Harness<E extends FakeEdge = FakeEdge> {
  edge: E;
  session: NbdSession;
  reads: Array<{ offset: number; length: number }>;
  refusedRequests: Array<{ command: RequestCommand; error: RequestError }>;
  /** The detail of each refused request, in order. */
  refusalDetails: string[];
  handshakeEnds: HandshakeEnd[];
  handshakeDetails: string[];
  protocolErrors: string[];
  /** What the events reported: exports attached, bytes served, the session closed. */
  log: string[];
  /** close() calls on the export. */
  closes: number[];
  budget: ReadBudget;
}

export interface HarnessOptions<E extends FakeEdge> {
  edge?: E;
  refusal?: string;
  maxOptions?: number;
  /** The export's read; by default it records the read and answers `length` bytes of 0xab. */
  read?: NbdExport['read'];
  recycle?: NbdExport['recycle'];
  budget?: ReadBudget;
  size?: number;
  /** What LIST answers; the one export that opens is always "disk". */
  names?: string[];
  /** The catalog's open, given the harness's export; by default "disk" opens it and any other name nothing. */
  open?: (name: string, exp: NbdExport) => Promise<NbdExport | undefined>;
}

/** A session over `options.edge` (a new FakeEdge by default), its greeting already written. */
export function harness<E extends FakeEdge = FakeEdge>(options: HarnessOptions<E> = {}): Harness<E> {
  const edge = options.edge ?? (new FakeEdge() as E);
  const reads: Harness['reads'] = [];
  const closes: number[] = [];
  const exp: NbdExport = {
    name: 'disk',
    size: BigInt(options.size ?? EXPORT_SIZE),
    source: '/dev/null',
    read:
      options.read ??
      (async (offset, length) => {
        reads.push({ offset, length });
        return Buffer.alloc(length, 0xab);
      }),
    recycle: options.recycle ?? (() => undefined),
    close: () => closes.push(1),
  };
  const names = options.names ?? ['disk', 'pi/arm64'];
  const open = options.open ?? (async (name) => (name === 'disk' ? exp : undefined));
  const catalog: ExportCatalog = { names: async () => names, open: (name) => open(name, exp) };
  const budget = options.budget ?? new ReadBudget(256 * 1024 * 1024);
  const h: Omit<Harness<E>, 'session'> = {
    edge,
    reads,
    refusedRequests: [],
    refusalDetails: [],
    handshakeEnds: [],
    handshakeDetails: [],
    protocolErrors: [],
    log: [],
    closes,
    budget,
  };
  const session = new NbdSession(
    edge,
    catalog,
    { refusal: options.refusal, maxOptions: options.maxOptions ?? 256, readBudget: budget },
    {
      attached: (e) => h.log.push(`attached ${e.name}`),
      served: (_e, bytes) => h.log.push(`served ${bytes}`),
      protocolError: (reason) => h.protocolErrors.push(reason),
      handshakeEnded: (reason, detail) => {
        h.handshakeEnds.push(reason);
        h.handshakeDetails.push(detail);
      },
      requestRefused: (command, error, detail) => {
        h.refusedRequests.push({ command, error });
        h.refusalDetails.push(detail);
      },
      closed: () => h.log.push('closed'),
    },
  );
  return { ...h, session };
}

/**
 * Lets promise callbacks (the catalog's opens, the export's reads) and the
 * session's pump run to rest; no clock involved, so it costs microseconds.
 */
export async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}
