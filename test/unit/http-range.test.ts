// Ranged replies, byte for byte: firmware, iPXE and GRUB read kernels in ranges,
// and a Content-Range or a body one byte off corrupts a boot. The parser is
// checked on its own, then curl reads ranges from a real HttpBootServer on
// loopback, over both ways a file is sent (streamed from disk, and from a
// FileSource such as a rendered template).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseRange } from '../../server/http/range.js';
import { HttpBootServer } from '../../server/http/server.js';
import { ResolverChain, type FileResolver } from '../../server/boot/files/resolver.js';
import { FileCache } from '../../server/boot/files/file-cache.js';
import { Metrics } from '../../server/metrics.js';
import { run } from '../../server/lab/proc.js';

const LIMITS = {
  maxConnections: 64,
  maxConnectionsPerClient: 16,
  headersTimeoutSeconds: 10,
  requestTimeoutSeconds: 30,
  keepAliveTimeoutSeconds: 5,
  idleTimeoutSeconds: 60,
};

describe('parseRange', () => {
  const size = 1000;
  it.each([
    ['bytes=0-0', { kind: 'partial', start: 0, end: 0 }],
    ['bytes=999-999', { kind: 'partial', start: 999, end: 999 }],
    ['bytes=0-999', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=10-', { kind: 'partial', start: 10, end: 999 }],
    ['bytes=-1', { kind: 'partial', start: 999, end: 999 }],
    ['bytes=-300', { kind: 'partial', start: 700, end: 999 }],
    ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=500-5000', { kind: 'partial', start: 500, end: 999 }],
    ['bytes=1000-', { kind: 'unsatisfiable' }],
    ['bytes=1000-1001', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=5-4', { kind: 'unsatisfiable' }],
    ['bytes=0-1,5-6', { kind: 'full' }],
    ['items=0-1', { kind: 'full' }],
    ['bytes=-', { kind: 'full' }],
    // The unit must open the header: another unit ending in "bytes=" is not ours to read.
    ['xbytes=0-1', { kind: 'full' }],
    // Whitespace around the value (RFC 9110 §5.5 OWS) does not make it another range.
    [' bytes=2-3 ', { kind: 'partial', start: 2, end: 3 }],
  ])('%s of 1000 bytes', (header, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it('no header, and any range of an empty file', () => {
    expect(parseRange(undefined, size)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-1', 0)).toEqual({ kind: 'unsatisfiable' });
  });
});

describe('ranged replies over HTTP, checked with curl', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-range-'));
  const onDisk = randomBytes(300_001);
  const inMemory = randomBytes(70_003);
  const diskFile = path.join(work, 'vmlinuz');
  writeFileSync(diskFile, onDisk);
  const resolver: FileResolver = {
    name: 'test',
    resolve: async (request) => {
      if (request.path === 'disk/vmlinuz')
        return { found: true, from: 'test', size: onDisk.length, realPath: diskFile, open: async () => FileCache.fromBuffer(onDisk) };
      if (request.path === 'memory/boot.ipxe')
        return { found: true, from: 'test', size: inMemory.length, open: async () => FileCache.fromBuffer(inMemory) };
      return undefined;
    },
  };
  const server = new HttpBootServer(
    { port: 0, host: '127.0.0.1', limits: LIMITS },
    new ResolverChain([resolver]),
    pino({ level: 'silent' }),
    new Metrics(),
  );
  beforeAll(async () => {
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
  });

  let fetches = 0;
  async function ranged(file: string, range: string): Promise<{ status: string; headers: string; body: Buffer }> {
    const n = fetches++;
    const body = path.join(work, `body-${n}`);
    const headers = path.join(work, `headers-${n}`);
    const r = await run('curl', [
      '-sS',
      '--range',
      range,
      '-D',
      headers,
      '-o',
      body,
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${server.port}/${file}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    return { status: r.stdout, headers: readFileSync(headers, 'latin1'), body: readFileSync(body) };
  }
  const header = (headers: string, name: string) => new RegExp(`^${name}: (.*?)\\r?$`, 'im').exec(headers)?.[1];

  for (const [file, data] of [
    ['disk/vmlinuz', onDisk],
    ['memory/boot.ipxe', inMemory],
  ] as const) {
    const size = data.length;
    it.each([
      ['first byte', '0-0', 0, 0],
      ['last byte', `${size - 1}-${size - 1}`, size - 1, size - 1],
      ['an inner range', '1000-59999', 1000, 59999],
      ['a suffix range', '-4097', size - 4097, size - 1],
      ['an open-ended range', '65536-', 65536, size - 1],
      ['a range past the end, clamped', `${size - 10}-${size + 5000}`, size - 10, size - 1],
    ])(`${file}: %s`, async (_what, range, first, last) => {
      const reply = await ranged(file, range);
      expect(reply.status).toBe('206');
      expect(header(reply.headers, 'content-range')).toBe(`bytes ${first}-${last}/${size}`);
      expect(header(reply.headers, 'content-length')).toBe(String(last - first + 1));
      expect(reply.body.equals(data.subarray(first, last + 1))).toBe(true);
    });

    it(`${file}: a range starting past the end is 416 with the size`, async () => {
      const reply = await ranged(file, `${size}-`);
      expect(reply.status).toBe('416');
      expect(header(reply.headers, 'content-range')).toBe(`bytes */${size}`);
      expect(reply.body.length).toBe(0);
    });
  }

  it('the whole file without a range', async () => {
    const body = path.join(work, 'whole');
    const r = await run('curl', ['-sS', '-f', '-o', body, `http://127.0.0.1:${server.port}/disk/vmlinuz`]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(body).equals(onDisk)).toBe(true);
  });
});
