// Static files under a root directory (tftp.root): bootloaders and anything the
// operator puts there. Symlinks are allowed inside the root only: the real path
// is resolved and re-checked (as tinkerbell does with os.OpenRoot). A file that resolves into the
// images directory (tftp.root containing it, or a link into it) gets the images'
// rules (server/boot/files/image-access.ts), so this root is no way around them.
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RootAccessPolicy } from '../root-access.js';
import type { FileCache } from './file-cache.js';
import { publishedFileAccess } from './image-access.js';
import type { FileAnswer, FileRequest, FileResolver } from './resolver.js';

/** The images directory and who may read its root images. */
export interface PublishedImages {
  dir: string;
  rootAccess: RootAccessPolicy;
}

function isInside(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent + path.sep);
}

export class StaticRootResolver implements FileResolver {
  readonly name = 'static';
  private rootReal: Promise<string | undefined>;

  constructor(
    private readonly root: string,
    private readonly cache: FileCache,
    private readonly images?: PublishedImages,
  ) {
    this.rootReal = realpath(root).catch(() => undefined);
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    const root = (await this.rootReal) ?? ((this.rootReal = realpath(this.root).catch(() => undefined)), await this.rootReal);
    if (!root) return undefined;
    let real: string;
    try {
      real = await realpath(path.join(root, request.path));
    } catch {
      return undefined;
    }
    if (!isInside(root, real)) {
      return { found: false, denied: true, detail: `resolves outside the root (${request.path})`, refusal: 'outside-root' };
    }
    if (this.images) {
      const imagesRoot = await realpath(this.images.dir).catch(() => undefined);
      if (imagesRoot && isInside(imagesRoot, real)) {
        const decision = publishedFileAccess(
          path.relative(imagesRoot, real).split(path.sep).join('/'),
          'boot',
          request.clientAddress,
          this.images.rootAccess,
          request.path,
        );
        if (!decision.allowed)
          return { found: false, denied: true, detail: `${decision.detail} (in the images directory)`, refusal: decision.refusal };
      }
    }
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return { found: true, from: this.name, size: st.size, realPath: real, open: () => this.cache.open(real) };
  }
}
