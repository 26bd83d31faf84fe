// Files of published images: images/<name>/<arch>/<file> maps to
// <images.dir>/<name>/current/<arch>/<file> (the image builder publishes versions
// and switches `current` atomically). A Raspberry Pi's bootloader files come from
// the rpi/ folder of its node's image: <serial>/start4.elf, or start4.elf from a
// Pi whose lease identifies it once it dropped the serial prefix.
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedConfig } from '../../config/load.js';
import type { FileCache } from './file-cache.js';
import type { NodeDirectory } from './node-directory.js';
import type { FileAnswer, FileRequest, FileResolver } from './resolver.js';

const PI_SERIAL = /^[0-9a-f]{8}$/;

export class ImageFileResolver implements FileResolver {
  readonly name = 'image';

  constructor(private readonly config: ResolvedConfig, private readonly cache: FileCache, private readonly nodes: NodeDirectory) {}

  private async serve(relative: string, label: string): Promise<FileAnswer | undefined> {
    const dir = this.config.images.dir;
    let root: string;
    let real: string;
    try {
      root = await realpath(dir);
      real = await realpath(path.join(dir, relative));
    } catch {
      return undefined;
    }
    if (!real.startsWith(root + path.sep)) return { found: false, denied: true, detail: `resolves outside the images directory (${relative})` };
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return { found: true, from: label, size: st.size, realPath: real, open: () => this.cache.open(real) };
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    const parts = request.path.split('/');
    if (parts[0] === 'images' && parts.length >= 4) {
      const [, name, arch, ...rest] = parts;
      return this.serve(path.join(name as string, 'current', arch as string, ...rest), `image:${name}/${arch}`);
    }
    const prefixed = PI_SERIAL.test(parts[0] ?? '') && parts.length >= 2;
    const node = prefixed ? this.nodes.byPiSerial(parts[0] as string) : this.nodes.byAddress(request.clientAddress);
    if (!node?.piSerial) return undefined;
    const rest = prefixed ? parts.slice(1) : parts;
    const image = node.image;
    const arch = node.arch;
    return this.serve(path.join(image, 'current', arch, 'rpi', ...rest), `image:${image}/${arch}/rpi`);
  }
}
