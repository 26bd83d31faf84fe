// The TFTP server: read requests only. One listener per local address, because
// Node cannot tell which address a datagram was sent to, and the reply must come
// from that address (notes §3.2); each transfer gets its own socket bound to it.
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import { encodeError, parseTftpPacket, TftpError, type TftpRequest } from './packet.js';
import { negotiate, type TftpLimits } from './options.js';
import { normalizeRequestPath } from '../boot/files/request-path.js';
import { Transfer, type TransferResult } from './transfer.js';
import type { ResolverChain } from '../boot/files/resolver.js';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { SetupError } from '../errors.js';

export interface TftpServerOptions {
  port: number;
  /** Local IPv4 addresses to listen on. */
  addresses: string[];
  limits: TftpLimits;
  maxTransfers: number;
}

export interface FileServedEvent {
  path: string;
  client: string;
  from: string;
  result: TransferResult;
}

export class TftpServer {
  private readonly listeners: dgram.Socket[] = [];
  private readonly active = new Set<dgram.Socket>();
  private readonly badLog = new RateLimiter(10, 60_000);

  constructor(
    private readonly options: TftpServerOptions,
    private readonly files: ResolverChain,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly onFileServed: (event: FileServedEvent) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    for (const address of this.options.addresses) {
      const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (err: NodeJS.ErrnoException) => {
          reject(new SetupError(`cannot bind TFTP ${address}:${this.options.port}: ${err.code === 'EADDRINUSE' ? 'another TFTP server is listening there' : err.message}`));
        });
        socket.bind(this.options.port, address, () => resolve());
      });
      socket.removeAllListeners('error');
      socket.on('error', (err) => this.logger.warn({ err: err.message, address }, 'tftp listener error'));
      socket.on('message', (msg, rinfo) => {
        this.onRequest(socket, address, msg, rinfo).catch((err: unknown) => {
          this.logger.error({ err: (err as Error).message, from: rinfo.address }, 'tftp request failed');
        });
      });
      this.listeners.push(socket);
    }
    this.logger.info({ port: this.options.port, addresses: this.options.addresses }, 'tftp listening');
  }

  async stop(): Promise<void> {
    for (const s of [...this.listeners, ...this.active]) {
      try { s.close(); } catch { /* closed already */ }
    }
    this.listeners.length = 0;
    this.active.clear();
  }

  get transfersInFlight(): number {
    return this.active.size;
  }

  private dropBad(reason: string, rinfo: dgram.RemoteInfo): void {
    this.metrics.tftpMalformed.inc();
    const gate = this.badLog.take(Date.now());
    if (gate.log) this.logger.warn({ from: `${rinfo.address}:${rinfo.port}`, reason, suppressedSinceLast: gate.suppressed }, 'tftp packet dropped');
  }

  private refuse(listener: dgram.Socket, rinfo: dgram.RemoteInfo, code: number, message: string): void {
    listener.send(encodeError(code, message), rinfo.port, rinfo.address);
  }

  private async onRequest(listener: dgram.Socket, localAddress: string, msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    const parsed = parseTftpPacket(msg);
    if (!parsed.ok) return this.dropBad(parsed.reason, rinfo);
    const packet = parsed.packet;
    if (packet.op === 'wrq') {
      this.metrics.tftpRequests.inc({ outcome: 'write-refused' });
      return this.refuse(listener, rinfo, TftpError.ILLEGAL_OPERATION, 'write requests are not supported (read-only server)');
    }
    if (packet.op !== 'rrq') return this.dropBad(`${packet.op} sent to the request port`, rinfo);
    return this.onReadRequest(listener, localAddress, packet, rinfo);
  }

  private async onReadRequest(listener: dgram.Socket, localAddress: string, request: TftpRequest, rinfo: dgram.RemoteInfo): Promise<void> {
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
      this.logger.warn({ ...log, reason: normalized.reason }, 'tftp request refused');
      return this.refuse(listener, rinfo, TftpError.ACCESS_VIOLATION, 'access violation');
    }
    if (this.active.size >= this.options.maxTransfers) {
      this.metrics.tftpRequests.inc({ outcome: 'busy' });
      return this.refuse(listener, rinfo, TftpError.NOT_DEFINED, 'server busy, retry later');
    }
    const answer = await this.files.resolve({ path: normalized.path, clientAddress: rinfo.address, protocol: 'tftp' });
    if (!answer.found) {
      this.metrics.tftpRequests.inc({ outcome: answer.denied ? 'denied' : 'not-found' });
      this.logger.info({ ...log, reason: answer.detail }, answer.denied ? 'tftp request refused' : 'tftp file not found');
      return answer.denied
        ? this.refuse(listener, rinfo, TftpError.ACCESS_VIOLATION, 'access violation')
        : this.refuse(listener, rinfo, TftpError.FILE_NOT_FOUND, 'file not found');
    }
    // The file is opened (and generated files rendered) before any OACK, so its
    // size is known and an error cannot follow an OACK (notes §3.3).
    let source;
    try {
      source = await answer.open();
    } catch (err) {
      this.metrics.tftpRequests.inc({ outcome: 'not-found' });
      this.logger.warn({ ...log, err: (err as Error).message }, 'tftp file could not be opened');
      return this.refuse(listener, rinfo, TftpError.FILE_NOT_FOUND, 'file not found');
    }
    const negotiated = negotiate(request.options, source.size, this.options.limits);
    const socket = dgram.createSocket({ type: 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, localAddress, () => { socket.off('error', reject); resolve(); });
      });
    } catch (err) {
      source.release();
      socket.close();
      throw err;
    }
    this.active.add(socket);
    this.metrics.tftpRequests.inc({ outcome: 'started' });
    const transfer = new Transfer(socket, { address: rinfo.address, port: rinfo.port }, source, negotiated, (result) => {
      this.active.delete(socket);
      this.metrics.tftpTransfers.inc({ outcome: result.outcome });
      this.metrics.tftpBytes.inc(result.bytes);
      const entry = { ...log, path: normalized.path, from: answer.from, outcome: result.outcome, bytes: result.bytes, size: source.size, blksize: negotiated.blockSize, windowsize: negotiated.windowSize, retransmits: result.retransmits, ms: result.durationMs, clientError: result.clientError?.code, detail: result.detail };
      if (result.outcome === 'timeout' || result.outcome === 'error') this.logger.warn(entry, 'tftp transfer failed');
      else if (result.outcome === 'aborted-by-client') this.logger.info(entry, 'tftp transfer closed by client');
      else this.logger.info(entry, 'tftp file sent');
      this.onFileServed({ path: normalized.path, client: rinfo.address, from: answer.from, result });
    });
    transfer.start();
  }
}
