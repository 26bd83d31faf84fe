// The dashboard's event stream stays bounded whatever its readers do
// (server/http/sse.ts), and the feed publishes what the real store records
// (server/http/event-feed.ts). Real HTTP over loopback; no root.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SseHub, sseMessage } from '../../server/http/sse.js';
import { feedOf, type FeedItem } from '../../server/http/event-feed.js';
import { FileStore } from '../../server/store/store.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(hub: SseHub): Promise<string> {
  const server: Server = createServer((_req, res) => {
    if (!hub.admit()) {
      res.writeHead(503).end();
      return;
    }
    hub.add(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    hub.close();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return `http://127.0.0.1:${address.port}/`;
}

function connect(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, resolve).on('error', reject));
}

const counters = () => {
  const counted = { dropped: 0, refused: 0 };
  return { counted, counters: { dropped: () => counted.dropped++, refused: () => counted.refused++ } };
};

describe('event stream bounds', () => {
  it('refuses a stream past maxClients, and counts it', async () => {
    const { counted, counters: c } = counters();
    const hub = new SseHub({ maxClients: 2, maxBufferedBytes: 64 * 1024, heartbeatMs: 60_000 }, c);
    const url = await serve(hub);
    const first = await connect(url);
    const second = await connect(url);
    expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
    expect(first.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const third = await connect(url);
    expect(third.statusCode).toBe(503);
    expect(counted.refused).toBe(1);
    // A stream that ends frees its place.
    first.destroy();
    await once(first.socket, 'close');
    while (hub.size > 1) await new Promise((resolve) => setImmediate(resolve));
    expect((await connect(url)).statusCode).toBe(200);
    for (const res of [second, third]) res.destroy();
  });

  it('cuts a reader that stopped reading once its unsent bytes pass the cap; a reader that keeps up gets every message', async () => {
    const { counted, counters: c } = counters();
    const hub = new SseHub({ maxClients: 4, maxBufferedBytes: 256 * 1024, heartbeatMs: 60_000 }, c);
    const url = await serve(hub);
    const stalled = await connect(url);
    stalled.pause();
    const reader = await connect(url);
    let received = '';
    reader.setEncoding('utf8');
    reader.on('data', (chunk: string) => {
      received += chunk;
    });
    const payload = 'x'.repeat(16 * 1024);
    let sent = 0;
    // Bounded by bytes, not time: far past what the kernel's socket buffers hold for the stalled reader.
    while (counted.dropped === 0 && sent < 64 * 1024 * 1024) {
      hub.broadcast(sseMessage('node', { n: sent, payload }));
      sent += payload.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(counted.dropped).toBe(1);
    expect(hub.size).toBe(1);
    hub.broadcast(sseMessage('node', { last: true }));
    while (!received.includes('{"last":true}')) await once(reader, 'data');
    const messages = received.split('\n\n').filter((m) => m.startsWith('event: node'));
    expect(messages).toHaveLength(sent / payload.length + 1);
    stalled.destroy();
    reader.destroy();
  });
});

describe('event feed', () => {
  it('publishes what the store records, once, however many times it is asked for', async () => {
    const { store } = await FileStore.open(mkdtempSync(path.join(tmpdir(), 'bootfarm-feed-')), [], false);
    cleanups.push(() => store.close());
    const seen: FeedItem[] = [];
    const unsubscribe = feedOf(store).subscribe((item) => seen.push(item));
    expect(feedOf(store)).toBe(feedOf(store));
    const event = { at: '2026-01-01T00:00:00.000Z', mac: '52:54:00:00:00:01', type: 'dhcp.ack', detail: { ip: '10.9.0.11' } };
    store.recordEvent(event);
    const machine = {
      mac: '52:54:00:00:00:09',
      arch: 'amd64' as const,
      firmware: 'bios',
      piSerial: undefined,
      piModel: undefined,
      firstSeen: event.at,
      lastSeen: event.at,
    };
    store.putDiscovered(machine);
    expect(seen).toEqual([
      { kind: 'node', event },
      { kind: 'discovered', machine },
    ]);
    // Recorded as before: the tap only passes the event on.
    expect(store.events(event.mac)).toEqual([event]);
    expect(store.discoveredByMac(machine.mac)).toEqual(machine);
    unsubscribe();
    store.recordEvent({ ...event, type: 'dhcp.offer' });
    expect(seen).toHaveLength(2);
  });
});
