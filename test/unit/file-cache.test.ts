// Hot files are read from disk once: concurrent transfers of one file share one
// buffer; a replaced file (new inode/mtime) is read afresh; big files stream.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FileCache } from '../../server/boot/files/file-cache.js';

describe('file cache', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-cache-'));

  it('shares one read among concurrent opens and re-reads a replaced file', async () => {
    const file = path.join(dir, 'kernel');
    const first = randomBytes(300_000);
    writeFileSync(file, first);
    const cache = new FileCache();
    const opened = await Promise.all(Array.from({ length: 50 }, () => cache.open(file)));
    const views = opened.map((s) => s.read(0, 16) as Buffer);
    expect(new Set(views.map((v) => v.buffer)).size).toBe(1);
    // Buffer.equals, not toEqual: toEqual walks 300 kB byte by byte for seconds.
    expect(Buffer.concat([opened[7]?.read(0, 150_000) as Buffer, opened[7]?.read(150_000, 150_000) as Buffer]).equals(first)).toBe(true);
    for (const s of opened) s.release();

    const second = randomBytes(300_000);
    writeFileSync(`${file}.new`, second);
    renameSync(`${file}.new`, file);
    const again = await cache.open(file);
    expect((again.read(0, 300_000) as Buffer).equals(second)).toBe(true);
    expect((again.read(0, 16) as Buffer).buffer).not.toBe(views[0]?.buffer);
    again.release();
  });

  it('reads files above the cache limit block by block', async () => {
    const file = path.join(dir, 'big');
    const data = randomBytes(70_000);
    writeFileSync(file, data);
    const cache = new FileCache(64 * 1024);
    const source = await cache.open(file);
    expect(source.size).toBe(70_000);
    expect(await source.read(65_000, 5_000)).toEqual(data.subarray(65_000));
    source.release();
  });
});
