// Bounds on what HTTP clients can hold: open connections in all and per
// address, and how long a connection may take to send its request or sit
// without moving a byte. Without them a Slowloris client (headers one byte
// every few seconds) or a connection flood holds sockets and memory forever.
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { DropArgument, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';

export interface HttpConnectionLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  headersTimeoutSeconds: number;
  requestTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
  idleTimeoutSeconds: number;
}

/**
 * Options for http.createServer. Node checks the headers and request deadlines
 * on a timer (every 30 s by default), so a 10 s deadline could hold for 40 s:
 * the timer runs at a quarter of the shorter deadline instead.
 */
export function httpServerOptions(limits: HttpConnectionLimits): ServerOptions {
  const shorter = Math.min(limits.headersTimeoutSeconds, limits.requestTimeoutSeconds);
  return {
    headersTimeout: limits.headersTimeoutSeconds * 1000,
    requestTimeout: limits.requestTimeoutSeconds * 1000,
    keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, (shorter * 1000) / 4)),
  };
}

/** The peer as leases and the NBD policy name it: an IPv4-mapped IPv6 address as plain IPv4. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return 'unknown';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

/**
 * Applies the caps and the idle deadline to a listening-to-be server. Over
 * http.maxConnections Node closes a new socket before HTTP sees it ('drop');
 * over the per-address cap the socket is closed here, before any byte is read.
 */
export function applyConnectionLimits(server: Server, limits: HttpConnectionLimits, metrics: Metrics, logger: Logger): void {
  // A flood is a few warnings a minute per kind (with how many were not logged), not a line per socket.
  const limiters = { full: new RateLimiter(5, 60_000), clientFull: new RateLimiter(5, 60_000) };
  const warn = (limiter: RateLimiter, detail: Record<string, unknown>, message: string): void => {
    const { log, suppressed } = limiter.take(Date.now());
    if (log) logger.warn({ ...detail, suppressed }, message);
  };
  const perClient = new Map<string, number>();
  server.maxConnections = limits.maxConnections;
  server.on('drop', (peer?: DropArgument) => {
    metrics.httpConnectionsRefused.inc({ reason: 'server-full' });
    warn(
      limiters.full,
      { client: clientAddress(peer?.remoteAddress), maxConnections: limits.maxConnections },
      'http connection refused: http.maxConnections are open',
    );
  });
  server.on('connection', (socket: Socket) => {
    const client = clientAddress(socket.remoteAddress);
    const open = (perClient.get(client) ?? 0) + 1;
    if (open > limits.maxConnectionsPerClient) {
      metrics.httpConnectionsRefused.inc({ reason: 'client-full' });
      warn(
        limiters.clientFull,
        { client, maxConnectionsPerClient: limits.maxConnectionsPerClient },
        'http connection refused: http.maxConnectionsPerClient are open from this address',
      );
      socket.destroy();
      return;
    }
    perClient.set(client, open);
    metrics.httpConnectionsOpen.inc();
    socket.once('close', () => {
      metrics.httpConnectionsOpen.dec();
      const left = (perClient.get(client) ?? 1) - 1;
      if (left > 0) perClient.set(client, left);
      else perClient.delete(client);
    });
  });
  // Node answers an expired headers/request deadline with 408 and closes;
  // counted here, beside the framework's own handler that writes the reply.
  server.on('clientError', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') metrics.httpConnectionsTimedOut.inc({ phase: 'request' });
  });
  // Requests in flight per socket (pipelining allows several), to tell a
  // stalled exchange from a keep-alive connection that simply expired, and
  // both from one that never completed a request.
  const inFlight = new WeakMap<Socket, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once('close', () => inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1));
  });
  // A socket that moves no byte either way (a client that stopped reading a
  // large file) is closed. Node also reports an expired keep-alive here; with
  // a 'timeout' listener it leaves the closing to the listener.
  server.setTimeout(limits.idleTimeoutSeconds * 1000, (socket: Socket) => {
    const requests = inFlight.get(socket);
    metrics.httpConnectionsTimedOut.inc({ phase: requests === undefined ? 'request' : requests > 0 ? 'idle' : 'keep-alive' });
    socket.destroy();
  });
}
