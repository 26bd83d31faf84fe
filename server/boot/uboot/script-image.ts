// The script U-Boot's distro boot fetches after its DHCP, as the legacy image
// `mkimage -T script` writes (U-Boot include/image.h, boot/image-board.c): a
// 64-byte big-endian header with CRC32s of itself and of the data, then the data
// as a multi-file image: each part's length, a zero, the parts.
import { crc32 } from 'node:zlib';

/** include/image.h: IH_MAGIC, IH_OS_LINUX, IH_ARCH_ARM, IH_TYPE_SCRIPT, IH_COMP_NONE. */
const IH_MAGIC = 0x27051956;
const IH_OS_LINUX = 5;
const IH_ARCH_ARM = 2;
const IH_TYPE_SCRIPT = 6;
const IH_COMP_NONE = 0;
const HEADER_SIZE = 64;
const NAME_SIZE = 32;

/**
 * `script` as a U-Boot script image named `name` (at most 31 bytes are kept).
 * The timestamp is 0, so the same script is always the same bytes; `source`
 * checks the magic, both CRCs and the type, never the time or the architecture.
 */
export function ubootScriptImage(script: string, name: string): Buffer {
  const body = Buffer.from(script, 'utf8');
  const data = Buffer.alloc(8 + body.length);
  data.writeUInt32BE(body.length, 0); // the one part's length; the zero after it ends the list
  body.copy(data, 8);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(IH_MAGIC, 0);
  // 4: header CRC, computed with this field zero; 8: time (0)
  header.writeUInt32BE(data.length, 12);
  // 16: load address, 20: entry point (0: a script is not loaded anywhere)
  header.writeUInt32BE(crc32(data) >>> 0, 24);
  header[28] = IH_OS_LINUX;
  header[29] = IH_ARCH_ARM;
  header[30] = IH_TYPE_SCRIPT;
  header[31] = IH_COMP_NONE;
  header.write(name.slice(0, NAME_SIZE - 1), 32, 'latin1');
  header.writeUInt32BE(crc32(header) >>> 0, 4);
  return Buffer.concat([header, data]);
}
