// A built boot.img is shared by every boot of its node, but its cmdline.txt must
// carry each boot's one-time nonce (server/join/boot-sessions.ts). The image is
// built once with a random placeholder of a nonce's length in its place; a
// served copy has the boot's `bootfarm.nonce=<nonce>` written over those bytes
// (spaces when no nonce is issued: the kernel ignores them). The SHA-256 of
// everything before the first placeholder is computed once, so a boot's digest
// costs only the image's tail (cmdline.txt is the last file, at the tail).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

export interface SlottedImage {
  file: string;
  size: number;
  /** Offsets of the placeholder slot in the image, ascending. */
  slots: number[];
  slotLength: number;
  /** SHA-256 state over [0, slots[0]) (the whole image when there is no slot). */
  prefix: Hash;
  prefixEnd: number;
}

/** Every offset of `needle` in `haystack`. */
export function offsetsOf(haystack: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) out.push(at);
  return out;
}

/** Reads a built image, finds its slots and hashes up to the first; `expected` is how often cmdline.txt holds the slot. */
export async function scanImage(file: string, slot: Buffer, expected: number): Promise<SlottedImage> {
  const handle = await open(file, 'r');
  let data: Buffer;
  try {
    data = await handle.readFile();
  } finally {
    await handle.close();
  }
  const slots = offsetsOf(data, slot);
  // A slot split across non-adjacent clusters would not be found: refuse such an image rather than serve a boot without its nonce.
  if (slots.length !== expected)
    throw new Error(`${file}: the nonce placeholder occurs ${slots.length} times, cmdline.txt holds it ${expected} times`);
  const prefixEnd = slots[0] ?? data.length;
  const prefix = createHash('sha256');
  // In 1 MiB steps with a turn of the event loop between: a 100 MB image does not stall other requests.
  for (let at = 0; at < prefixEnd; at += 1 << 20) {
    prefix.update(data.subarray(at, Math.min(prefixEnd, at + (1 << 20))));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { file, size: data.length, slots, slotLength: slot.length, prefix, prefixEnd };
}

/** What a boot's slots hold: `bootfarm.nonce=<nonce>` padded with spaces, or all spaces without a nonce. */
export function slotFill(slotLength: number, nonce: string | undefined): Buffer {
  const text = nonce === undefined ? '' : `bootfarm.nonce=${nonce}`;
  if (text.length > slotLength) throw new Error(`a nonce of ${nonce?.length} characters does not fit the ${slotLength}-byte slot`);
  return Buffer.from(text.padEnd(slotLength, ' '), 'ascii');
}

/** `chunk` (the image's bytes from `offset`) with the fill written over every slot it overlaps. */
export function patchChunk(image: SlottedImage, chunk: Buffer, offset: number, fill: Buffer): Buffer {
  let out = chunk;
  for (const slot of image.slots) {
    const from = Math.max(slot, offset);
    const to = Math.min(slot + image.slotLength, offset + chunk.length);
    if (from >= to) continue;
    if (out === chunk) out = Buffer.from(chunk);
    fill.copy(out, from - offset, from - slot, to - slot);
  }
  return out;
}

/** The SHA-256 of the image as served with `fill` in its slots. */
export async function filledDigest(image: SlottedImage, fill: Buffer): Promise<Buffer> {
  const hash = image.prefix.copy();
  let offset = image.prefixEnd;
  for await (const chunk of createReadStream(image.file, { start: image.prefixEnd, highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    hash.update(patchChunk(image, buf, offset, fill));
    offset += buf.length;
  }
  return hash.digest();
}
