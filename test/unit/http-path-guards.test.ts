// The two path-traversal guards of TFTP and HTTP boot files, each on its own:
// the request-path normalisation (server/boot/files/request-path.ts) refuses
// '..', '.', control characters and NUL before any file is looked up; the
// resolvers' realpath containment (server/boot/files/static-root.ts,
// images.ts) refuses what only the file system reveals (a symlink leaving the
// root) and, as a second line, anything the first guard let through. Each test
// here calls one guard directly, so removing either one fails a test even
// while the other holds.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { normalizeRequestPath } from '../../server/boot/files/request-path.js';
import { StaticRootResolver } from '../../server/boot/files/static-root.js';
import { ImageFileResolver } from '../../server/boot/files/images.js';
import { FileCache } from '../../server/boot/files/file-cache.js';
import type { FileAnswer } from '../../server/boot/files/resolver.js';
import type { ResolvedConfig } from '../../server/config/types.js';

describe('request-path normalisation (the first guard)', () => {
  it.each([
    ['../etc/passwd', "'.' or '..' in path"],
    ['images/base/amd64/../../../../etc/passwd', "'.' or '..' in path"],
    ['..\\..\\etc\\passwd', "'.' or '..' in path"],
    ['/../etc/passwd', "'.' or '..' in path"],
    ['images/./base', "'.' or '..' in path"],
    ['..', "'.' or '..' in path"],
    ['vmlinuz\u0000.png', 'control character in path'],
    ['a\nb', 'control character in path'],
    ['a\u007fb', 'control character in path'],
    ['', 'empty path'],
    ['///', 'empty path'],
  ])('refuses %j', (raw, reason) => {
    expect(normalizeRequestPath(raw)).toEqual({ ok: false, reason });
  });

  it.each([
    ['/etc/passwd', 'etc/passwd'],
    ['//images//base/amd64/vmlinuz', 'images/base/amd64/vmlinuz'],
    ['\\pxelinux.cfg\\default', 'pxelinux.cfg/default'],
    // TFTP carries no URL encoding: '%2e%2e' is a file name, not '..' (HTTP decodes before this guard).
    ['%2e%2e/etc/passwd', '%2e%2e/etc/passwd'],
    ['..foo/bar..', '..foo/bar..'],
  ])('makes %j relative: %j', (raw, normalized) => {
    expect(normalizeRequestPath(raw)).toEqual({ ok: true, path: normalized });
  });
});

describe('realpath containment in the resolvers (the second guard)', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-guards-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const outside = path.join(work, 'outside');
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret'), 'secret');
  const root = path.join(work, 'tftpboot');
  mkdirSync(root);
  writeFileSync(path.join(root, 'undionly.kpxe'), 'ipxe');
  symlinkSync(path.join(outside, 'secret'), path.join(root, 'escape'));
  symlinkSync(outside, path.join(root, 'outdir'));
  symlinkSync('undionly.kpxe', path.join(root, 'alias.kpxe'));
  const cache = new FileCache();
  const staticRoot = new StaticRootResolver(root, cache);
  const ask = (resolver: { resolve: StaticRootResolver['resolve'] }, p: string) =>
    resolver.resolve({ path: p, clientAddress: '10.9.0.2', protocol: 'tftp' });
  const served = (answer: FileAnswer | undefined) => answer?.found === true;

  it('static root: a symlink to a file outside the root is refused', async () => {
    expect(await ask(staticRoot, 'escape')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
    expect(await ask(staticRoot, 'outdir/secret')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
  });

  it('static root: a path the first guard would refuse is still kept inside', async () => {
    expect(await ask(staticRoot, '../outside/secret')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
    expect(await ask(staticRoot, '..')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
    // An absolute path joins under the root: nothing of /etc is reachable.
    expect(served(await ask(staticRoot, path.join(outside, 'secret')))).toBe(false);
    expect(served(await ask(staticRoot, 'undionly.kpxe\u0000'))).toBe(false);
  });

  it('static root: files and links inside the root are served', async () => {
    expect(await ask(staticRoot, 'undionly.kpxe')).toMatchObject({ found: true, size: 4 });
    expect(await ask(staticRoot, 'alias.kpxe')).toMatchObject({ found: true, realPath: path.join(root, 'undionly.kpxe') });
  });

  // images/<name>/<arch>/<file> -> <images>/<name>/current/<arch>/<file>
  const images = path.join(work, 'images');
  mkdirSync(path.join(images, 'base/v1/amd64'), { recursive: true });
  symlinkSync('v1', path.join(images, 'base/current'));
  writeFileSync(path.join(images, 'base/v1/amd64/vmlinuz'), 'kernel');
  symlinkSync(path.join(outside, 'secret'), path.join(images, 'base/v1/amd64/initrd.img'));
  // What images/../x/vmlinuz would reach if nothing kept it in: <work>/current/x/vmlinuz.
  mkdirSync(path.join(work, 'current/x'), { recursive: true });
  writeFileSync(path.join(work, 'current/x/vmlinuz'), 'not an image');
  const config = { images: { dir: images, default: 'base' } } as ResolvedConfig;
  const noNodes = { byMac: () => undefined, byPiSerial: () => undefined, byAddress: () => undefined };
  const imageFiles = new ImageFileResolver(config, cache, noNodes, () => undefined);

  it('images: a symlink inside an image pointing outside the images directory is refused', async () => {
    expect(await ask(imageFiles, 'images/base/amd64/initrd.img')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
  });

  it('images: a path the first guard would refuse is still kept inside', async () => {
    expect(await ask(imageFiles, 'images/../x/vmlinuz')).toMatchObject({ found: false, denied: true, refusal: 'outside-root' });
    expect(served(await ask(imageFiles, 'images/base/amd64/vmlinuz\u0000'))).toBe(false);
  });

  it('images: the kernel of a published image is served', async () => {
    expect(await ask(imageFiles, 'images/base/amd64/vmlinuz')).toMatchObject({ found: true, size: 6 });
  });
});
