// Files of published images: images/<name>/<arch>/<file> maps to
// <images.dir>/<name>/current/<arch>/<file> (the image builder publishes versions
// and switches `current` atomically), images/<name>/<version>/<arch>/<file> to
// that version's directory. A Raspberry Pi's bootloader files come from
// the rpi/ folder of its node's image: <serial>/start4.elf, or start4.elf from a
// Pi whose lease identifies it once it dropped the serial prefix. Only boot
// files are handed out, and the root image only to clients NBD would admit
// (server/boot/files/image-access.ts).
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedConfig } from '../../config/types.js';
import { IMAGE_ARCHES } from '../../image/arch.js';
import type { RootAccessPolicy } from '../root-access.js';
import type { FileCache } from './file-cache.js';
import { imageFileAccess, imageFileKind, publishedFileAccess, type AccessDecision, type ImageFileKind } from './image-access.js';
import type { NodeDirectory } from './node-directory.js';
import type { FileAnswer, FileRequest, FileResolver } from './resolver.js';
import { IMAGE_DIR_NAME as VERSION } from '../../image/names.js';

const PI_SERIAL = /^[0-9a-f]{8}$/;

/**
 * `<name>/<arch>/<file...>` is a file of the version `current` points at now;
 * `<name>/<version>/<arch>/<file...>` one of a named version, as the boot scripts
 * name the kernel and initrd (server/boot/node-context.ts), so that a publish
 * during a boot cannot pair one version's kernel with another's root. The two are
 * told apart by the third part: an arch the image builder makes (a version is
 * never named after one, server/image/publish.ts).
 */
function publishedImagePath(parts: string[]): { name: string; version: string; arch: string; rest: string[] } | undefined {
  const [name, second, third, ...more] = parts;
  if (name === undefined || second === undefined || third === undefined) return undefined;
  if ((IMAGE_ARCHES as readonly string[]).includes(third) && more.length > 0) {
    if (!VERSION.test(second)) return undefined;
    return { name, version: second, arch: third, rest: more };
  }
  return { name, version: 'current', arch: second, rest: [third, ...more] };
}

function refused(decision: AccessDecision & { allowed: false }): FileAnswer {
  return { found: false, denied: true, detail: decision.detail, refusal: decision.refusal };
}

export class ImageFileResolver implements FileResolver {
  readonly name = 'image';

  constructor(
    private readonly config: ResolvedConfig,
    private readonly cache: FileCache,
    private readonly nodes: NodeDirectory,
    private readonly rootAccess: RootAccessPolicy,
  ) {}

  /** `relative` is <name>/current/<arch>/<rest>; `kind` is what <rest> names. */
  private async serve(relative: string, kind: ImageFileKind, request: FileRequest, label: string): Promise<FileAnswer | undefined> {
    // Refused on the name first: a stranger learns nothing of what exists.
    const byName = imageFileAccess(kind, request.clientAddress, this.rootAccess, request.path);
    if (!byName.allowed) return refused(byName);
    const dir = this.config.images.dir;
    let root: string;
    let real: string;
    try {
      root = await realpath(dir);
      real = await realpath(path.join(dir, relative));
    } catch {
      return undefined;
    }
    // Symlinks inside an image may point anywhere; only files under the images directory are served.
    if (!real.startsWith(root + path.sep))
      return { found: false, denied: true, detail: `resolves outside the images directory (${relative})`, refusal: 'outside-root' };
    const byTarget = publishedFileAccess(
      path.relative(root, real).split(path.sep).join('/'),
      kind,
      request.clientAddress,
      this.rootAccess,
      request.path,
    );
    if (!byTarget.allowed) return refused(byTarget);
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return { found: true, from: label, size: st.size, realPath: real, open: () => this.cache.open(real) };
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    const parts = request.path.split('/');
    if (parts[0] === 'images') {
      const file = publishedImagePath(parts.slice(1));
      if (!file)
        return {
          found: false,
          denied: true,
          detail: `${request.path} is not a file of a published image (images/<name>/[<version>/]<arch>/<file>)`,
          refusal: 'not-boot-file',
        };
      const { name, version, arch, rest } = file;
      return this.serve(
        path.join(name, version, arch, ...rest),
        imageFileKind(rest.join('/')),
        request,
        `image:${name}/${version === 'current' ? '' : `${version}/`}${arch}`,
      );
    }
    const prefixed = PI_SERIAL.test(parts[0] ?? '') && parts.length >= 2;
    const node = prefixed ? this.nodes.byPiSerial(parts[0] as string) : this.nodes.byAddress(request.clientAddress);
    if (!node?.piSerial) return undefined;
    const rest = prefixed ? parts.slice(1) : parts;
    // A name that is no Pi firmware is not looked for in the image (tftp.root may still have it).
    const kind = imageFileKind(['rpi', ...rest].join('/'));
    if (kind !== 'boot') return undefined;
    const image = node.image;
    const arch = node.arch;
    return this.serve(path.join(image, 'current', arch, 'rpi', ...rest), kind, request, `image:${image}/${arch}/rpi`);
  }
}
