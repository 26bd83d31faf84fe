// The built-in NBD server: TCP edge of NbdSession. Who may attach is decided per
// connection by its source address (by default: addresses holding a lease or
// registered for a node); bytes are counted per export and per node.
import net from 'node:net';
import type { Logger } from 'pino';
import { NbdSession, type ExportCatalog, type NbdExport } from './session.js';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { SetupError } from '../errors.js';

export interface NbdServerOptions {
  port: number;
  host: string;
}

export interface NbdAccess {
  /** Undefined when `address` may attach; otherwise the reason it may not. */
  refusal(address: string): string | undefined;
  /** The node behind an address, for metrics and the boot timeline. */
  nodeOf(address: string): { hostname: string; mac: string } | undefined;
}

export class NbdServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly errorLog = new RateLimiter(10, 60_000);

  constructor(
    private readonly options: NbdServerOptions,
    private readonly catalog: ExportCatalog,
    private readonly access: NbdAccess,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly onAttach: (node: { hostname: string; mac: string }, exp: NbdExport) => void = () => undefined,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const node = this.access.nodeOf(address);
    const nodeLabel = node?.hostname ?? 'unknown';
    const refusal = this.access.refusal(address);
    if (refusal) this.logger.warn({ client: address, reason: refusal }, 'nbd client refused');
    const session = new NbdSession(
      {
        write: (parts, sent) => {
          if (socket.destroyed) {
            sent?.();
            return;
          }
          socket.cork();
          for (let i = 0; i < parts.length; i++) {
            if (i === parts.length - 1 && sent) socket.write(parts[i] as Buffer, () => sent());
            else socket.write(parts[i] as Buffer);
          }
          socket.uncork();
        },
        end: () => socket.end(),
        pause: () => socket.pause(),
        resume: () => socket.resume(),
      },
      this.catalog,
      { refusal },
      {
        attached: (exp) => {
          this.metrics.nbdAttach.inc({ export: exp.name, node: nodeLabel });
          this.logger.info({ client: address, node: node?.hostname, export: exp.name, source: exp.source, size: Number(exp.size) }, 'nbd root attached');
          if (node) this.onAttach(node, exp);
        },
        served: (exp, bytes) => {
          this.metrics.nbdBytes.inc({ export: exp.name, node: nodeLabel }, bytes);
          this.metrics.nbdReads.inc({ export: exp.name, node: nodeLabel });
        },
        protocolError: (reason) => {
          this.metrics.nbdProtocolErrors.inc();
          const gate = this.errorLog.take(Date.now());
          if (gate.log) this.logger.warn({ client: address, reason, suppressedSinceLast: gate.suppressed }, 'nbd connection closed: protocol error');
        },
        closed: () => undefined,
      },
    );
    socket.on('data', (chunk: Buffer) => session.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      session.onClose();
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => reject(new SetupError(`cannot listen on NBD ${this.options.host}:${this.options.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`)));
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.logger.info({ port: this.options.port, host: this.options.host }, 'nbd listening');
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
