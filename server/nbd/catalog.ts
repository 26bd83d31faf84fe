// The exports: per published image and architecture, <image>/<arch> (read from
// <images.dir>/<image>/current/<arch>/root.squashfs) and, per version kept,
// <image>/<version>/<arch> (from <images.dir>/<image>/<version>/<arch>/), plus
// any files named in nbd.exports. `current` is resolved when a client attaches
// and the file stays open: publishing a new version never changes bytes under a
// connected client. Nodes attach the versioned name (server/boot/node-context.ts),
// so a node that reconnects after a publish gets the same bytes again.
import { open, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { ExportCatalog, NbdExport } from './session.js';
import { IMAGE_DIR_NAME as VERSION } from '../image/names.js';

/**
 * Reusable read buffers. A fresh Buffer of 128 KiB or more is a fresh mmap: every
 * 1 MiB READ would page-fault it in and unmap it at the next GC. Buffers come back
 * here once the socket has sent them, and are kept per size, a few of each.
 */
const POOLED_MIN = 64 * 1024;
const POOL_PER_SIZE = 32;
/** All pooled buffers together stay below this; beyond it a returned buffer is left to the GC. */
const POOL_MAX_BYTES = 64 * 1024 * 1024;
const pool = new Map<number, Buffer[]>();
let pooledBytes = 0;

function acquire(length: number): Buffer {
  if (length < POOLED_MIN) return Buffer.allocUnsafe(length);
  const reused = pool.get(length)?.pop();
  if (reused) {
    pooledBytes -= reused.length;
    return reused;
  }
  return Buffer.allocUnsafeSlow(length);
}

function release(buf: Buffer): void {
  if (buf.length < POOLED_MIN || buf.byteOffset !== 0 || buf.buffer.byteLength !== buf.length) return;
  if (pooledBytes + buf.length > POOL_MAX_BYTES) return;
  let list = pool.get(buf.length);
  if (!list) {
    list = [];
    pool.set(buf.length, list);
  }
  if (list.length >= POOL_PER_SIZE) return;
  list.push(buf);
  pooledBytes += buf.length;
}

export interface StaticExport {
  name: string;
  file: string;
}

export class ImageExportCatalog implements ExportCatalog {
  constructor(
    private readonly imagesDir: string,
    private readonly staticExports: StaticExport[],
  ) {}

  async names(): Promise<string[]> {
    const names = this.staticExports.map((e) => e.name);
    const images = await readdir(this.imagesDir, { withFileTypes: true }).catch(() => []);
    for (const image of images) {
      if (!image.isDirectory()) continue;
      const versions = await readdir(path.join(this.imagesDir, image.name), { withFileTypes: true }).catch(() => []);
      for (const version of versions) {
        if (!VERSION.test(version.name)) continue;
        const archDir = path.join(this.imagesDir, image.name, version.name);
        const arches = await readdir(archDir, { withFileTypes: true }).catch(() => []);
        for (const arch of arches) {
          const exists = await realpath(path.join(archDir, arch.name, 'root.squashfs')).then(
            () => true,
            () => false,
          );
          if (exists) names.push(version.name === 'current' ? `${image.name}/${arch.name}` : `${image.name}/${version.name}/${arch.name}`);
        }
      }
    }
    return names.sort();
  }

  private async locate(name: string): Promise<{ file: string; version?: { image: string; version: string } } | undefined> {
    const fixed = this.staticExports.find((e) => e.name === name);
    if (fixed) {
      const file = await realpath(fixed.file).catch(() => undefined);
      return file === undefined ? undefined : { file };
    }
    // <image>/<arch> is the current version; <image>/<version>/<arch> a named one.
    const m = /^([a-zA-Z0-9][a-zA-Z0-9._-]*)\/(?:([a-zA-Z0-9][a-zA-Z0-9._-]*)\/)?([a-z0-9_]+)$/.exec(name);
    if (!m) return undefined;
    const version = m[2] ?? 'current';
    const root = await realpath(this.imagesDir).catch(() => undefined);
    const real = await realpath(path.join(this.imagesDir, m[1] as string, version, m[3] as string, 'root.squashfs')).catch(() => undefined);
    if (!root || !real || !real.startsWith(root + path.sep)) return undefined;
    // <image>/<version>/<arch>/root.squashfs after `current` is followed: the version actually served.
    const [image, versionDir] = path.relative(root, real).split(path.sep);
    return { file: real, version: image && versionDir ? { image, version: versionDir } : undefined };
  }

  async open(name: string): Promise<NbdExport | undefined> {
    const found = await this.locate(name);
    if (!found) return undefined;
    const { file, version } = found;
    const handle = await open(file, 'r').catch(() => undefined);
    if (!handle) return undefined;
    const { size } = await handle.stat();
    let closed = false;
    return {
      name,
      source: file,
      version,
      size: BigInt(size),
      read: async (offset, length) => {
        const buf = acquire(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${file} ended early at ${offset + done}`);
          done += bytesRead;
        }
        return buf;
      },
      recycle: release,
      close: () => {
        if (closed) return;
        closed = true;
        void handle.close();
      },
    };
  }
}
