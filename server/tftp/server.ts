// The TFTP server: read requests only. One listener per local address, because
// Node cannot tell which address a datagram was sent to, and the reply must come
// from that address (dnsmasq answers from the request's destination address);
// each transfer gets its own socket bound to it — or, with tftp.singlePort, is
// answered from the listener itself and found again by the client's address and
// port (server/tftp/demux.ts): a NAT or a container's port mapping passes only
// replies that come from the port the client sent to.
//
// A transfer slot (tftp.maxTransfers overall, tftp.maxTransfersPerClient per
// client address; server/tftp/slots.ts) is reserved synchronously when a read
// request arrives, before any await, so a burst cannot overshoot the caps; every
// path that does not hand the slot to a running transfer releases it.
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import { encodeError, parseTftpPacket, TftpError, TftpOpcode, type TftpRequest } from './packet.js';
import { negotiate, type Negotiated, type TftpLimits } from './options.js';
import { normalizeRequestPath } from '../boot/files/request-path.js';
import { Transfer, type TransferObserver, type TransferResult, type TransferSocket } from './transfer.js';
import { isReplyablePort, sendGuarded } from './send.js';
import { TransferSlots } from './slots.js';
import { PeerDemux, type PeerChannel } from './demux.js';
import type { FileSource, ResolverChain } from '../boot/files/resolver.js';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { SetupError } from '../errors.js';

export interface TftpServerOptions {
  port: number;
  /** Local IPv4 addresses to listen on. */
  addresses: string[];
  limits: TftpLimits;
  maxTransfers: number;
  maxTransfersPerClient: number;
  /** Answer every transfer from the listener's port (tftp.singlePort) instead of an ephemeral port. */
  singlePort?: boolean;
}

/** RRQ or WRQ by its opcode; in single-port mode everything else on the listener belongs to a transfer. */
function isRequestOpcode(msg: Buffer): boolean {
  return msg.length >= 2 && msg[0] === 0 && (msg[1] === TftpOpcode.RRQ || msg[1] === TftpOpcode.WRQ);
}

/** What the server needs of the file resolvers; unit tests pass a stand-in. */
export type TftpFiles = Pick<ResolverChain, 'resolve'>;

export interface FileServedEvent {
  path: string;
  client: string;
  from: string;
  result: TransferResult;
}

export class TftpServer {
  private readonly listeners: dgram.Socket[] = [];
  /** Transfer sockets, or in single-port mode transfer channels: closed by stop(). */
  private readonly active = new Set<{ close(): void }>();
  /** Single-port mode: the running transfer of each channel, so a new request from its peer can supersede it. */
  private readonly channelTransfers = new WeakMap<PeerChannel, Transfer>();
  /** Running transfers plus requests between arrival and start. */
  private readonly slots: TransferSlots;
  private stopped = false;
  /** Set by drain(): new read requests are refused, transfers in flight run on. */
  private draining = false;
  /** Resolved when the last slot is released during a drain. */
  private drained: (() => void) | undefined;
  private readonly badLog = new RateLimiter(10, 60_000);
  private readonly unanswerableLog = new RateLimiter(10, 60_000);
  private readonly sendErrorLog = new RateLimiter(10, 60_000);
  private readonly failureLog = new RateLimiter(10, 60_000);
  /**
   * Refusals, missing files and failed or aborted transfers: one line each in
   * normal operation (a Pi probes a dozen missing files per boot), bounded when
   * a flood of requests would otherwise become a flood of log lines.
   */
  private readonly requestLog = new RateLimiter(200, 10_000);
  private readonly transferObserver: TransferObserver = {
    strayDropped: (from) => this.dropUnanswerable(from, 'transfer port'),
    sendFailed: (err, toPeer) => this.countSendError(err, toPeer ? 'client' : 'stranger'),
  };

  constructor(
    private readonly options: TftpServerOptions,
    private readonly files: TftpFiles,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly onFileServed: (event: FileServedEvent) => void = () => undefined,
  ) {
    this.slots = new TransferSlots(options.maxTransfers, options.maxTransfersPerClient, (held) => {
      metrics.tftpTransfersInFlight.set(held);
      if (held === 0) this.drained?.();
    });
  }

  async start(): Promise<void> {
    for (const address of this.options.addresses) {
      const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (err: NodeJS.ErrnoException) => {
          reject(
            new SetupError(
              `cannot bind TFTP ${address}:${this.options.port}: ${err.code === 'EADDRINUSE' ? 'another TFTP server is listening there' : err.message}`,
            ),
          );
        });
        socket.bind(this.options.port, address, () => resolve());
      });
      socket.removeAllListeners('error');
      socket.on('error', (err) => this.logger.warn({ err: err.message, address }, 'tftp listener error'));
      const demux = this.options.singlePort ? new PeerDemux(socket) : undefined;
      socket.on('message', (msg, rinfo) => {
        if (!isReplyablePort(rinfo.port)) {
          this.dropUnanswerable(rinfo, 'request port');
          return;
        }
        if (demux && !isRequestOpcode(msg)) {
          this.onTransferDatagram(demux, msg, rinfo);
          return;
        }
        this.onRequest(socket, address, demux, msg, rinfo).catch((err: unknown) => {
          const gate = this.failureLog.take(Date.now());
          if (gate.log)
            this.logger.error(
              { err: (err as Error).message, from: `${rinfo.address}:${rinfo.port}`, suppressedSinceLast: gate.suppressed },
              'tftp request failed',
            );
        });
      });
      this.listeners.push(socket);
    }
    this.logger.info({ port: this.options.port, addresses: this.options.addresses }, 'tftp listening');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of [...this.listeners, ...this.active]) {
      try {
        s.close();
      } catch {
        /* closed already */
      }
    }
    this.listeners.length = 0;
    this.active.clear();
  }

  /**
   * Graceful stop, first half: every new read request is refused with an ERROR
   * (the client fails now instead of timing out), and the promise resolves once
   * the transfers in flight have ended. The caller bounds the wait, then stop()s.
   */
  drain(): Promise<void> {
    this.draining = true;
    if (this.slots.held === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  /** Where the request listeners are bound (the port is the kernel's choice when options.port is 0). */
  listening(): Array<{ address: string; port: number }> {
    return this.listeners.map((s) => s.address()).map((a) => ({ address: a.address, port: a.port }));
  }

  /** Slots held: running transfers plus requests being resolved or opened. */
  get transfersInFlight(): number {
    return this.slots.held;
  }

  /**
   * Single-port mode: an ACK, ERROR or anything else that is no request goes to
   * the transfer of its sender. A peer with no transfer gets no reply (an ERROR
   * to a forged source would make the listener a reflector) and disturbs no one.
   */
  private onTransferDatagram(demux: PeerDemux, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (demux.route(msg, rinfo)) return;
    this.metrics.tftpDropped.inc({ reason: 'unknown-peer' });
    const gate = this.badLog.take(Date.now());
    if (gate.log)
      this.logger.warn(
        { from: `${rinfo.address}:${rinfo.port}`, suppressedSinceLast: gate.suppressed },
        'tftp datagram from a client with no transfer dropped',
      );
  }

  /**
   * Single-port mode: a request from an address and port that has a transfer
   * running ends that transfer first. The client gave it up (its reply was lost,
   * or it restarted), and both cannot share one (address, port) on one server port.
   */
  private supersede(demux: PeerDemux, rinfo: dgram.RemoteInfo): void {
    const channel = demux.get(rinfo.address, rinfo.port);
    if (channel) this.channelTransfers.get(channel)?.supersede();
  }

  /** Port 0 is a legal source on the wire and no destination: no reply is possible. */
  private dropUnanswerable(rinfo: dgram.RemoteInfo, where: string): void {
    this.metrics.tftpDropped.inc({ reason: 'source-port-0' });
    const gate = this.unanswerableLog.take(Date.now());
    if (gate.log)
      this.logger.warn(
        { from: `${rinfo.address}:${rinfo.port}`, where, suppressedSinceLast: gate.suppressed },
        'tftp datagram from port 0 dropped (cannot be answered)',
      );
  }

  private countSendError(err: Error, to: 'client' | 'stranger' | 'refusal'): void {
    this.metrics.tftpSendErrors.inc({ to });
    const gate = this.sendErrorLog.take(Date.now());
    if (gate.log) this.logger.warn({ err: err.message, to, suppressedSinceLast: gate.suppressed }, 'tftp send failed');
  }

  private logRequest(level: 'info' | 'warn', entry: Record<string, unknown>, message: string): void {
    const gate = this.requestLog.take(Date.now());
    if (gate.log) this.logger[level](gate.suppressed ? { ...entry, suppressedSinceLast: gate.suppressed } : entry, message);
  }

  private dropBad(reason: string, rinfo: dgram.RemoteInfo): void {
    this.metrics.tftpMalformed.inc();
    const gate = this.badLog.take(Date.now());
    if (gate.log)
      this.logger.warn({ from: `${rinfo.address}:${rinfo.port}`, reason, suppressedSinceLast: gate.suppressed }, 'tftp packet dropped');
  }

  private refuse(listener: dgram.Socket, rinfo: dgram.RemoteInfo, code: number, message: string): void {
    sendGuarded(listener, encodeError(code, message), rinfo.port, rinfo.address, (err) => {
      if (err) this.countSendError(err, 'refusal');
    });
  }

  private async onRequest(
    listener: dgram.Socket,
    localAddress: string,
    demux: PeerDemux | undefined,
    msg: Buffer,
    rinfo: dgram.RemoteInfo,
  ): Promise<void> {
    const parsed = parseTftpPacket(msg);
    if (!parsed.ok) return this.dropBad(parsed.reason, rinfo);
    const packet = parsed.packet;
    if (packet.op === 'wrq') {
      this.metrics.tftpRequests.inc({ outcome: 'write-refused' });
      return this.refuse(listener, rinfo, TftpError.ILLEGAL_OPERATION, 'write requests are not supported (read-only server)');
    }
    if (packet.op !== 'rrq') return this.dropBad(`${packet.op} sent to the request port`, rinfo);
    // Before anything that may refuse: the client has given its running transfer up either way.
    if (demux) this.supersede(demux, rinfo);
    if (this.draining) {
      this.metrics.tftpRequests.inc({ outcome: 'stopping' });
      this.logRequest(
        'info',
        { file: packet.filename, client: `${rinfo.address}:${rinfo.port}` },
        'tftp request refused: bootfarm is stopping',
      );
      return this.refuse(listener, rinfo, TftpError.NOT_DEFINED, 'server is stopping, retry later');
    }
    return this.onReadRequest(listener, localAddress, demux, packet, rinfo);
  }

  private async onReadRequest(
    listener: dgram.Socket,
    localAddress: string,
    demux: PeerDemux | undefined,
    request: TftpRequest,
    rinfo: dgram.RemoteInfo,
  ): Promise<void> {
    const log = { file: request.filename, client: `${rinfo.address}:${rinfo.port}` };
    const mode = request.mode.toLowerCase();
    if (mode !== 'octet') {
      // Boot firmware always uses octet; netascii would change sizes under tsize.
      this.metrics.tftpRequests.inc({ outcome: 'bad-mode' });
      return this.refuse(listener, rinfo, TftpError.ILLEGAL_OPERATION, `mode ${request.mode} is not supported; use octet (binary)`);
    }
    const normalized = normalizeRequestPath(request.filename);
    if (!normalized.ok) {
      this.metrics.tftpRequests.inc({ outcome: 'denied' });
      this.logRequest('warn', { ...log, reason: normalized.reason }, 'tftp request refused');
      return this.refuse(listener, rinfo, TftpError.ACCESS_VIOLATION, 'access violation');
    }
    const slot = this.slots.reserve(rinfo.address);
    if (!slot.ok) {
      this.metrics.tftpRequests.inc({ outcome: slot.full === 'total' ? 'busy' : 'busy-client' });
      return this.refuse(listener, rinfo, TftpError.NOT_DEFINED, 'server busy, retry later');
    }
    // Until a Transfer owns the slot (and releases it in its end callback), this
    // function does, on every path out of it: return, throw or rejection.
    let slotOwnedByTransfer = false;
    try {
      slotOwnedByTransfer = await this.startTransfer(listener, localAddress, demux, request, rinfo, normalized.path, slot.release);
    } finally {
      if (!slotOwnedByTransfer) slot.release();
    }
  }

  /** Resolves, opens, binds and starts; true once a Transfer owns the slot. */
  private async startTransfer(
    listener: dgram.Socket,
    localAddress: string,
    demux: PeerDemux | undefined,
    request: TftpRequest,
    rinfo: dgram.RemoteInfo,
    path: string,
    releaseSlot: () => void,
  ): Promise<boolean> {
    const log = { file: request.filename, client: `${rinfo.address}:${rinfo.port}` };
    const answer = await this.files.resolve({ path, clientAddress: rinfo.address, protocol: 'tftp' });
    if (this.stopped) return false;
    if (!answer.found) {
      this.metrics.tftpRequests.inc({ outcome: answer.denied ? 'denied' : 'not-found' });
      this.logRequest('info', { ...log, reason: answer.detail }, answer.denied ? 'tftp request refused' : 'tftp file not found');
      if (answer.denied) this.refuse(listener, rinfo, TftpError.ACCESS_VIOLATION, 'access violation');
      else this.refuse(listener, rinfo, TftpError.FILE_NOT_FOUND, 'file not found');
      return false;
    }
    // The file is opened (and generated files rendered) before any OACK, so its
    // size is known and an error cannot follow an OACK (PXELINUX mishandles that,
    // tftp-go-team/hooktftp#12).
    let source;
    try {
      source = await answer.open();
    } catch (err) {
      this.metrics.tftpRequests.inc({ outcome: 'not-found' });
      this.logRequest('warn', { ...log, err: (err as Error).message }, 'tftp file could not be opened');
      this.refuse(listener, rinfo, TftpError.FILE_NOT_FOUND, 'file not found');
      return false;
    }
    const negotiated = negotiate(request.options, source.size, this.options.limits);
    for (const option of negotiated.ignored) this.metrics.tftpOptionsIgnored.inc({ option });
    let channel: PeerChannel | undefined;
    let socket: TransferSocket;
    try {
      if (demux) {
        if (this.stopped) throw new Error('tftp server stopped');
        // Two requests from this peer were resolved at once: the one that gets here last wins.
        this.supersede(demux, rinfo);
        channel = demux.open({ address: rinfo.address, port: rinfo.port });
        socket = channel;
      } else {
        socket = await this.bindTransferSocket(localAddress);
      }
    } catch (err) {
      source.release();
      throw err;
    }
    this.active.add(socket);
    this.metrics.tftpRequests.inc({ outcome: 'started' });
    const opened = source;
    let transfer: Transfer;
    try {
      transfer = this.createTransfer(socket, rinfo, opened, negotiated, log, path, answer.from, releaseSlot);
      if (channel) this.channelTransfers.set(channel, transfer);
    } catch (err) {
      this.active.delete(socket);
      opened.release();
      try {
        socket.close();
      } catch {
        /* closed already */
      }
      throw err;
    }
    transfer.start();
    return true;
  }

  /** A socket of the transfer's own on an ephemeral port of the address the request came to (the default mode). */
  private async bindTransferSocket(localAddress: string): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type: 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, localAddress, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      if (this.stopped) throw new Error('tftp server stopped');
    } catch (err) {
      try {
        socket.close();
      } catch {
        /* closed already */
      }
      throw err;
    }
    return socket;
  }

  private createTransfer(
    socket: TransferSocket,
    rinfo: dgram.RemoteInfo,
    opened: FileSource,
    negotiated: Negotiated,
    log: { file: string; client: string },
    path: string,
    from: string,
    releaseSlot: () => void,
  ): Transfer {
    return new Transfer(
      socket,
      { address: rinfo.address, port: rinfo.port },
      opened,
      negotiated,
      (result) => {
        this.active.delete(socket);
        releaseSlot();
        try {
          this.metrics.tftpTransfers.inc({ outcome: result.outcome });
          this.metrics.tftpBytes.inc(result.bytes);
          const entry = {
            ...log,
            path,
            from,
            outcome: result.outcome,
            bytes: result.bytes,
            size: opened.size,
            blksize: negotiated.blockSize,
            windowsize: negotiated.windowSize,
            retransmits: result.retransmits,
            ms: result.durationMs,
            clientError: result.clientError?.code,
            detail: result.detail,
          };
          if (result.outcome === 'timeout' || result.outcome === 'error') this.logRequest('warn', entry, 'tftp transfer failed');
          else if (result.outcome === 'aborted-by-client') this.logRequest('info', entry, 'tftp transfer closed by client');
          else this.logger.info(entry, 'tftp file sent');
          this.onFileServed({ path, client: rinfo.address, from, result });
        } catch (err) {
          // The transfer is over and its slot free; a failing observer must not throw into a socket or timer callback.
          this.logger.error({ ...log, err: (err as Error).message }, 'tftp end-of-transfer bookkeeping failed');
        }
      },
      this.transferObserver,
    );
  }
}
