// One read transfer, on its own socket (the server's transfer ID). Sends the OACK
// or the first window, then advances on ACKs. Retransmits on timeout only, never
// on a duplicate ACK (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1; the Pi 4
// hangs if it gets a duplicated block, raspberrypi/firmware#1631). Block numbers wrap
// 65535 -> 0 as dnsmasq, iPXE and current Pi EEPROMs expect (no RFC defines rollover;
// raspberrypi/rpi-eeprom#754; docs/protocol-notes.md §3.2, §3.4).
//
// Every way a transfer can end (socket error, send failure, timeout, client
// ERROR, start() throwing, the source failing) goes through finish(), which runs
// once: timers cleared, source released, socket closed, onEnd called.
import type dgram from 'node:dgram';
import { dataHeader, encodeError, encodeOack, parseTftpPacket, TftpError, TftpOpcode } from './packet.js';
import type { Negotiated } from './options.js';
import type { FileSource } from '../boot/files/resolver.js';
import { isReplyablePort, sendGuarded, type DatagramSender } from './send.js';

/**
 * 'final-ack-missing': every block went out and the client acknowledged all but
 * the last, then fell silent. RFC 1350 §6 leaves the final ACK unprotected (the
 * client sends it once and leaves), so on a lossy link this is the normal end of
 * a delivered file, not a failure.
 */
export type TransferOutcome = 'complete' | 'final-ack-missing' | 'aborted-by-client' | 'timeout' | 'error';

export interface TransferResult {
  outcome: TransferOutcome;
  /** Bytes the client acknowledged. */
  bytes: number;
  retransmits: number;
  durationMs: number;
  /** The client's ERROR, when it ended the transfer (a size probe, usually). */
  clientError?: { code: number; message: string };
  detail?: string;
}

export interface Peer {
  address: string;
  port: number;
}

/**
 * The part of a dgram socket a transfer uses: a socket of its own, a PeerChannel
 * on the shared listener in single-port mode (server/tftp/demux.ts), or a unit test's fake.
 */
export interface TransferSocket extends DatagramSender {
  on(event: 'message', listener: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  close(): void;
}

/** What a transfer reports besides its end, for metrics and bounded logging. */
export interface TransferObserver {
  /** A datagram from another endpoint that was dropped without a reply (source port 0). */
  strayDropped(from: dgram.RemoteInfo): void;
  /** A send the kernel or Node refused; `toPeer` false for the ERROR 5 to a stranger. */
  sendFailed(err: Error, toPeer: boolean): void;
}

const NO_OBSERVER: TransferObserver = { strayDropped: () => undefined, sendFailed: () => undefined };

/**
 * How long a transfer may go without progress before it is abandoned (at least
 * three retransmissions, so the bound is max(15 s, 3 x timeout) + timeout; the
 * timeout option is capped by tftp.maxTimeoutSeconds, server/tftp/options.ts). The
 * retransmission interval itself stays at the negotiated timeout (1 s default):
 * the server ignores duplicate ACKs, so a client waiting on a lost DATA packet
 * depends on this timer alone, and clients give up after a few of their own
 * 1 s retries (tftp-hpa, iPXE); an exponential backoff outlasts them under loss.
 */
const GIVE_UP_AFTER_MS = 15_000;
/**
 * Until the peer's first ACK (of the OACK or of block 1), a transfer may be an
 * RRQ with a forged source address that no ACK will ever come from: it gives up
 * sooner, so forged RRQs cannot hold slots (a real client ACKs within ms, and
 * within a few retransmissions under loss).
 */
const UNCONFIRMED_GIVE_UP_MS = 5_000;
const EMPTY = Buffer.alloc(0);

export class Transfer {
  private readonly totalBlocks: number;
  /** Highest block index (1-based, not wrapped) the client acknowledged; 0 before any. */
  private acked = 0;
  /** The peer acknowledged something: its address is real, not forged. */
  private heardFromPeer = false;
  /** Highest block index sent so far. */
  private sentUpTo = 0;
  private awaitingOackAck: boolean;
  private timer: NodeJS.Timeout | undefined;
  private retries = 0;
  private retransmits = 0;
  private ended = false;
  private sending = false;
  private sendAgain = false;
  private readonly started = Date.now();

  constructor(
    private readonly socket: TransferSocket,
    private readonly peer: Peer,
    private readonly source: FileSource,
    private readonly negotiated: Negotiated,
    private readonly onEnd: (result: TransferResult) => void,
    private readonly observer: TransferObserver = NO_OBSERVER,
  ) {
    // The last block is shorter than blksize, so a size that is an exact multiple
    // gets a final empty block (RFC 1350 §6).
    this.totalBlocks = Math.floor(source.size / negotiated.blockSize) + 1;
    this.awaitingOackAck = negotiated.oack.length > 0;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => this.finish('error', `socket error: ${err.message}`));
    // Closed from outside (the server stopping): end now rather than at the next timer.
    socket.on('close', () => this.finish('error', 'socket closed'));
  }

  /** Sends the OACK or the first window. Never throws: a failure ends the transfer through finish(). */
  start(): void {
    try {
      if (!isReplyablePort(this.peer.port)) {
        this.finish('error', `client port ${this.peer.port} cannot be answered`);
        return;
      }
      if (this.awaitingOackAck) {
        this.sendRaw(encodeOack(this.negotiated.oack));
        this.armTimer();
      } else {
        this.sendWindow();
      }
    } catch (err) {
      this.finish('error', `start failed: ${(err as Error).message}`);
    }
  }

  /** A send that fails (now or in the kernel) ends the transfer: the peer cannot be reached. */
  private sendRaw(...parts: Buffer[]): void {
    if (this.ended) return;
    sendGuarded(this.socket, parts, this.peer.port, this.peer.address, (err) => {
      if (!err) return;
      this.observer.sendFailed(err, true);
      this.finish('error', `send failed: ${err.message}`);
    });
  }

  /**
   * Sends the window after the last acknowledged block. Synchronous when the file
   * is in memory (the common, cached case: no promise per packet); a read that
   * returns a promise continues asynchronously, and an ACK arriving meanwhile asks
   * for another pass.
   */
  private sendWindow(): void {
    if (this.ended) return;
    if (this.sending) {
      this.sendAgain = true;
      return;
    }
    this.sending = true;
    try {
      do {
        this.sendAgain = false;
        const { blockSize, windowSize } = this.negotiated;
        const last = Math.min(this.acked + windowSize, this.totalBlocks);
        for (let block = this.acked + 1; block <= last; block++) {
          const offset = (block - 1) * blockSize;
          const length = Math.max(0, Math.min(blockSize, this.source.size - offset));
          const payload = length > 0 ? this.source.read(offset, length) : EMPTY;
          if (payload instanceof Promise) {
            this.continueAsync(payload, block, last).catch((err: unknown) =>
              this.finish('error', `read failed: ${(err as Error).message}`),
            );
            return;
          }
          this.sendBlock(block, payload);
          if (this.ended) break;
        }
      } while (this.sendAgain && !this.ended);
      this.armTimer();
      this.sending = false;
    } catch (err) {
      this.sending = false;
      this.abort(TftpError.NOT_DEFINED, 'read error', (err as Error).message);
    }
  }

  private sendBlock(block: number, payload: Buffer): void {
    if (block <= this.sentUpTo) this.retransmits++;
    this.sendRaw(dataHeader(block), payload);
    if (block > this.sentUpTo) this.sentUpTo = block;
  }

  /** The rest of a window whose file is read from disk block by block. */
  private async continueAsync(pending: Promise<Buffer>, block: number, last: number): Promise<void> {
    try {
      let payload = await pending;
      for (let b = block; ; b++) {
        if (this.ended) return;
        this.sendBlock(b, payload);
        if (b >= last) break;
        const offset = b * this.negotiated.blockSize;
        const length = Math.max(0, Math.min(this.negotiated.blockSize, this.source.size - offset));
        payload = length > 0 ? await this.source.read(offset, length) : EMPTY;
      }
      this.armTimer();
      this.sending = false;
      if (this.sendAgain) this.sendWindow();
    } catch (err) {
      this.sending = false;
      this.abort(TftpError.NOT_DEFINED, 'read error', (err as Error).message);
    }
  }

  /** (Re)starts the retransmission timer; refresh() re-arms it without a new allocation per ACK. */
  private armTimer(): void {
    if (this.ended) return;
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.onTimeout(), this.negotiated.timeoutMs);
  }

  private onTimeout(): void {
    this.timer = undefined;
    if (this.ended) return;
    const giveUpMs = this.heardFromPeer ? GIVE_UP_AFTER_MS : UNCONFIRMED_GIVE_UP_MS;
    const maxRetries = Math.max(3, Math.ceil(giveUpMs / this.negotiated.timeoutMs));
    if (++this.retries > maxRetries) {
      const onlyFinalAckMissing = !this.awaitingOackAck && this.sentUpTo === this.totalBlocks && this.acked === this.totalBlocks - 1;
      if (onlyFinalAckMissing) this.finish('final-ack-missing', `no ACK for the last block after ${maxRetries} retransmissions`);
      else this.finish('timeout', `no ACK after ${maxRetries} retransmissions`);
      return;
    }
    if (this.awaitingOackAck) {
      this.retransmits++;
      this.sendRaw(encodeOack(this.negotiated.oack));
      this.armTimer();
    } else {
      this.sendWindow();
      // A disk read still pending holds the window back and arms no timer itself:
      // keep counting timeouts, so a read that never returns ends the transfer too.
      if (this.sending) this.armTimer();
    }
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.ended) return;
    if (rinfo.address !== this.peer.address || rinfo.port !== this.peer.port) {
      // RFC 1350 §4: a packet from another transfer ID gets ERROR 5, and the
      // transfer goes on undisturbed. Source port 0 cannot be answered at all.
      if (!isReplyablePort(rinfo.port)) {
        this.observer.strayDropped(rinfo);
        return;
      }
      sendGuarded(this.socket, encodeError(TftpError.UNKNOWN_TID, 'Unknown transfer ID'), rinfo.port, rinfo.address, (err) => {
        if (err) this.observer.sendFailed(err, false);
      });
      return;
    }
    // ACKs are nearly every packet a transfer receives: decode them without the general parser.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === TftpOpcode.ACK) {
      this.onAck(msg.readUInt16BE(2));
      return;
    }
    const parsed = parseTftpPacket(msg);
    if (!parsed.ok) return;
    const packet = parsed.packet;
    if (packet.op === 'error') {
      // UEFI (ERROR 8 after the OACK) and the Pi (ERROR 0 "Early terminate") abort
      // on purpose after learning the size: a normal close, not a failure.
      this.finish('aborted-by-client', undefined, { code: packet.code, message: packet.message });
      return;
    }
  }

  private onAck(wire: number): void {
    if (this.awaitingOackAck) {
      if (wire !== 0) return;
      this.awaitingOackAck = false;
      this.progress();
      this.sendWindow();
      return;
    }
    // Map the 16-bit number onto the blocks in flight; anything else is a stale or
    // duplicate ACK and is ignored (no retransmission on duplicates).
    const index = this.ackIndex(wire);
    if (index === undefined) return;
    this.acked = index;
    this.progress();
    if (this.acked >= this.totalBlocks) {
      this.finish('complete');
      return;
    }
    // RFC 7440: after an ACK for a block inside the window, continue from the next.
    this.sendWindow();
  }

  private ackIndex(wire: number): number | undefined {
    for (let index = this.acked + 1; index <= this.sentUpTo; index++) {
      if ((index & 0xffff) === wire) return index;
    }
    return undefined;
  }

  private progress(): void {
    this.retries = 0;
    this.heardFromPeer = true;
  }

  /**
   * The client asked for a file again from the same address and port (single-port
   * mode, server/tftp/server.ts): it gave this transfer up, so it ends as the
   * client's doing, without an ERROR (the reply would reach the new request).
   */
  supersede(): void {
    this.finish('aborted-by-client', 'superseded by a new read request from the same client address and port');
  }

  /** Ends the transfer with an ERROR to the client. */
  abort(code: number, message: string, detail?: string): void {
    if (this.ended) return;
    // Close only once the ERROR has left: closing right after send() can drop it.
    // A failed send closes at once (sendGuarded calls back synchronously then).
    sendGuarded(this.socket, encodeError(code, message), this.peer.port, this.peer.address, () => this.closeSocket());
    this.finish('error', detail ?? message, undefined, false);
  }

  private closeSocket(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }

  private finish(outcome: TransferOutcome, detail?: string, clientError?: { code: number; message: string }, close = true): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      this.source.release();
    } catch {
      // A release that throws must not keep the slot or the socket.
    }
    if (close) this.closeSocket();
    const bytes =
      outcome === 'final-ack-missing' ? this.source.size : Math.min(this.source.size, Math.max(0, this.acked) * this.negotiated.blockSize);
    this.onEnd({ outcome, bytes, retransmits: this.retransmits, durationMs: Date.now() - this.started, clientError, detail });
  }
}
