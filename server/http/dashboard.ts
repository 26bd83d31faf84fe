// The live fleet dashboard: a static page and its script at / (no data in them,
// so served to anyone), and GET /api/v1/events/stream, the server-sent events
// the page follows, behind the API's own authentication (server/api/auth.ts).
// The page sends the API token as an Authorization header on fetch() requests
// (an EventSource cannot set headers), never in a URL a log would keep.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { apiAuthHook } from '../api/auth.js';
import type { ApiDeps } from '../api/routes.js';
import type { Metrics } from '../metrics.js';
import { feedOf, type FeedItem } from './event-feed.js';
import { SseHub, sseMessage } from './sse.js';

/** Enough for an operator's few screens, not for a scanner's thousand. */
const MAX_STREAMS = 16;
/** About a thousand events of slack per stream before a slow reader is cut. */
const MAX_BUFFERED_BYTES = 256 * 1024;

const ASSETS = {
  '/': ['page.html', 'text/html; charset=utf-8'],
  '/dashboard.js': ['dashboard.js', 'text/javascript; charset=utf-8'],
  '/dashboard.css': ['dashboard.css', 'text/css; charset=utf-8'],
} as const;

// Script and styles only from here, data only from here, nothing framed or posted elsewhere.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** server/http/dashboard/ from the sources (tsx) or from dist/server/http/ (the build does not copy it). */
function assetsDir(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'dashboard'), path.resolve(here, '../../../server/http/dashboard')];
  return candidates.find((dir) => statSync(path.join(dir, 'page.html'), { throwIfNoEntry: false })?.isFile());
}

function wire(item: FeedItem): string {
  return item.kind === 'node' ? sseMessage('node', item.event) : sseMessage('discovered', item.machine);
}

export function registerDashboardRoutes(
  app: FastifyInstance,
  deps: ApiDeps,
  metrics: Metrics,
  idleTimeoutSeconds: number,
  logger: Pick<Logger, 'warn'>,
): void {
  const dir = assetsDir();
  // An install without the page still boots machines and serves the API and the stream.
  if (!dir) logger.warn('the dashboard files (server/http/dashboard/) are not installed: / answers 404');
  else {
    for (const [url, [file, type]] of Object.entries(ASSETS)) {
      const body = readFileSync(path.join(dir, file));
      app.get(url, { schema: { hide: true } }, async (_req, reply) => {
        await reply
          .type(type)
          .header('content-security-policy', CSP)
          .header('x-content-type-options', 'nosniff')
          .header('cache-control', 'no-cache')
          .send(body);
      });
    }
  }

  const hub = new SseHub(
    { maxClients: MAX_STREAMS, maxBufferedBytes: MAX_BUFFERED_BYTES, heartbeatMs: Math.min(25_000, (idleTimeoutSeconds * 1000) / 2) },
    { dropped: () => metrics.eventStreamsCut.inc({ reason: 'slow' }), refused: () => metrics.eventStreamsCut.inc({ reason: 'full' }) },
  );
  const unsubscribe = feedOf(deps.store).subscribe((item) => hub.broadcast(wire(item)));
  // Before the server's close, which would otherwise wait on streams that never end.
  app.addHook('preClose', async () => {
    unsubscribe();
    hub.close();
  });

  app.register(
    async (api) => {
      api.addHook('onRequest', apiAuthHook(deps.config.api));
      api.get(
        '/events/stream',
        {
          schema: {
            summary:
              'Server-sent events: each node timeline event (event: node) and each discovered machine seen (event: discovered) as it is recorded',
            tags: ['nodes'],
          },
        },
        async (_req, reply: FastifyReply) => {
          if (!hub.admit()) return reply.code(503).send({ error: 'busy', message: `${MAX_STREAMS} event streams are open` });
          reply.hijack();
          hub.add(reply.raw);
          return reply;
        },
      );
    },
    { prefix: '/api/v1' },
  );
}
