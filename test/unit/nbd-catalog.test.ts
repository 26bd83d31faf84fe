// ImageExportCatalog against a real file: an image truncated under a connected
// client fails the read (the session answers EIO), never serves zero-filled or
// stale bytes in place of what is gone.
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
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

  // <images>/pi: versions v1 and v2 (arm64, amd64), `current` -> v2; a staging
  // directory, a version directory without an image, a stray file; outside the
  // images directory, a squashfs a symlink points at.
  const images = path.join(dir, 'tree', 'images');
  const outside = path.join(dir, 'tree', 'outside.squashfs');
  const squashfs = (rel: string, content: string) => {
    mkdirSync(path.join(images, rel), { recursive: true });
    writeFileSync(path.join(images, rel, 'root.squashfs'), content);
  };
  squashfs('pi/v1/arm64', 'pi v1 arm64');
  squashfs('pi/v2/arm64', 'pi v2 arm64 image');
  squashfs('pi/v2/amd64', 'pi v2 amd64');
  squashfs('pi/.v3.tmp-1/arm64', 'staging');
  mkdirSync(path.join(images, 'pi/v2/riscv64'), { recursive: true });
  symlinkSync('v2', path.join(images, 'pi/current'));
  writeFileSync(path.join(images, 'README'), 'not an image');
  writeFileSync(outside, 'outside the images directory');
  mkdirSync(path.join(images, 'escape/current/arm64'), { recursive: true });
  symlinkSync(outside, path.join(images, 'escape/current/arm64/root.squashfs'));
  const staticFile = path.join(dir, 'tree', 'static.img');
  writeFileSync(staticFile, 'static export');
  const catalog = new ImageExportCatalog(images, [
    { name: 'static', file: staticFile },
    { name: 'gone', file: path.join(dir, 'tree', 'missing.img') },
  ]);

  async function readAll(name: string): Promise<{ text: string; version: unknown; source: string } | undefined> {
    const exp = await catalog.open(name);
    if (!exp) return undefined;
    const text = (await exp.read(0, Number(exp.size))).toString();
    exp.close();
    exp.close();
    return { text, version: exp.version, source: path.relative(path.join(dir, 'tree'), exp.source) };
  }

  it('lists the static exports and every published version with a root.squashfs, `current` as <image>/<arch>, sorted', async () => {
    expect(await catalog.names()).toEqual([
      'escape/arm64',
      'gone',
      'pi/amd64',
      'pi/arm64',
      'pi/v1/arm64',
      'pi/v2/amd64',
      'pi/v2/arm64',
      'static',
    ]);
    expect(await new ImageExportCatalog(path.join(dir, 'no-such-dir'), [{ name: 'static', file: staticFile }]).names()).toEqual(['static']);
  });

  it('opens <image>/<arch> as the version `current` points at now, and names that version', async () => {
    expect(await readAll('pi/arm64')).toEqual({
      text: 'pi v2 arm64 image',
      version: { image: 'pi', version: 'v2' },
      source: 'images/pi/v2/arm64/root.squashfs',
    });
    expect(await readAll('pi/v1/arm64')).toEqual({
      text: 'pi v1 arm64',
      version: { image: 'pi', version: 'v1' },
      source: 'images/pi/v1/arm64/root.squashfs',
    });
  });

  it('opens a static export by its real path, with no image version', async () => {
    expect(await readAll('static')).toEqual({ text: 'static export', version: undefined, source: 'static.img' });
  });

  for (const name of [
    'gone',
    'pi/riscv64',
    'pi/v9/arm64',
    'nothing/arm64',
    'escape/arm64',
    'pi/../pi/v1/arm64',
    '../images/pi/arm64',
    'pi/v1/arm64/',
    '/pi/arm64',
    'pi/ARM64',
    'x pi/arm64',
    'pi',
    '',
  ]) {
    it(`opens no export for ${JSON.stringify(name)}`, async () => {
      expect(await catalog.open(name)).toBeUndefined();
    });
  }

  it('opens names longer than two characters per part, and a closed export reads no more', async () => {
    const tree = path.join(dir, 'long');
    mkdirSync(path.join(tree, 'debian12/2024.06.01/amd64'), { recursive: true });
    writeFileSync(path.join(tree, 'debian12/2024.06.01/amd64/root.squashfs'), 'debian');
    const exp = await new ImageExportCatalog(tree, []).open('debian12/2024.06.01/amd64');
    if (!exp) throw new Error('the export did not open');
    expect(exp.version).toEqual({ image: 'debian12', version: '2024.06.01' });
    exp.close();
    await expect(exp.read(0, 6)).rejects.toThrow(/closed|EBADF/);
  });

  it('serves a read of a pooled size (>= 64 KiB) into a buffer handed back before, with the new bytes', async () => {
    const file = path.join(dir, 'pooled.img');
    const bytes = randomBytes(256 * 1024);
    writeFileSync(file, bytes);
    const exp = await new ImageExportCatalog(images, [{ name: 'p', file }]).open('p');
    if (!exp) throw new Error('the export did not open');
    const big = await exp.read(0, 96 * 1024);
    exp.recycle(big);
    const again = await exp.read(96 * 1024, 96 * 1024);
    expect(again === big).toBe(true);
    expect(again.equals(bytes.subarray(96 * 1024, 192 * 1024))).toBe(true);
    exp.close();
  });
});
