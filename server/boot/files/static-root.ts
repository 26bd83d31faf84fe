// Static files under a root directory (tftp.root): bootloaders and anything the
// operator puts there. Symlinks are allowed inside the root only: the real path
// is resolved and re-checked (notes §3.6 step 4).
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FileCache } from './file-cache.js';
import type { FileAnswer, FileRequest, FileResolver } from './resolver.js';

export class StaticRootResolver implements FileResolver {
  readonly name = 'static';
  private rootReal: Promise<string | undefined>;

  constructor(private readonly root: string, private readonly cache: FileCache) {
    this.rootReal = realpath(root).catch(() => undefined);
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    const root = (await this.rootReal) ?? (this.rootReal = realpath(this.root).catch(() => undefined), await this.rootReal);
    if (!root) return undefined;
    let real: string;
    try {
      real = await realpath(path.join(root, request.path));
    } catch {
      return undefined;
    }
    if (real !== root && !real.startsWith(root + path.sep)) {
      return { found: false, denied: true, detail: `resolves outside the root (${request.path})` };
    }
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return { found: true, from: this.name, size: st.size, realPath: real, open: () => this.cache.open(real) };
  }
}
