// Opens files for transfer. Files up to `maxCachedFileBytes` are read into memory
// once and shared: when 50 nodes fetch the same kernel at once, the disk is read
// once. The cache is keyed by path, inode, size and mtime, so a replaced file is
// read afresh, and evicts unreferenced entries beyond its byte budget. Larger
// files are read block by block from an open handle.
import { open, stat } from 'node:fs/promises';
import type { FileSource } from './resolver.js';

interface Entry {
  data: Promise<Buffer>;
  size: number;
  refs: number;
  lastUsed: number;
}

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private cachedBytes = 0;

  constructor(
    private readonly maxCachedFileBytes = 256 * 1024 * 1024,
    private readonly budgetBytes = 1024 * 1024 * 1024,
  ) {}

  async open(realPath: string): Promise<FileSource> {
    const st = await stat(realPath);
    if (st.size > this.maxCachedFileBytes) return this.openUncached(realPath, st.size);
    const key = `${realPath}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const created: Entry = { data: readWhole(realPath, st.size), size: st.size, refs: 0, lastUsed: 0 };
      entry = created;
      this.entries.set(key, entry);
      this.cachedBytes += st.size;
      created.data.catch(() => this.drop(key, created));
    }
    const held = entry;
    held.refs++;
    held.lastUsed = Date.now();
    let data: Buffer;
    try {
      data = await held.data;
    } catch (err) {
      held.refs--;
      throw err;
    }
    this.evict();
    let released = false;
    return {
      size: data.length,
      read: (offset, length) => data.subarray(offset, offset + length),
      release: () => {
        if (released) return;
        released = true;
        held.refs--;
        held.lastUsed = Date.now();
        this.evict();
      },
    };
  }

  private drop(key: string, entry: Entry): void {
    if (this.entries.get(key) === entry) {
      this.entries.delete(key);
      this.cachedBytes -= entry.size;
    }
  }

  private evict(): void {
    if (this.cachedBytes <= this.budgetBytes) return;
    const idle = [...this.entries].filter(([, e]) => e.refs === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, entry] of idle) {
      if (this.cachedBytes <= this.budgetBytes) break;
      this.drop(key, entry);
    }
  }

  private async openUncached(realPath: string, size: number): Promise<FileSource> {
    const handle = await open(realPath, 'r');
    let released = false;
    return {
      size,
      read: async (offset, length) => {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buf, 0, length, offset);
        return bytesRead === length ? buf : buf.subarray(0, bytesRead);
      },
      release: () => {
        if (released) return;
        released = true;
        void handle.close();
      },
    };
  }

  /** A generated file (rendered template) as a source. */
  static fromBuffer(data: Buffer): FileSource {
    return { size: data.length, read: (offset, length) => data.subarray(offset, offset + length), release: () => undefined };
  }
}

async function readWhole(realPath: string, size: number): Promise<Buffer> {
  const handle = await open(realPath, 'r');
  try {
    const buf = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(buf, offset, size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return offset === size ? buf : buf.subarray(0, offset);
  } finally {
    await handle.close();
  }
}
