// Server-sent events to a bounded set of clients. Memory stays bounded whatever
// the clients do: at most maxClients streams (one more is answered 503), and a
// client whose unsent bytes pass maxBufferedBytes (it stopped reading, or reads
// slower than the fleet boots) is cut and counted; its page reconnects and
// reloads the timelines, so it loses nothing it cannot get back.
import type { ServerResponse } from 'node:http';

export interface SseLimits {
  maxClients: number;
  maxBufferedBytes: number;
  /** A comment line this often keeps an idle stream inside http.idleTimeoutSeconds. */
  heartbeatMs: number;
}

export interface SseCounters {
  /** A client cut for falling behind. */
  dropped(): void;
  /** A client refused because maxClients were connected. */
  refused(): void;
}

/** One message on the wire: `event:` names it, `data:` is one JSON line (JSON never contains a raw newline). */
export function sseMessage(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class SseHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly limits: SseLimits,
    private readonly counters: SseCounters,
  ) {
    this.heartbeat = setInterval(() => this.broadcast(': ping\n\n'), limits.heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Whether another client may connect now; counts the refusal when not. */
  admit(): boolean {
    if (this.clients.size < this.limits.maxClients) return true;
    this.counters.refused();
    return false;
  }

  /** Takes over a response whose head the caller has not written yet. */
  add(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A proxy in front must pass each message on as it comes.
      'x-accel-buffering': 'no',
    });
    this.clients.add(res);
    res.once('close', () => this.clients.delete(res));
    this.send(res, ': connected\n\n');
  }

  broadcast(text: string): void {
    for (const res of this.clients) this.send(res, text);
  }

  /** Ends every stream (graceful stop: an open stream would hold the HTTP server's close). */
  close(): void {
    clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private send(res: ServerResponse, text: string): void {
    if (res.writableLength + text.length > this.limits.maxBufferedBytes) {
      this.clients.delete(res);
      this.counters.dropped();
      res.destroy();
      return;
    }
    res.write(text);
  }
}
