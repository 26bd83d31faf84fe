// ImageExportCatalog against a real file: an image truncated under a connected
// client fails the read (the session answers EIO), never serves zero-filled or
// stale bytes in place of what is gone.
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ImageExportCatalog } from '../../server/nbd/catalog.js';

describe('NBD image catalog', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-nbd-catalog-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fails a read of an image truncated after it was opened, instead of returning a short or zero-filled buffer', async () => {
    const bytes = randomBytes(256 * 1024);
    const file = path.join(dir, 'disk.img');
    writeFileSync(file, bytes);
    const catalog = new ImageExportCatalog(path.join(dir, 'images'), [{ name: 'disk', file }]);
    const exp = await catalog.open('disk');
    if (!exp) throw new Error('the export did not open');
    expect(exp.size).toBe(BigInt(bytes.length));
    // Pooled buffers (>= 64 KiB) come back for reuse: the second read below must not see the first one's bytes either.
    const whole = await exp.read(0, 128 * 1024);
    expect(whole.equals(bytes.subarray(0, 128 * 1024))).toBe(true);
    exp.recycle(whole);
    truncateSync(file, 100 * 1024);
    await expect(exp.read(0, 128 * 1024)).rejects.toThrow(/ended early at 102400/);
    await expect(exp.read(200 * 1024, 4096)).rejects.toThrow(/ended early at 204800/);
    // What is still there is still served.
    expect((await exp.read(4096, 4096)).equals(bytes.subarray(4096, 8192))).toBe(true);
    exp.close();
  }, 10_000);
});
