// Publishing: <images.dir>/<name>/<version>/<arch>/... (what server/boot/files/images.ts
// and server/nbd/catalog.ts read), an OCI image layout naming every arch of the
// version, then `current` switched atomically (a temp symlink renamed over it).
// Nothing is published unless every arch built: a failed build leaves `current` as it was.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SetupError } from '../errors.js';
import { ARCH_INFO, IMAGE_ARCHES, type ImageArch } from './arch.js';
import type { ExportManifest } from './extract.js';
import { IMAGE_DIR_NAME as NAME } from './names.js';

export interface BuiltArch {
  arch: ImageArch;
  /** Extracted export (root.squashfs, vmlinuz, ...), on the same filesystem as the images dir. */
  dir: string;
  manifest: ExportManifest;
  imageId: string;
}

export function checkImageName(name: string): string {
  if (!NAME.test(name) || name === 'current')
    throw new SetupError(`--name: "${name}" is not a usable image name (letters, digits, . _ -; not "current")`);
  return name;
}

/** A version named by what was built: the same build (all cache hits) gives the same version. */
export function contentVersion(built: BuiltArch[]): string {
  const h = createHash('sha256');
  for (const b of [...built].sort((x, y) => x.arch.localeCompare(y.arch))) h.update(`${b.arch}=${b.imageId}\n`);
  return h.digest('hex').slice(0, 12);
}

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.bootfarm.image.manifest.v1+json',
  artifact: 'application/vnd.bootfarm.netboot.v1',
};

function layerMedia(file: string): string {
  if (file.endsWith('.squashfs')) return 'application/vnd.bootfarm.rootfs.squashfs';
  if (file.endsWith('.json')) return 'application/json';
  return 'application/octet-stream';
}

/**
 * An OCI image layout in <version>/oci: one artifact manifest per arch (the
 * export's files as layers, manifest.json as config) and an index naming them
 * with their platforms. Blobs are hard links to the published files.
 */
async function writeOciLayout(versionDir: string, built: BuiltArch[]): Promise<void> {
  const oci = path.join(versionDir, 'oci');
  const blobs = path.join(oci, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const addBlob = async (source: string, sha: string): Promise<void> => {
    const target = path.join(blobs, sha);
    if (!existsSync(target)) await link(source, target);
  };
  const addJson = async (value: unknown): Promise<{ digest: string; size: number }> => {
    const buf = Buffer.from(JSON.stringify(value));
    const sha = createHash('sha256').update(buf).digest('hex');
    await writeFile(path.join(blobs, sha), buf);
    return { digest: `sha256:${sha}`, size: buf.length };
  };
  const manifests = [];
  for (const b of built) {
    const archDir = path.join(versionDir, b.arch);
    const configPath = path.join(archDir, 'manifest.json');
    const configBuf = await readFile(configPath);
    const configSha = createHash('sha256').update(configBuf).digest('hex');
    await addBlob(configPath, configSha);
    const layers = [];
    for (const f of b.manifest.files) {
      await addBlob(path.join(archDir, f.path), f.sha256);
      layers.push({
        mediaType: layerMedia(f.path),
        digest: `sha256:${f.sha256}`,
        size: f.size,
        annotations: { 'org.opencontainers.image.title': f.path },
      });
    }
    const desc = await addJson({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      artifactType: MEDIA.artifact,
      config: { mediaType: MEDIA.config, digest: `sha256:${configSha}`, size: configBuf.length },
      layers,
      annotations: { 'dev.bootfarm.kernel': b.manifest.kernelVersion, 'dev.bootfarm.docker-image': b.imageId },
    });
    manifests.push({ mediaType: MEDIA.manifest, ...desc, platform: ARCH_INFO[b.arch].oci, annotations: { 'dev.bootfarm.arch': b.arch } });
  }
  const index = { schemaVersion: 2, mediaType: MEDIA.index, manifests };
  await writeFile(path.join(oci, 'index.json'), JSON.stringify(index, null, 2));
  await writeFile(path.join(oci, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

export interface PublishResult {
  version: string;
  dir: string;
  /** The version was already published (a rebuild with nothing changed). */
  reused: boolean;
  previous: string | undefined;
}

async function currentVersion(imagesDir: string, name: string): Promise<string | undefined> {
  return readlink(path.join(imagesDir, name, 'current')).catch(() => undefined);
}

/** A version directory's name; never `current` or an arch, which would make images/<name>/<x>/... ambiguous (server/boot/files/images.ts). */
export function checkVersionName(version: string): string {
  if (!NAME.test(version) || version === 'current' || (IMAGE_ARCHES as readonly string[]).includes(version)) {
    throw new SetupError(
      `--version: "${version}" is not a usable version name (letters, digits, . _ -; not "current" nor an arch: ${IMAGE_ARCHES.join(', ')})`,
    );
  }
  return version;
}

export async function publish(imagesDir: string, name: string, version: string, built: BuiltArch[]): Promise<PublishResult> {
  checkVersionName(version);
  const imageDir = path.join(imagesDir, checkImageName(name));
  const versionDir = path.join(imageDir, version);
  await mkdir(imageDir, { recursive: true });
  const previous = await currentVersion(imagesDir, name);
  let reused = false;
  if (existsSync(versionDir)) {
    // Same version = same build inputs and outputs: keep what is there (a
    // connected NBD client may be reading it) unless an arch is new to it.
    const have = new Set(await readdir(versionDir));
    if (built.every((b) => have.has(b.arch))) reused = true;
    else
      throw new SetupError(
        `${versionDir} exists without ${built
          .filter((b) => !have.has(b.arch))
          .map((b) => b.arch)
          .join(', ')}; choose another --version`,
      );
  } else {
    // Assemble beside the final place, then one rename: a half-written version is never visible.
    const staging = path.join(imageDir, `.${version}.tmp-${process.pid}`);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging);
    for (const b of built) await rename(b.dir, path.join(staging, b.arch));
    await writeOciLayout(staging, built);
    await rename(staging, versionDir);
  }
  const tmpLink = path.join(imageDir, `.current.tmp-${process.pid}`);
  await rm(tmpLink, { force: true });
  await symlink(version, tmpLink);
  await rename(tmpLink, path.join(imageDir, 'current'));
  await stat(path.join(imageDir, 'current', built[0]?.arch ?? '', 'root.squashfs'));
  return { version, dir: versionDir, reused, previous };
}
