// Which files of a published image TFTP and HTTP hand out, and to whom. A boot
// needs the kernel, the initrd, device trees and the Raspberry Pi firmware set
// that the image builder copies to rpi/ (imagebuild/squash/make-export.sh), and
// those go to anyone who asks: a machine fetches them before it has anything
// but its lease. The root image goes only where NBD would let it go
// (`nbd.allow`, server/boot/root-access.ts), so another protocol is no way around
// that policy. Anything else in an image (manifest.json, files an operator left
// there) is refused.
import type { RootAccessPolicy } from '../root-access.js';

/** boot: served to anyone; root: to addresses the NBD policy admits; other: to no one. */
export type ImageFileKind = 'boot' | 'root' | 'other';

/** Why a boot-file request was refused (the `reason` label of bootfarm_boot_files_refused_total). */
/** Why a file was refused; `boot-script-refused`: a node's boot script to an address that is not the node's (server/join/boot-script-issuer.ts). */
export type FileRefusal = 'not-boot-file' | 'root-not-admitted' | 'outside-root' | 'boot-script-refused';

const KERNEL_OR_INITRD = /^(vmlinuz|initrd)[^/]*$/;
const DEVICE_TREE = /^[^/]+\.dtbo?$/;
const ROOT_IMAGE = /^[^/]+\.squashfs$/;
// The Pi firmware set as the bootloaders fetch it (boot-net.adoc; the TFTP logs in
// raspberrypi/rpi-eeprom#74 and #87): bootcode.bin,
// start*.elf, fixup*.dat, the DTBs and overlays, the kernel under config.txt's
// name and the initramfs; the EEPROM's recovery probes are answered too.
const PI_FIRMWARE =
  /^(bootcode\.bin|bootsig\.bin|armstub[^/]*\.bin|start[^/]*\.elf|fixup[^/]*\.dat|recover[^/]*\.elf|pieeprom\.(sig|upd|bin)|kernel[^/]*\.img|[^/]+\.dtb|overlays\/[^/]+\.dtbo?|(initrd|vmlinuz)[^/]*)$/;

/** `rest`: a normalised path inside one image's <arch>/ directory, e.g. `vmlinuz` or `rpi/start4.elf`. */
export function imageFileKind(rest: string): ImageFileKind {
  if (rest.startsWith('rpi/')) return PI_FIRMWARE.test(rest.slice(4)) ? 'boot' : 'other';
  if (ROOT_IMAGE.test(rest)) return 'root';
  if (KERNEL_OR_INITRD.test(rest) || DEVICE_TREE.test(rest) || /^dtbs\/([^/]+\/)*[^/]+\.dtbo?$/.test(rest)) return 'boot';
  return 'other';
}

/** A file inside the images directory as <image>/<version>/<arch>/<rest> (after symlinks): the kind of <rest>. */
function publishedFileKind(relativeToImagesRoot: string): ImageFileKind {
  const parts = relativeToImagesRoot.split('/');
  return parts.length >= 4 ? imageFileKind(parts.slice(3).join('/')) : 'other';
}

/** Of two views of one file (the name asked for, the file it resolves to), the more guarded. */
function stricterKind(a: ImageFileKind, b: ImageFileKind): ImageFileKind {
  if (a === 'other' || b === 'other') return 'other';
  return a === 'root' || b === 'root' ? 'root' : 'boot';
}

export type AccessDecision = { allowed: true } | { allowed: false; refusal: FileRefusal; detail: string };

/** May `client` have a file of this kind? */
export function imageFileAccess(kind: ImageFileKind, client: string, rootAccess: RootAccessPolicy, what: string): AccessDecision {
  if (kind === 'boot') return { allowed: true };
  if (kind === 'other')
    return { allowed: false, refusal: 'not-boot-file', detail: `${what} is not a boot file (kernel, initrd, device tree or Pi firmware)` };
  const refused = rootAccess(client);
  return refused === undefined
    ? { allowed: true }
    : { allowed: false, refusal: 'root-not-admitted', detail: `${what} is a root image: ${refused}` };
}

/**
 * The decision for a file that resolved (after symlinks) to `relativeToImagesRoot`
 * inside the images directory, asked for under a name of kind `requested`: a
 * link named vmlinuz that points at root.squashfs is still a root image.
 */
export function publishedFileAccess(
  relativeToImagesRoot: string,
  requested: ImageFileKind,
  client: string,
  rootAccess: RootAccessPolicy,
  what: string,
): AccessDecision {
  return imageFileAccess(stricterKind(requested, publishedFileKind(relativeToImagesRoot)), client, rootAccess, what);
}
