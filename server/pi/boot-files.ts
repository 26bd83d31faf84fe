// What goes into a Pi node's boot.img: the same config.txt and cmdline.txt its
// TFTP boot gets (rendered by the same templates from the same boot context,
// server/boot/node-context.ts), and the firmware, device tree, kernel and
// initramfs of its model and arch (server/boot/files/pi-models.ts), all from the image version the boot context
// pins (so kernel, initrd and NBD root are of one version). Also the content key
// the built image is cached under: it changes when the rendered files, the
// templates, the node's configuration or the image version change.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedConfig } from '../config/types.js';
import type { TemplateSet } from '../config/templates.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { bootContext } from '../boot/node-context.js';
import { imageFileKind } from '../boot/files/image-access.js';
import { piNodeBootSet, piRequiredFiles } from '../boot/files/pi-models.js';

/** One file of the FAT image: generated text, or a file of the node's image. */
export type PiBootFile = { name: string; data: Buffer } | { name: string; file: string; size: number };

export interface PiBootFileSet {
  files: PiBootFile[];
  /** sha256 hex over everything the image is made of. */
  key: string;
  /** `bootfarm.nonce=<placeholder>` as it stands in cmdline.txt; the served image carries the boot's nonce there. */
  nonceSlot: string;
}

/** Bumped when the layout of the built image changes, so older cached images are not reused. */
const FORMAT = 'bootfarm-pi-boot-img-1';
const PLACEHOLDER_MARK = '\u0000nonce\u0000';

/**
 * The directory of the node's image version the boot context pins: images/<image>/<version>/<arch>
 * (built-in NBD) or images/<image>/<arch> (current, external backends), resolved so a
 * publish while the image is built cannot mix two versions.
 */
async function imageDir(kernelPath: string, imagesDir: string): Promise<string> {
  const parts = path.posix.dirname(kernelPath).split('/').slice(1);
  const rel = parts.length === 3 ? parts : [parts[0] as string, 'current', parts[1] as string];
  return realpath(path.join(imagesDir, ...rel));
}

export class PiBootFilesError extends Error {}

/** The node's boot.img contents, or a PiBootFilesError naming what its image lacks. */
export async function piBootFiles(node: EffectiveNode, config: ResolvedConfig, templates: TemplateSet): Promise<PiBootFileSet> {
  const set = piNodeBootSet(node);
  if ('refused' in set) throw new PiBootFilesError(set.refused);
  const model = set.model;
  if (model === 3)
    throw new PiBootFilesError(`${node.hostname}: HTTP boot is a Pi 4/5 EEPROM feature; a Pi 3B+ boots over TFTP (piBoot: tftp)`);
  // 32 characters, the length of a boot nonce (server/join/boot-credentials.ts), and random, so it occurs nowhere else in the image.
  const placeholder = randomBytes(24).toString('base64url');
  const context = bootContext(node, config, { nonce: placeholder });
  const configTxt = templates.render('rpi-config.txt', context);
  const cmdline = templates.render('rpi-cmdline.txt', context);
  let dir: string;
  try {
    dir = await imageDir(context.image.kernelPath, config.images.dir);
  } catch {
    throw new PiBootFilesError(`${node.hostname}: image ${node.image}/${node.arch} is not published under ${config.images.dir}`);
  }
  const rpi = path.join(dir, 'rpi');
  // The files the TFTP path serves this model (server/boot/files/pi-models.ts), and overlays if the image has them.
  const names = new Set(piRequiredFiles(set));
  const overlays = await readdir(path.join(rpi, 'overlays')).catch(() => [] as string[]);
  for (const name of overlays) names.add(`overlays/${name}`);
  const files: PiBootFile[] = [];
  const hash = createHash('sha256').update(FORMAT);
  const imagesRoot = await realpath(config.images.dir);
  for (const name of [...names].sort()) {
    if (imageFileKind(`rpi/${name}`) !== 'boot') continue;
    const file = await realpath(path.join(rpi, name)).catch(() => undefined);
    const st = file === undefined ? undefined : await stat(file).catch(() => undefined);
    if (file === undefined || !st?.isFile())
      throw new PiBootFilesError(`${node.hostname}: ${name} is missing from ${rpi} (Pi ${model} HTTP boot needs it)`);
    // As the TFTP path (server/boot/files/images.ts): a link inside an image serves nothing outside the images directory.
    if (!file.startsWith(imagesRoot + path.sep))
      throw new PiBootFilesError(`${node.hostname}: ${name} resolves outside ${config.images.dir}`);
    files.push({ name, file, size: st.size });
    hash.update(`\0${name}\0${file}\0${st.size}\0${st.mtimeMs}\0${st.ino}`);
  }
  const nonceSlot = `bootfarm.nonce=${placeholder}`;
  // cmdline.txt last: its bytes lie at the end of the image, so the per-boot nonce changes only the tail.
  files.push({ name: 'config.txt', data: Buffer.from(configTxt) }, { name: 'cmdline.txt', data: Buffer.from(cmdline) });
  hash.update(`\0config.txt\0${configTxt}\0cmdline.txt\0${cmdline.split(placeholder).join(PLACEHOLDER_MARK)}`);
  return { files, key: hash.digest('hex'), nonceSlot };
}
