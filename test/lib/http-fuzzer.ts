// Sends fuzzed HTTP requests at a running server from inside a test namespace:
// WORKERS connections at a time, each carrying a pipelined batch of requests
// drawn from a grammar of what a hostile client sends (traversal and encoded
// paths, NUL, long paths, broken Range headers, junk bodies), the last of a
// batch with "Connection: close" or, in a third of batches, bytes that must
// make the server close (junk, broken request lines, conflicting lengths, bad
// chunked bodies, oversized headers). Deterministic for a SEED. Prints
// {"sent","answered","connections","statuses":{code:count},"closedEarly"} at the end.
// Usage: node --import tsx test/lib/http-fuzzer.ts HOST PORT REQUESTS SEED WORKERS
import net from 'node:net';
import { mulberry32 } from './dhcp-fuzz-corpus.js';

const [host = '127.0.0.1', portText = '8080', countText = '100000', seedText = '1', workersText = '16'] = process.argv.slice(2);
const port = Number(portText);
const total = Number(countText);

const random = mulberry32(Number(seedText));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const int = (max: number) => Math.floor(random() * max);
const junk = (length: number) => Buffer.from(Array.from({ length }, () => int(256)));

const PATHS = [
  '/images/base/amd64/vmlinuz',
  '/images/base/amd64/initrd.img',
  '/images/base/amd64/root.squashfs',
  '/images/base/amd64/manifest.json',
  '/images/base/current/amd64/root.squashfs',
  '/images/base',
  '/images/../../etc/passwd',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/images/..%2f..%2fetc/passwd',
  '/images/base/amd64/vmlinuz%00.png',
  '/%00',
  '/..%5c..%5cetc%5cpasswd',
  '/\\..\\..\\etc\\passwd',
  '//etc/passwd',
  '/./healthz',
  '/healthz',
  '/metrics',
  '/openapi.json',
  '/boot/52-54-00-00-00-01.ipxe',
  '/boot/zz-zz.ipxe',
  '/grub/grub.cfg',
  '/grub/grub.cfg-01-52-54-00-00-00-01',
  '/pxelinux.cfg/01-52-54-00-00-00-01',
  '/1234abcd/start4.elf',
  '/config.txt',
  '/api/v1/nodes',
  '/api/v1/nodes/52:54:00:00:00:01',
  '/agent/v1/config',
  '/agent/v1/join',
  '/agent/v1/report',
  '/images/base/amd64/vmlinuz?x=1#frag',
];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
/** Request lines a server must refuse by closing the connection (sent last in a batch, since nothing after them is read). */
const BROKEN_METHODS = ['TRACE', 'CONNECT', 'BREW', 'G\u00e9T', '', 'GET GET'];
const RANGES = [
  'bytes=0-0',
  'bytes=-1',
  'bytes=0-',
  'bytes=5-4',
  'bytes=99999999999999999999-',
  'bytes=-99999999999999999999',
  'bytes=abc',
  'bytes=0-1,2-3',
  'bytes=-0',
  'bytes= 1-2',
  'items=0-1',
  'bytes=1-2-3',
  '',
  'bytes=-',
  'bytes=18446744073709551616-18446744073709551617',
];

function path(): string {
  const r = random();
  if (r < 0.8) return pick(PATHS);
  if (r < 0.9) return `/${'a/'.repeat(int(4000))}x`;
  return `/${encodeURIComponent(junk(int(64)).toString('latin1'))}`;
}

/** Paths that cannot be parsed or decoded: the server answers 400 and closes. */
function brokenPath(): string {
  return random() < 0.5
    ? pick(['/%ff%fe', '/%', '/%zz', '/a%2'])
    : `/${junk(1 + int(32))
        .toString('latin1')
        .replace(/[\r\n ]/g, '_')}`;
}

/** A request the server must parse and answer, however hostile its path and headers. */
function hostileRequest(last: boolean): Buffer {
  const headers: string[] = ['Host: bootfarm'];
  if (random() < 0.4) headers.push(`Range: ${pick(RANGES)}`);
  if (random() < 0.1) headers.push(`Authorization: Bearer ${junk(int(40)).toString('base64')}`);
  if (random() < 0.03) headers.push(...Array.from({ length: 50 + int(50) }, (_, i) => `X-H${i}: ${i}`));
  let body = Buffer.alloc(0);
  if (random() < 0.08) {
    body = Buffer.from(random() < 0.5 ? '{"mac":"52:54:00:00:00:09","hostname":"x"}' : junk(int(300)).toString('latin1'), 'latin1');
    headers.push(random() < 0.5 ? 'Content-Type: application/json' : 'Content-Type: text/plain', `Content-Length: ${body.length}`);
  }
  if (last) headers.push('Connection: close');
  return Buffer.concat([Buffer.from(`${pick(METHODS)} ${path()} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** Bytes after which the server must close the connection: junk, a broken request line or framing, oversized headers. */
function breakingRequest(): Buffer {
  const line = (method: string, version = 'HTTP/1.1') => `${method} ${path()} ${version}\r\nHost: bootfarm\r\n`;
  switch (int(9)) {
    case 0:
      return junk(1 + int(512));
    case 1:
      return Buffer.from(`${line(pick(BROKEN_METHODS))}\r\n`, 'latin1');
    case 2:
      return Buffer.from(`${line('GET', pick(['HTTP/2.0', 'HTTP/9.9', 'HTTP/1', 'FOO']))}\r\n`, 'latin1');
    case 3:
      return Buffer.from(`${line('POST')}Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello`, 'latin1');
    case 4:
      return Buffer.from(`${line('POST')}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc`, 'latin1');
    case 5:
      return Buffer.from(`${line('POST')}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, 'latin1');
    case 6:
      return Buffer.from(`${line('GET')}X-Big: ${'b'.repeat(20_000 + int(20_000))}\r\n\r\n`, 'latin1');
    case 7:
      return Buffer.from(`GET /${'\u0000'.repeat(1 + int(8))} HTTP/1.1\r\nHost: bootfarm\r\n\r\n`, 'latin1');
    default:
      return Buffer.from(`GET ${brokenPath()} HTTP/1.1\r\nHost: bootfarm\r\n\r\n`, 'latin1');
  }
}

/** A batch's requests: hostile but well-formed, and in a third of batches a breaking one at the end. */
function batchBytes(size: number): Buffer {
  const breaks = random() < 0.33;
  const parts: Buffer[] = [];
  for (let i = 0; i < size; i++) parts.push(breaks && i === size - 1 ? breakingRequest() : hostileRequest(i === size - 1));
  return Buffer.concat(parts);
}

const statuses: Record<string, number> = {};
let sent = 0;
let connections = 0;
let closedEarly = 0;

/** One connection: a batch of requests, then wait for the server to close (or give up after 5 s). */
function batch(): Promise<void> {
  return new Promise((resolve) => {
    const size = Math.min(1 + int(20), total - sent);
    sent += size;
    connections++;
    const socket = net.connect(port, host);
    let tail = '';
    const done = setTimeout(() => {
      closedEarly++;
      socket.destroy();
    }, 5000);
    socket.on('data', (chunk: Buffer) => {
      // Status lines only; bodies are skipped over by the same scan.
      const text = tail + chunk.toString('latin1');
      for (const m of text.matchAll(/HTTP\/1\.1 (\d{3}) /g)) statuses[m[1] as string] = (statuses[m[1] as string] ?? 0) + 1;
      tail = text.slice(-16);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(done);
      resolve();
    });
    socket.on('connect', () => {
      socket.write(batchBytes(size), () => undefined);
    });
  });
}

async function worker(): Promise<void> {
  while (sent < total) await batch();
}

await Promise.all(Array.from({ length: Number(workersText) }, () => worker()));
const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
process.stdout.write(`${JSON.stringify({ event: 'done', sent, answered, connections, statuses, closedEarly })}\n`);
process.exit(0);
