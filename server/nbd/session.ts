// One NBD connection: fixed-newstyle handshake, option haggling, then the
// transmission phase over a streaming buffer (the kernel pipelines requests: a
// read may hold several requests, or half of one). Replies may go out of order
// and are matched by the client's cookie. Exports are read-only.
import {
  ClientFlag,
  Command,
  Errno,
  exportNameReply,
  greeting,
  IHAVEOPT,
  Info,
  infoBlockSize,
  infoExport,
  listEntry,
  MAX_REQUEST_LENGTH,
  Option,
  optionReply,
  READ_ONLY_EXPORT_FLAGS,
  Reply,
  REQUEST_MAGIC,
  simpleReply,
} from './protocol.js';
import type { ReadBudget } from './read-budget.js';

export interface NbdExport {
  name: string;
  size: bigint;
  /** What exactly is served, e.g. the real path of the image version. */
  source: string;
  /** For a published image: the image and the version directory the bytes come from (what `bootfarm image gc` must keep). */
  version?: { image: string; version: string } | undefined;
  read(offset: number, length: number): Promise<Buffer>;
  /** Hands a buffer returned by read() back for reuse, once it has been sent. */
  recycle(buf: Buffer): void;
  close(): void;
}

export interface ExportCatalog {
  names(): Promise<string[]>;
  /** Opens an export now; the connection keeps this version until it closes. */
  open(name: string): Promise<NbdExport | undefined>;
}

export interface SessionIO {
  /** Writes the parts back to back (one reply stays contiguous on the stream); `sent` runs when they left. */
  write(parts: Buffer[], sent?: () => void): void;
  /**
   * True while the replies queued for the peer are above the high-water mark: the
   * session stops reading until the edge calls drained(). Every reply path goes
   * through this check, so a peer that never reads cannot make the server buffer.
   */
  congested(): boolean;
  /** Ends the connection after pending writes (the edge bounds how long that may take). */
  end(): void;
  pause(): void;
  resume(): void;
}

export type RequestCommand = 'read' | 'write' | 'trim' | 'write-zeroes' | 'unknown';
export type RequestError = 'EPERM' | 'EINVAL' | 'EIO';
export type HandshakeEnd = 'policy' | 'too-many-options';

export interface SessionEvents {
  attached(exp: NbdExport): void;
  served(exp: NbdExport, bytes: number): void;
  protocolError(reason: string): void;
  /** The handshake was ended by the server: a refused client asked for an export, or sent too many options. */
  handshakeEnded(reason: HandshakeEnd, detail: string): void;
  /** A transmission request answered with an error. */
  requestRefused(command: RequestCommand, error: RequestError, detail: string): void;
  closed(): void;
}

export interface SessionPolicy {
  /** Undefined: may attach; otherwise why not (answered with ERR_POLICY, then the connection is closed). */
  refusal: string | undefined;
  /** Options answered per handshake; the one past it closes the connection (nbd.maxHandshakeOptions). */
  maxOptions: number;
  /** READ bytes in memory, shared by all connections (nbd.maxBufferedReadMiB). */
  readBudget: ReadBudget;
}

/**
 * Largest option payload read. Names are capped at 4096 bytes by the protocol;
 * INFO/GO adds a length, a count and a few info types. A larger claim closes the
 * connection as soon as its 16-byte header is in, before any of it is buffered.
 */
const MAX_OPTION_LENGTH = 4096 + 4 + 2 + 2 * 64;
/** Unparsed bytes held while an option is being answered (it may await the disk); past it, reading stops. */
const MAX_PENDING_BYTES = 256 * 1024;
/**
 * Reads in flight per connection, counted until their reply has been *sent*: a
 * client that stops reading replies stops being served, instead of making the
 * server buffer every reply (a flood of 1 MiB READs took RSS past 1 GiB).
 */
const MAX_IN_FLIGHT = 64;
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

type Phase = 'client-flags' | 'options' | 'transmission' | 'closing';

export class NbdSession {
  private phase: Phase = 'client-flags';
  private pending: Buffer = Buffer.alloc(0);
  private noZeroes = false;
  private exp: NbdExport | undefined;
  private inFlight = 0;
  private inFlightBytes = 0;
  private paused = false;
  private busy = false;
  private disconnectRequested = false;
  private optionsSeen = 0;
  /** Bytes of a refused WRITE's payload still to skip: consumed as they arrive, never buffered. */
  private discarding = 0;
  private afterDiscard: (() => void) | undefined;
  /** Waiting for the shared read budget (policy.readBudget) to start the next READ. */
  private budgetBlocked = false;
  private readonly budgetFreed = (): void => {
    this.budgetBlocked = false;
    this.releaseIfClear();
  };

  constructor(
    private readonly io: SessionIO,
    private readonly catalog: ExportCatalog,
    private readonly policy: SessionPolicy,
    private readonly events: SessionEvents,
  ) {
    io.write([greeting()]);
  }

  onData(chunk: Buffer): void {
    // Whatever arrives after the server decided to close is not even kept.
    if (this.phase === 'closing') return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.pending.length > MAX_PENDING_BYTES) this.hold();
    this.pump().catch((err: unknown) => this.fail(`internal error: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** The edge flushed the replies queued for the peer: read again if nothing else holds us back. */
  drained(): void {
    this.releaseIfClear();
  }

  /** The peer went away: release what this session holds. */
  onClose(): void {
    this.phase = 'closing';
    this.policy.readBudget.forget(this.budgetFreed);
    this.pending = Buffer.alloc(0);
    this.exp?.close();
    this.exp = undefined;
    this.events.closed();
  }

  private fail(reason: string): void {
    if (this.phase === 'closing') return;
    this.events.protocolError(reason);
    this.phase = 'closing';
    this.io.end();
  }

  /** Why reading must stop now: replies not yet flushed to the peer, or too many reads in flight. */
  private mustHold(): boolean {
    return this.budgetBlocked || this.io.congested() || this.inFlight >= MAX_IN_FLIGHT || this.inFlightBytes >= MAX_IN_FLIGHT_BYTES;
  }

  private hold(): void {
    if (this.paused) return;
    this.paused = true;
    this.io.pause();
  }

  /** Resumes reading once the backlog is half gone (hysteresis: no pause/resume per reply). */
  private releaseIfClear(): void {
    if (!this.paused || this.phase === 'closing') return;
    if (this.io.congested() || this.inFlight >= MAX_IN_FLIGHT / 2 || this.inFlightBytes >= MAX_IN_FLIGHT_BYTES / 2) return;
    if (this.pending.length > MAX_PENDING_BYTES) {
      // Still a backlog of unparsed bytes: parse it first; pump resumes reading when it is down.
      this.pump().catch((err: unknown) => this.fail(`internal error: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    this.paused = false;
    this.io.resume();
    this.pump().catch((err: unknown) => this.fail(`internal error: ${err instanceof Error ? err.message : String(err)}`));
  }

  private take(n: number): Buffer | undefined {
    if (this.pending.length < n) return undefined;
    const head = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return head;
  }

  /** Parses as much as is buffered. Option handling awaits export opens, so it is serialised. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        if (this.phase === 'closing') return;
        if (this.afterDiscard) {
          const skipped = Math.min(this.discarding, this.pending.length);
          this.take(skipped);
          this.discarding -= skipped;
          if (this.discarding > 0) return;
          const then = this.afterDiscard;
          this.afterDiscard = undefined;
          then?.();
          continue;
        }
        // Every reply path below writes through this check: a peer that does not
        // read its replies stops being read from.
        if (this.mustHold()) {
          this.hold();
          return;
        }
        if (this.phase === 'client-flags') {
          const flags = this.take(4);
          if (!flags) return;
          const value = flags.readUInt32BE(0);
          // Unknown bits, or bits we did not offer: the server MUST drop the connection.
          if (value & ~(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)) return this.fail(`unknown client flags 0x${value.toString(16)}`);
          if (!(value & ClientFlag.FIXED_NEWSTYLE)) return this.fail('client does not speak fixed newstyle');
          this.noZeroes = (value & ClientFlag.NO_ZEROES) !== 0;
          this.phase = 'options';
          continue;
        }
        if (this.phase === 'options') {
          if (this.pending.length < 16) return;
          if (!this.pending.subarray(0, 8).equals(IHAVEOPT)) return this.fail('option without IHAVEOPT magic');
          const option = this.pending.readUInt32BE(8);
          const length = this.pending.readUInt32BE(12);
          if (length > MAX_OPTION_LENGTH) return this.fail(`option ${option} claims ${length} bytes of data`);
          if (this.pending.length < 16 + length) return;
          if (++this.optionsSeen > this.policy.maxOptions)
            return this.endHandshake('too-many-options', `more than ${this.policy.maxOptions} options in one handshake`);
          this.take(16);
          const data = Buffer.from(this.take(length) as Buffer);
          await this.handleOption(option, data);
          continue;
        }
        // Transmission.
        if (this.pending.length < 28) return;
        if (this.pending.readUInt32BE(0) !== REQUEST_MAGIC) return this.fail('request without the request magic');
        const type = this.pending.readUInt16BE(6);
        const length = this.pending.readUInt32BE(24);
        if (type === Command.WRITE && length > MAX_REQUEST_LENGTH) return this.fail(`WRITE of ${length} bytes`);
        if (type === Command.READ && !this.disconnectRequested && this.readInRange(this.pending.readBigUInt64BE(16), length)) {
          // Its bytes must fit the server-wide budget before the read starts; until they do, this peer is not read from.
          if (!this.policy.readBudget.tryTake(length, this.inFlight === 0)) {
            this.budgetBlocked = true;
            this.hold();
            this.policy.readBudget.wait(this.budgetFreed);
            return;
          }
          const header = this.take(28) as Buffer;
          this.startRead(Buffer.from(header.subarray(8, 16)), header.readBigUInt64BE(16), length);
          continue;
        }
        const header = this.take(28) as Buffer;
        const cookie = Buffer.from(header.subarray(8, 16));
        const offset = header.readBigUInt64BE(16);
        if (type === Command.WRITE) {
          // The payload of a refused write is skipped as it streams in; the refusal follows it.
          this.discarding = length;
          this.afterDiscard = () => this.handleRequest(type, cookie, offset, length);
          continue;
        }
        this.handleRequest(type, cookie, offset, length);
      }
    } finally {
      this.busy = false;
      // Reading was stopped only for a backlog of unparsed bytes, and that is gone.
      if (this.paused && this.phase !== 'closing' && this.pending.length <= MAX_PENDING_BYTES && !this.mustHold()) {
        this.paused = false;
        this.io.resume();
      }
    }
  }

  /** Ends the handshake from the server's side: the reply already written is flushed, then the connection closes. */
  private endHandshake(reason: HandshakeEnd, detail: string): void {
    this.events.handshakeEnded(reason, detail);
    this.endNow();
  }

  /** An option that asks for an export, from a client the policy refuses: say why, then hang up. */
  private refuse(option: number, refusal: string): void {
    this.reply(option, Reply.ERR_POLICY, Buffer.from(refusal));
    this.endHandshake('policy', refusal);
  }

  private reply(option: number, type: number, data?: Buffer): void {
    this.io.write([optionReply(option, type, data)]);
  }

  private async handleOption(option: number, data: Buffer): Promise<void> {
    switch (option) {
      case Option.ABORT:
        this.reply(option, Reply.ACK);
        this.phase = 'closing';
        this.io.end();
        return;
      case Option.LIST: {
        if (this.policy.refusal) return this.refuse(option, this.policy.refusal);
        if (data.length !== 0) return this.reply(option, Reply.ERR_INVALID, Buffer.from('LIST takes no data'));
        for (const name of await this.catalog.names()) this.reply(option, Reply.SERVER, listEntry(name));
        return this.reply(option, Reply.ACK);
      }
      case Option.EXPORT_NAME: {
        // No error reply exists for EXPORT_NAME: an unknown or refused export closes the connection.
        if (this.policy.refusal) return this.endHandshake('policy', this.policy.refusal);
        const exp = await this.catalog.open(data.toString('utf8'));
        if (this.phase === 'closing') return this.release(exp);
        if (!exp) return this.fail(`EXPORT_NAME for unknown export ${JSON.stringify(data.toString('utf8'))}`);
        this.enterTransmission(exp);
        this.io.write([exportNameReply(exp.size, READ_ONLY_EXPORT_FLAGS, this.noZeroes)]);
        return;
      }
      case Option.INFO:
      case Option.GO: {
        if (this.policy.refusal) return this.refuse(option, this.policy.refusal);
        if (data.length < 6) return this.reply(option, Reply.ERR_INVALID, Buffer.from('INFO/GO data too short'));
        const nameLength = data.readUInt32BE(0);
        if (4 + nameLength + 2 > data.length)
          return this.reply(option, Reply.ERR_INVALID, Buffer.from('export name runs past the option data'));
        const name = data.subarray(4, 4 + nameLength).toString('utf8');
        const count = data.readUInt16BE(4 + nameLength);
        if (4 + nameLength + 2 + count * 2 !== data.length)
          return this.reply(option, Reply.ERR_INVALID, Buffer.from('information request count does not match the data'));
        const requested = new Set<number>();
        for (let i = 0; i < count; i++) requested.add(data.readUInt16BE(4 + nameLength + 2 + i * 2));
        const exp = await this.catalog.open(name);
        if (this.phase === 'closing') return this.release(exp);
        if (!exp) return this.reply(option, Reply.ERR_UNKNOWN, Buffer.from(`no export named ${JSON.stringify(name)}`));
        if (requested.has(Info.NAME)) this.reply(option, Reply.INFO, Buffer.concat([Buffer.from([0, Info.NAME]), Buffer.from(exp.name)]));
        if (requested.has(Info.BLOCK_SIZE)) this.reply(option, Reply.INFO, infoBlockSize(1, 4096, MAX_REQUEST_LENGTH));
        this.reply(option, Reply.INFO, infoExport(exp.size, READ_ONLY_EXPORT_FLAGS));
        this.reply(option, Reply.ACK);
        if (option === Option.GO) this.enterTransmission(exp);
        else exp.close();
        return;
      }
      default:
        // STARTTLS, STRUCTURED_REPLY, meta contexts and anything unknown: refused,
        // and the connection stays usable for the next option (proto.md baseline).
        return this.reply(
          option,
          Reply.ERR_UNSUP,
          Buffer.from(option === Option.STRUCTURED_REPLY ? 'structured replies are not supported' : `option ${option} is not supported`),
        );
    }
  }

  /**
   * The peer went away while its export was opening (onClose already ran): the
   * export is closed here, nothing is answered or attached, so no connection
   * that is gone keeps an image version open or is reported as attached.
   */
  private release(exp: NbdExport | undefined): void {
    exp?.close();
  }

  private enterTransmission(exp: NbdExport): void {
    this.exp = exp;
    this.phase = 'transmission';
    this.events.attached(exp);
  }

  private handleRequest(type: number, cookie: Buffer, offset: bigint, length: number): void {
    // Nothing after DISC is served.
    if (this.disconnectRequested) return;
    const exp = this.exp as NbdExport;
    switch (type) {
      case Command.READ:
        // In range reads were started by pump (they wait for the read budget there).
        // Out of range is answered before any data: a short read after a zero-error header is fatal.
        this.refuseRequest('read', 'EINVAL', cookie, `READ of ${length} bytes at ${offset} on an export of ${exp.size} bytes`);
        return;
      case Command.WRITE:
      case Command.TRIM:
      case Command.WRITE_ZEROES: {
        const command = type === Command.WRITE ? 'write' : type === Command.TRIM ? 'trim' : 'write-zeroes';
        this.refuseRequest(command, 'EPERM', cookie, `${command} of ${length} bytes at ${offset} on a read-only export`);
        return;
      }
      case Command.FLUSH:
      case Command.CACHE:
        this.io.write([simpleReply(0, cookie)]);
        return;
      case Command.DISC:
        // Finish what is in flight, then close.
        this.disconnectRequested = true;
        if (this.inFlight === 0) this.endNow();
        return;
      default:
        this.refuseRequest('unknown', 'EINVAL', cookie, `unknown command ${type}`);
    }
  }

  private readInRange(offset: bigint, length: number): boolean {
    return length <= MAX_REQUEST_LENGTH && offset + BigInt(length) <= (this.exp as NbdExport).size;
  }

  /** Starts a READ whose bytes the read budget already granted; they go back once the reply is sent or dropped. */
  private startRead(cookie: Buffer, offset: bigint, length: number): void {
    const exp = this.exp as NbdExport;
    this.inFlight++;
    this.inFlightBytes += length;
    exp.read(Number(offset), length).then(
      (data) => {
        if (this.phase === 'closing') {
          exp.recycle(data);
          this.settled(length);
          return;
        }
        this.io.write([simpleReply(0, cookie), data], () => {
          exp.recycle(data);
          this.settled(length);
        });
        this.events.served(exp, data.length);
      },
      (err: unknown) => {
        if (this.phase !== 'closing')
          this.refuseRequest(
            'read',
            'EIO',
            cookie,
            `READ of ${length} bytes at ${offset}: ${err instanceof Error ? err.message : String(err)}`,
          );
        this.settled(length);
      },
    );
  }

  private refuseRequest(command: RequestCommand, error: RequestError, cookie: Buffer, detail: string): void {
    this.io.write([simpleReply(Errno[error], cookie)]);
    this.events.requestRefused(command, error, detail);
  }

  private settled(bytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= bytes;
    this.policy.readBudget.give(bytes);
    if (this.disconnectRequested && this.inFlight === 0) return this.endNow();
    this.releaseIfClear();
  }

  private endNow(): void {
    this.phase = 'closing';
    this.io.end();
  }
}
