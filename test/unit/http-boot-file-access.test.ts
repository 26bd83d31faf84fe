// Which files of a published image TFTP and HTTP hand out, and to whom
// (server/boot/files/image-access.ts): boot files to anyone, the root image to
// addresses the NBD policy admits, nothing else. Checked on the classifier and
// on the two resolvers that read the images directory.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { imageFileKind } from '../../server/boot/files/image-access.js';
import { ImageFileResolver } from '../../server/boot/files/images.js';
import { StaticRootResolver } from '../../server/boot/files/static-root.js';
import { FileCache } from '../../server/boot/files/file-cache.js';
import { ResolverChain } from '../../server/boot/files/resolver.js';
import { Metrics } from '../../server/metrics.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';
import type { RootAccessPolicy } from '../../server/boot/root-access.js';

describe('imageFileKind', () => {
  it.each([
    // What imagebuild/squash/make-export.sh publishes and templates/ reference.
    ['vmlinuz', 'boot'],
    ['vmlinuz-6.1.0-28-amd64', 'boot'],
    ['initrd.img', 'boot'],
    ['initrd.img-6.1.0-28-amd64', 'boot'],
    ['bcm2711-rpi-4-b.dtb', 'boot'],
    ['dtbs/broadcom/bcm2712-rpi-5-b.dtb', 'boot'],
    ['rpi/start4.elf', 'boot'],
    ['rpi/fixup4.dat', 'boot'],
    ['rpi/bootcode.bin', 'boot'],
    ['rpi/start.elf', 'boot'],
    ['rpi/bcm2711-rpi-4-b.dtb', 'boot'],
    ['rpi/bcm2712-rpi-5-b.dtb', 'boot'],
    ['rpi/overlays/vc4-kms-v3d.dtbo', 'boot'],
    ['rpi/overlays/overlay_map.dtb', 'boot'],
    ['rpi/kernel8.img', 'boot'],
    ['rpi/kernel7l.img', 'boot'],
    ['rpi/kernel_2712.img', 'boot'],
    ['rpi/initrd.img', 'boot'],
    ['rpi/recover4.elf', 'boot'],
    ['rpi/pieeprom.sig', 'boot'],
    ['rpi/armstub8-2712.bin', 'boot'],
    ['root.squashfs', 'root'],
    ['manifest.json', 'other'],
    ['rpi/manifest.json', 'other'],
    ['rpi/root.squashfs', 'other'],
    ['rpi/LICENCE.broadcom', 'other'],
    ['rpi/config.txt', 'other'],
    ['oci/index.json', 'other'],
    ['secret.key', 'other'],
    ['amd64/vmlinuz', 'other'],
    ['sub/root.squashfs', 'other'],
    ['../vmlinuz', 'other'],
    ['rpi/../root.squashfs', 'other'],
    ['rpi/overlays/../../root.squashfs', 'other'],
  ])('%s is %s', (rest, kind) => {
    expect(imageFileKind(rest)).toBe(kind);
  });
});

describe('image files over TFTP and HTTP', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-access-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const images = path.join(work, 'images');
  const arch = path.join(images, 'base/v1/amd64');
  mkdirSync(path.join(images, 'base/v1/arm64/rpi'), { recursive: true });
  mkdirSync(arch, { recursive: true });
  symlinkSync('v1', path.join(images, 'base/current'));
  for (const f of ['vmlinuz', 'initrd.img', 'root.squashfs', 'manifest.json']) writeFileSync(path.join(arch, f), f);
  writeFileSync(path.join(images, 'base/v1/arm64/rpi/start4.elf'), 'firmware');
  writeFileSync(path.join(images, 'base/v1/arm64/rpi/manifest.json'), '{}');
  // A kernel name that is really the root image: the target decides.
  symlinkSync('root.squashfs', path.join(arch, 'vmlinuz-root'));
  // tftp.root holding the images directory (work/images) and links into it.
  const tftpRoot = work;
  writeFileSync(path.join(tftpRoot, 'undionly.kpxe'), 'ipxe');
  symlinkSync(path.join(arch, 'root.squashfs'), path.join(tftpRoot, 'root.img'));
  symlinkSync(path.join(arch, 'vmlinuz'), path.join(tftpRoot, 'vmlinuz'));
  symlinkSync(path.join(arch, 'manifest.json'), path.join(tftpRoot, 'manifest.json'));

  const ADMITTED = '10.9.0.2';
  const rootAccess: RootAccessPolicy = (address) =>
    address === ADMITTED ? undefined : `${address} holds no lease and is no node's address (nbd.allow: leased)`;
  const pi = { mac: 'dc:a6:32:01:02:03', piSerial: '1234abcd', image: 'base', arch: 'arm64' } as EffectiveNode;
  const nodes = {
    byMac: () => undefined,
    byPiSerial: (s: string) => (s === pi.piSerial ? pi : undefined),
    byAddress: (a: string) => (a === '10.9.0.50' ? pi : undefined),
  };
  const config = { images: { dir: images, default: 'base' } } as ResolvedConfig;
  const cache = new FileCache();
  const metrics = new Metrics();
  const chain = new ResolverChain(
    [new ImageFileResolver(config, cache, nodes, rootAccess), new StaticRootResolver(tftpRoot, cache, { dir: images, rootAccess })],
    metrics,
  );
  const ask = (p: string, clientAddress: string, protocol: 'tftp' | 'http' = 'http') => chain.resolve({ path: p, clientAddress, protocol });

  it('the kernel and initrd go to anyone', async () => {
    expect(await ask('images/base/amd64/vmlinuz', '10.9.0.77')).toMatchObject({ found: true, size: 7 });
    expect(await ask('images/base/amd64/initrd.img', '10.9.0.77', 'tftp')).toMatchObject({ found: true, size: 10 });
  });

  it('the root image goes to an admitted address only, and the refusal says why', async () => {
    expect(await ask('images/base/amd64/root.squashfs', ADMITTED)).toMatchObject({ found: true, size: 13 });
    const refused = await ask('images/base/amd64/root.squashfs', '10.9.0.77', 'tftp');
    expect(refused).toMatchObject({ found: false, denied: true, refusal: 'root-not-admitted' });
    expect(refused.found ? '' : refused.detail).toContain('10.9.0.77 holds no lease');
  });

  it('a kernel name linked to the root image is a root image', async () => {
    expect(await ask('images/base/amd64/vmlinuz-root', '10.9.0.77')).toMatchObject({
      found: false,
      denied: true,
      refusal: 'root-not-admitted',
    });
    expect(await ask('images/base/amd64/vmlinuz-root', ADMITTED)).toMatchObject({ found: true });
  });

  it('any other file of an image is refused, to admitted addresses too', async () => {
    for (const p of [
      'images/base/amd64/manifest.json',
      'images/base/arm64/rpi/manifest.json',
      'images/base/v1/amd64/manifest.json',
      'images/base/v1/amd64/oci/index.json',
      'images/base/amd64',
      'images/base',
    ]) {
      expect(await ask(p, ADMITTED), p).toMatchObject({ found: false, denied: true, refusal: 'not-boot-file' });
    }
  });

  it('tftp.root cannot be used to reach the root image or other image files', async () => {
    expect(await ask('root.img', '10.9.0.77', 'tftp')).toMatchObject({ found: false, denied: true, refusal: 'root-not-admitted' });
    expect(await ask('root.img', ADMITTED, 'tftp')).toMatchObject({ found: true });
    expect(await ask('manifest.json', ADMITTED, 'tftp')).toMatchObject({ found: false, denied: true, refusal: 'not-boot-file' });
    expect(await ask('vmlinuz', '10.9.0.77', 'tftp')).toMatchObject({ found: true });
    expect(await ask('undionly.kpxe', '10.9.0.77', 'tftp')).toMatchObject({ found: true });
    // The images directory under its own name inside tftp.root is answered by the image rules too.
    expect(await ask('images/base/v1/amd64/root.squashfs', '10.9.0.77', 'tftp')).toMatchObject({
      found: false,
      denied: true,
      refusal: 'root-not-admitted',
    });
    const staticOnly = new StaticRootResolver(tftpRoot, cache, { dir: images, rootAccess });
    expect(
      await staticOnly.resolve({ path: 'images/base/v1/amd64/root.squashfs', clientAddress: '10.9.0.77', protocol: 'tftp' }),
    ).toMatchObject({ found: false, denied: true, refusal: 'root-not-admitted' });
    expect(
      await staticOnly.resolve({ path: 'images/base/current/amd64/manifest.json', clientAddress: ADMITTED, protocol: 'tftp' }),
    ).toMatchObject({ found: false, denied: true, refusal: 'not-boot-file' });
    expect(
      await staticOnly.resolve({ path: 'images/base/current/amd64/vmlinuz', clientAddress: '10.9.0.77', protocol: 'tftp' }),
    ).toMatchObject({ found: true });
  });

  it("a named version's kernel and initrd go to anyone, as the boot scripts name them; its root only where NBD admits", async () => {
    // Boot scripts pin kernel, initrd and root to the version `current` named when the boot was planned
    // (server/boot/node-context.ts): the version's files stay reachable after `current` moves on.
    const v2 = path.join(images, 'base/v2/amd64');
    mkdirSync(v2, { recursive: true });
    writeFileSync(path.join(v2, 'vmlinuz'), 'kernel-2');
    expect(await ask('images/base/v1/amd64/vmlinuz', '10.9.0.77')).toMatchObject({ found: true, size: 7, from: 'image:base/v1/amd64' });
    expect(await ask('images/base/v2/amd64/vmlinuz', '10.9.0.77', 'tftp')).toMatchObject({ found: true, size: 8 });
    expect(await ask('images/base/current/amd64/initrd.img', '10.9.0.77')).toMatchObject({ found: true, size: 10 });
    expect(await ask('images/base/v1/amd64/root.squashfs', ADMITTED)).toMatchObject({ found: true, size: 13 });
    expect(await ask('images/base/v1/amd64/root.squashfs', '10.9.0.77')).toMatchObject({
      found: false,
      denied: true,
      refusal: 'root-not-admitted',
    });
    expect(await ask('images/base/v3/amd64/vmlinuz', '10.9.0.77')).toMatchObject({ found: false, denied: false });
    // A version's name must look like one: no way out of the image's directory through it.
    expect(await ask('images/base/..%2f/amd64/vmlinuz', '10.9.0.77')).toMatchObject({ found: false });
    expect(await ask('images/base/.hidden/amd64/vmlinuz', '10.9.0.77')).toMatchObject({
      found: false,
      denied: true,
      refusal: 'not-boot-file',
    });
  });

  it('a Pi gets its firmware; other names are not looked up in its image', async () => {
    expect(await ask('1234abcd/start4.elf', '10.9.0.50', 'tftp')).toMatchObject({ found: true, from: 'image:base/arm64/rpi' });
    expect(await ask('start4.elf', '10.9.0.50', 'tftp')).toMatchObject({ found: true });
    expect(await ask('1234abcd/manifest.json', '10.9.0.50', 'tftp')).toEqual({ found: false, denied: false, detail: 'no such file' });
  });

  it('refusals are counted by protocol and reason', async () => {
    const text = await metrics.registry.getSingleMetricAsString('bootfarm_boot_files_refused_total');
    expect(text).toMatch(/protocol="tftp",reason="root-not-admitted"\} [1-9]/);
    expect(text).toMatch(/protocol="http",reason="not-boot-file"\} [1-9]/);
  });
});
