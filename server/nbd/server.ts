// The built-in NBD server: TCP edge of NbdSession. Who may attach is decided per
// connection by its source address (by default: addresses holding a lease or
// registered for a node); bytes are counted per export and per node. The edge
// also bounds what peers can hold: connections per address and in all, the time
// to reach transmission, the replies queued for a peer that does not read, and
// (with server/nbd/read-budget.ts) the READ data held for all of them together.
import net from 'node:net';
import type { Logger } from 'pino';
import { NbdSession, type ExportCatalog, type NbdExport } from './session.js';
import { ReadBudget } from './read-budget.js';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { SetupError } from '../errors.js';

export interface NbdServerOptions {
  port: number;
  host: string;
  /** A client that has not entered transmission (GO or EXPORT_NAME) by then is disconnected. */
  handshakeTimeoutSeconds: number;
  /** Open connections in all; one more is closed before the greeting. */
  maxConnections: number;
  /** Open connections from one source address (an initramfs uses 1-2; nbd-client -connections more). */
  maxConnectionsPerClient: number;
  /** Options answered in one handshake; the next one closes the connection. */
  maxHandshakeOptions: number;
  /** READ data held in memory by all connections together (see server/nbd/read-budget.ts). */
  maxBufferedReadMiB: number;
}

/**
 * Reply bytes queued in userland for one peer above which its requests stop being
 * read until the socket drains. A larger reply (a READ of up to 32 MiB) is still
 * sent whole; only the requests after it wait. A few MiB keep nbdcopy's pipeline full.
 */
const WRITE_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * Replies queued for one peer above which its requests stop being read. A 16-byte
 * error reply costs the socket a few hundred bytes of bookkeeping: counted in bytes
 * alone, a flood of FLUSHes would queue a quarter of a million of them.
 */
const MAX_QUEUED_REPLIES = 1024;
/** Time given to flush the last reply (e.g. ERR_POLICY) to a peer that may not read it, before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

export interface NbdAccess {
  /** Undefined when `address` may attach; otherwise the reason it may not. */
  refusal(address: string): string | undefined;
  /** The node behind an address, for metrics and the boot timeline. */
  nodeOf(address: string): { hostname: string; mac: string } | undefined;
}

/** Who attached an export: the address, and the node behind it when the inventory knows one. */
export interface AttachedClient {
  address: string;
  node: { hostname: string; mac: string } | undefined;
}

/** Connections of refused clients open at once (each lives at most its 2 s grace or the handshake deadline). */
export const MAX_REFUSED_CONNECTIONS = 64;

export class NbdServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** The export each attached connection reads, until it closes. */
  private readonly attachedExports = new Map<net.Socket, NbdExport>();
  /** Open connections per source address; an address leaves the map with its last connection. */
  private readonly perClient = new Map<string, number>();
  /** Open connections of clients nbd.allow refuses (see accept()). */
  private refusedOpen = 0;
  private readonly errorLog = new RateLimiter(10, 60_000);
  private readonly rejectLog = new RateLimiter(10, 60_000);
  private readonly refusalLog = new RateLimiter(10, 60_000);
  private readonly handshakeLog = new RateLimiter(10, 60_000);
  /** One limiter per kind of refused request (a handful of commands × errors), so a flood of one kind does not hide another. */
  private readonly requestLogs = new Map<string, RateLimiter>();
  private readonly readBudget: ReadBudget;

  constructor(
    private readonly options: NbdServerOptions,
    private readonly catalog: ExportCatalog,
    private readonly access: NbdAccess,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly onAttach: (client: AttachedClient, exp: NbdExport) => void = () => undefined,
  ) {
    this.readBudget = new ReadBudget(options.maxBufferedReadMiB * 1024 * 1024, (held) => metrics.nbdBufferedReadBytes.set(held));
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Over a cap: closed at once, before any handshake byte, counted, logged at a bounded rate. */
  private reject(socket: net.Socket, address: string, reason: 'per-client-cap' | 'global-cap' | 'refused-cap'): void {
    socket.on('error', () => undefined);
    socket.destroy();
    this.metrics.nbdConnectionsRejected.inc({ reason });
    const gate = this.rejectLog.take(Date.now());
    if (gate.log) {
      const limit =
        reason === 'global-cap'
          ? `nbd.maxConnections ${this.options.maxConnections}`
          : reason === 'refused-cap'
            ? `${MAX_REFUSED_CONNECTIONS} connections of refused clients`
            : `nbd.maxConnectionsPerClient ${this.options.maxConnectionsPerClient}`;
      this.logger.warn({ client: address, reason, limit, suppressedSinceLast: gate.suppressed }, 'nbd connection rejected: over the cap');
    }
  }

  private accept(socket: net.Socket): void {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    // A refused client is told why (ERR_POLICY) before it is closed, so its
    // connection lives a moment: such connections have a small cap of their own
    // and do not count against nbd.maxConnections, so addresses nbd.allow refuses
    // (forged ones, say) cannot crowd out the nodes whose roots are served.
    const refusal = this.access.refusal(address);
    if (refusal !== undefined && this.refusedOpen >= MAX_REFUSED_CONNECTIONS) return this.reject(socket, address, 'refused-cap');
    if (refusal === undefined && this.sockets.size - this.refusedOpen >= this.options.maxConnections)
      return this.reject(socket, address, 'global-cap');
    const fromClient = this.perClient.get(address) ?? 0;
    if (fromClient >= this.options.maxConnectionsPerClient) return this.reject(socket, address, 'per-client-cap');
    this.perClient.set(address, fromClient + 1);
    if (refusal !== undefined) this.refusedOpen++;
    this.sockets.add(socket);
    this.metrics.nbdConnections.set(this.sockets.size);
    socket.setNoDelay(true);
    const node = this.access.nodeOf(address);
    const nodeLabel = node?.hostname ?? 'unknown';
    let closeGrace: NodeJS.Timeout | undefined;
    /** Replies handed to the socket and not yet written out: bounds the per-write bookkeeping, not only the bytes. */
    let queuedReplies = 0;
    const handshakeDeadline = setTimeout(() => {
      this.metrics.nbdHandshakesEnded.inc({ reason: 'timeout' });
      const gate = this.handshakeLog.take(Date.now());
      if (gate.log)
        this.logger.warn(
          { client: address, seconds: this.options.handshakeTimeoutSeconds, suppressedSinceLast: gate.suppressed },
          'nbd handshake timed out',
        );
      socket.destroy();
    }, this.options.handshakeTimeoutSeconds * 1000);
    const session = new NbdSession(
      {
        write: (parts, sent) => {
          if (socket.destroyed) {
            sent?.();
            return;
          }
          queuedReplies++;
          socket.cork();
          for (let i = 0; i < parts.length; i++) {
            if (i < parts.length - 1) {
              socket.write(parts[i] as Buffer);
              continue;
            }
            socket.write(parts[i] as Buffer, () => {
              queuedReplies--;
              // 'drain' only follows a write that crossed the socket's own 16 KiB mark; many
              // small replies can hold the session below it, so their completion wakes it too.
              if (queuedReplies === MAX_QUEUED_REPLIES / 2) session.drained();
              sent?.();
            });
          }
          socket.uncork();
        },
        congested: () => socket.writableLength > WRITE_HIGH_WATER_BYTES || queuedReplies >= MAX_QUEUED_REPLIES,
        end: () => {
          socket.end();
          // A peer that does not read would keep a half-closed socket forever.
          closeGrace ??= setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
        },
        pause: () => socket.pause(),
        resume: () => socket.resume(),
      },
      this.catalog,
      { refusal, maxOptions: this.options.maxHandshakeOptions, readBudget: this.readBudget },
      {
        attached: (exp) => {
          clearTimeout(handshakeDeadline);
          this.metrics.nbdAttach.inc({ export: exp.name, node: nodeLabel });
          this.logger.info(
            { client: address, node: node?.hostname, export: exp.name, source: exp.source, size: Number(exp.size) },
            'nbd root attached',
          );
          this.attachedExports.set(socket, exp);
          this.onAttach({ address, node }, exp);
        },
        served: (exp, bytes) => {
          this.metrics.nbdBytes.inc({ export: exp.name, node: nodeLabel }, bytes);
          this.metrics.nbdReads.inc({ export: exp.name, node: nodeLabel });
        },
        protocolError: (reason) => {
          this.metrics.nbdProtocolErrors.inc();
          const gate = this.errorLog.take(Date.now());
          if (gate.log)
            this.logger.warn({ client: address, reason, suppressedSinceLast: gate.suppressed }, 'nbd connection closed: protocol error');
        },
        handshakeEnded: (reason, detail) => {
          this.metrics.nbdHandshakesEnded.inc({ reason });
          const gate = (reason === 'policy' ? this.refusalLog : this.handshakeLog).take(Date.now());
          if (!gate.log) return;
          if (reason === 'policy')
            this.logger.warn({ client: address, reason: detail, suppressedSinceLast: gate.suppressed }, 'nbd client refused');
          else
            this.logger.warn(
              { client: address, reason: detail, suppressedSinceLast: gate.suppressed },
              'nbd handshake ended: too many options',
            );
        },
        requestRefused: (command, error, detail) => {
          this.metrics.nbdRequestErrors.inc({ command, error });
          const kind = `${command}/${error}`;
          let limiter = this.requestLogs.get(kind);
          if (!limiter) {
            limiter = new RateLimiter(10, 60_000);
            this.requestLogs.set(kind, limiter);
          }
          const gate = limiter.take(Date.now());
          if (gate.log)
            this.logger[error === 'EIO' ? 'error' : 'info'](
              { client: address, node: node?.hostname, command, error, detail, suppressedSinceLast: gate.suppressed },
              'nbd request refused',
            );
        },
        closed: () => undefined,
      },
    );
    socket.on('data', (chunk: Buffer) => session.onData(chunk));
    socket.on('drain', () => session.drained());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(handshakeDeadline);
      if (closeGrace) clearTimeout(closeGrace);
      this.sockets.delete(socket);
      this.attachedExports.delete(socket);
      if (refusal !== undefined) this.refusedOpen--;
      this.metrics.nbdConnections.set(this.sockets.size);
      const left = (this.perClient.get(address) ?? 1) - 1;
      if (left > 0) this.perClient.set(address, left);
      else this.perClient.delete(address);
      session.onClose();
    });
  }

  /** Image versions read by a connection open now (`bootfarm image gc` keeps them). */
  openVersions(): Array<{ image: string; version: string; export: string }> {
    return [...this.attachedExports.values()].flatMap((exp) => (exp.version ? [{ ...exp.version, export: exp.name }] : []));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new SetupError(
            `cannot listen on NBD ${this.options.host}:${this.options.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`,
          ),
        ),
      );
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.logger.info({ port: this.options.port, host: this.options.host }, 'nbd listening');
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
