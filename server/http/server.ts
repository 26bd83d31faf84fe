// HTTP: boot files for iPXE and UEFI HTTP boot (many times faster than TFTP),
// the node agent's endpoints, the API, health and metrics. Every endpoint is
// declared in routes() below.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import type { FileSource, ResolverChain } from '../boot/files/resolver.js';
import { normalizeRequestPath } from '../boot/files/request-path.js';
import type { Metrics } from '../metrics.js';
import type { ClaimsHealth } from '../store/lease-claims.js';
import { parseRange } from './range.js';
import { applyConnectionLimits, clientAddress, httpServerOptions, type HttpConnectionLimits } from './connection-limits.js';
import { SetupError } from '../errors.js';
import { RateLimiter } from '../util/rate-limited-log.js';
import { validatorCompiler } from '../api/validation.js';
import { toOpenApi30 } from '../api/openapi.js';
import { registerApiRoutes, type ApiDeps } from '../api/routes.js';
import { registerAgentRoutes, type AgentDeps } from '../agent/routes.js';
import { registerTpmRoutes, type TpmRouteDeps } from '../agent/tpm-routes.js';
import { registerDashboardRoutes } from './dashboard.js';

export interface HttpServedEvent {
  path: string;
  client: string;
  from: string;
  bytes: number;
  status: number;
}

export interface HttpServerOptions {
  port: number;
  host: string;
  limits: HttpConnectionLimits;
  /** The API and the agent endpoints; without them only files, health and metrics are served. */
  api?: ApiDeps | undefined;
  agent?: AgentDeps | undefined;
  /** kubernetes.admission: tpm's challenge and answer (server/agent/tpm-routes.ts). */
  tpm?: TpmRouteDeps | undefined;
  /** Full DHCP mode: can the lease store (store.backend) decide claims now? */
  leaseStoreHealth?: (() => ClaimsHealth | undefined) | undefined;
  /** Whether clock skew stops new addresses (store.backend etcd). */
  clockHealth?: (() => ClaimsHealth | undefined) | undefined;
  identityHealth?: (() => ClaimsHealth | undefined) | undefined;
}

/** What /healthz says of an unhealthy lease store, whatever etcd's error was. */
export const LEASE_STORE_UNREACHABLE = 'lease store unreachable';
/** /healthz's reason while clock skew stops new addresses: fixed, as above (the log names the peer and the skew). */
const CLOCK_SKEWED = 'clock skew beyond limit';
const DUPLICATE_ID = 'instance id used by another live instance';

/** Streams a FileSource in 256 KiB reads. */
function sourceStream(source: FileSource, start: number, end: number): Readable {
  let offset = start;
  return new Readable({
    read() {
      if (offset > end) {
        this.push(null);
        return;
      }
      const length = Math.min(256 * 1024, end - offset + 1);
      // Readable ignores what read() returns: the chunk is pushed when it arrives,
      // and a failed read (thrown or rejected) ends the stream instead of
      // rejecting into nothing.
      Promise.resolve()
        .then(() => source.read(offset, length))
        .then((chunk) => {
          offset += length;
          this.push(chunk);
        })
        .catch((err: unknown) => this.destroy(err as Error));
    },
    destroy(err, callback) {
      source.release();
      callback(err);
    },
  });
}

export class HttpBootServer {
  private readonly app: FastifyInstance;
  // Refusals and misses are what a scanner produces by the thousand: a bounded
  // number of lines per interval, then one that says how many were left out.
  private readonly refusedLog = new RateLimiter(20, 10_000);
  private readonly notFoundLog = new RateLimiter(20, 10_000);
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: HttpServerOptions,
    private readonly files: ResolverChain,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly onFileServed: (event: HttpServedEvent) => void = () => undefined,
  ) {
    const limits = options.limits;
    this.app = Fastify({
      logger: false,
      routerOptions: { ignoreTrailingSlash: true },
      bodyLimit: 64 * 1024,
      http: httpServerOptions(limits),
      // Fastify sets these two on the server itself (its defaults would undo the http options above).
      requestTimeout: limits.requestTimeoutSeconds * 1000,
      keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    });
    applyConnectionLimits(this.app.server, limits, metrics, logger);
    // A response whose headers go out after the drain began (its request was being
    // resolved when SIGTERM came) says keep-alive, and Node then leaves the idle
    // connection open until keepAliveTimeoutSeconds, holding the close: it is
    // closed once idle. (One whose headers went out before is closed by Node.)
    this.app.server.on('request', (_req, res: ServerResponse) => {
      res.once('close', () => {
        if (this.closing) setImmediate(() => this.app.server.closeIdleConnections());
      });
    });
    this.app.setValidatorCompiler(validatorCompiler);
    // Validation problems are already sentences naming the field (api/validation.ts).
    this.app.setSchemaErrorFormatter((errors) => {
      const error = new Error(errors.map((e) => e.message).join('; ')) as Error & { problems?: string[] };
      error.problems = errors.map((e) => e.message ?? '');
      return error;
    });
    this.app.setErrorHandler(async (err: FastifyError & { problems?: string[] }, req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
      // A 5xx says nothing of its cause: anyone on the boot segment can send the
      // request, and the error's text may name a path under the state directory,
      // an errno or a peer (the log has it). A 4xx's text is about the request.
      if (status >= 500) {
        this.logger.error({ path: req.url, err: err.message }, 'http request failed');
        await reply.code(status).send({ error: 'internal error', message: 'internal error: the server log has the detail' });
        return;
      }
      await reply.code(status).send({ error: status === 400 ? 'bad request' : 'error', message: err.message, problems: err.problems });
    });
    this.app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url;
      if (route && (route.startsWith('/api/') || route.startsWith('/agent/')))
        this.metrics.apiRequests.inc({ route: `${req.method} ${route}`, status: String(reply.statusCode) });
    });
  }

  /** Every endpoint, in one place. */
  private async routes(): Promise<void> {
    await this.app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'bootfarm',
          description: 'Network-boot provisioning server: nodes, discovered machines, leases, boot timelines, and the node agent endpoints',
          version: '1',
        },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
      transformObject: (documentObject) =>
        toOpenApi30(
          ('openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject) as Record<string, unknown>,
        ) as Record<string, never>,
    });
    this.app.get(
      '/healthz',
      {
        schema: {
          summary:
            'Liveness; 503 while state writes fail (disk full, I/O error); 200 with status degraded while etcd (store.backend) cannot be reached',
          tags: ['service'],
        },
      },
      async (_req, reply) => {
        const state = this.options.api?.store.health();
        // The errno only: the reason names the state directory (the log has it whole).
        if (state && !state.healthy)
          return reply
            .code(503)
            .send({ status: 'unhealthy', reason: `state writes are failing${state.code ? ` (${state.code})` : ''}`, since: state.since });
        // Degraded, not down: renewals, reservations and every file are still
        // served, and a restart would not bring etcd back (it would refuse to start).
        const leases = this.options.leaseStoreHealth?.();
        const clock = this.options.clockHealth?.();
        const degraded: Record<string, unknown> = {};
        // Fixed reasons: anyone on the boot segment reads /healthz, and etcd's
        // error text can name its endpoints. The log has the detail.
        if (leases && !leases.healthy)
          degraded.leaseStore = { healthy: false, reason: LEASE_STORE_UNREACHABLE, since: new Date(leases.since).toISOString() };
        if (clock && !clock.healthy) degraded.clock = { healthy: false, reason: CLOCK_SKEWED, since: new Date(clock.since).toISOString() };
        const identity = this.options.identityHealth?.();
        if (identity && !identity.healthy)
          degraded.identity = { healthy: false, reason: DUPLICATE_ID, since: new Date(identity.since).toISOString() };
        if (Object.keys(degraded).length > 0) return { status: 'degraded', ...degraded };
        return { status: 'ok' };
      },
    );
    this.app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['service'] } }, async (_req, reply) => {
      reply.type(this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
    this.app.get('/openapi.json', { schema: { hide: true } }, async () => this.app.swagger());
    if (this.options.api) registerApiRoutes(this.app, this.options.api);
    // The live dashboard at / and its event stream: with the API, whose data and auth it uses.
    if (this.options.api)
      registerDashboardRoutes(this.app, this.options.api, this.metrics, this.options.limits.idleTimeoutSeconds, this.logger);
    if (this.options.agent) registerAgentRoutes(this.app, this.options.agent);
    if (this.options.tpm) registerTpmRoutes(this.app, this.options.tpm);
    // Boot files: the same resolver chain as TFTP (generated, image, static).
    this.app.route({ method: ['GET', 'HEAD'], url: '/*', schema: { hide: true }, handler: (req, reply) => this.serveFile(req, reply) });
  }

  private async serveFile(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const raw = (req.params as { '*': string })['*'];
    const client = clientAddress(req.ip);
    const normalized = normalizeRequestPath(raw);
    if (!normalized.ok) {
      this.metrics.httpRequests.inc({ outcome: 'denied' });
      this.logLimited(this.refusedLog, 'warn', { path: raw, client, reason: normalized.reason }, 'http request refused');
      await reply.code(403).send({ error: 'forbidden', reason: normalized.reason });
      return;
    }
    const answer = await this.files.resolve({ path: normalized.path, clientAddress: client, protocol: 'http' });
    if (!answer.found) {
      this.metrics.httpRequests.inc({ outcome: answer.denied ? 'denied' : 'not-found' });
      this.logLimited(
        answer.denied ? this.refusedLog : this.notFoundLog,
        'info',
        { path: normalized.path, client, reason: answer.detail },
        answer.denied ? 'http request refused' : 'http file not found',
      );
      // On the node's timeline too: "kernel not found" is the end of a boot.
      this.onFileServed({ path: normalized.path, client, from: 'none', bytes: 0, status: answer.denied ? 403 : 404 });
      await reply.code(answer.denied ? 403 : 404).send({ error: answer.denied ? 'forbidden' : 'not found', path: normalized.path });
      return;
    }
    const size = answer.size;
    const range = parseRange(req.headers.range, size);
    reply.header('accept-ranges', 'bytes');
    reply.type('application/octet-stream');
    if (range.kind === 'unsatisfiable') {
      this.metrics.httpRequests.inc({ outcome: 'range-unsatisfiable' });
      await reply.code(416).header('content-range', `bytes */${size}`).send();
      return;
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    const length = Math.max(0, end - start + 1);
    const status = range.kind === 'partial' ? 206 : 200;
    reply.code(status);
    // Set on the raw response so the name keeps its case: GRUB 2.06's HTTP client
    // compares "Content-Length: " byte for byte, and without it takes the size as
    // unknown and fails to load a kernel with "out of memory". Fastify would send
    // the name lower-cased.
    reply.raw.setHeader('Content-Length', String(length));
    if (range.kind === 'partial') reply.header('content-range', `bytes ${start}-${end}/${size}`);
    this.metrics.httpRequests.inc({ outcome: String(status) });
    const event = { path: normalized.path, client, from: answer.from, bytes: req.method === 'HEAD' ? 0 : length, status };
    reply.raw.once('finish', () => {
      this.metrics.httpBytes.inc(event.bytes);
      this.logger.info({ ...event, size }, 'http file sent');
      this.onFileServed(event);
    });
    if (req.method === 'HEAD' || length === 0) {
      await reply.send();
      return;
    }
    if (answer.realPath) {
      await reply.send(createReadStream(answer.realPath, { start, end }));
      return;
    }
    const source = await answer.open();
    await reply.send(sourceStream(source, start, end));
  }

  private logLimited(limiter: RateLimiter, level: 'info' | 'warn', detail: Record<string, unknown>, message: string): void {
    const { log, suppressed } = limiter.take(Date.now());
    if (!log) return;
    this.logger[level](suppressed > 0 ? { ...detail, suppressed } : detail, message);
  }

  async start(): Promise<void> {
    await this.routes();
    try {
      await this.app.listen({ port: this.options.port, host: this.options.host });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new SetupError(
        `cannot listen on HTTP ${this.options.host}:${this.options.port}: ${code === 'EADDRINUSE' ? 'the port is in use' : (err as Error).message}`,
      );
    }
    this.logger.info({ port: this.options.port, host: this.options.host }, 'http listening');
  }

  /** The port listened on (the configured one, or the kernel's choice for port 0). */
  get port(): number {
    const address = this.app.server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  /**
   * Graceful stop, first half: the listening socket closes (a new connection is
   * refused), idle keep-alive connections are closed, a new request on an open
   * one gets 503, and the promise resolves once every response in flight has
   * been sent. The caller bounds the wait, then stop()s.
   */
  drain(): Promise<void> {
    this.closing ??= this.app.close();
    return this.closing;
  }

  /** Ends whatever a drain left: connections still open are cut. */
  async stop(): Promise<void> {
    const closing = this.closing ?? this.app.close();
    this.closing = closing;
    this.app.server.closeAllConnections();
    await closing;
  }
}
