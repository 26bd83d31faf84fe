// Lists the files in an initramfs: zstd/gzip/uncompressed newc cpio archives,
// possibly several concatenated (an early microcode cpio before the main one).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

function decompress(buf: Buffer): Buffer {
  if (buf.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))
    return execFileSync('zstd', ['-dc'], { input: buf, maxBuffer: 1 << 30 });
  if (buf[0] === 0x1f && buf[1] === 0x8b) return execFileSync('gzip', ['-dc'], { input: buf, maxBuffer: 1 << 30 });
  return buf;
}

const align4 = (n: number): number => (n + 3) & ~3;

export function listInitrd(file: string): string[] {
  let data: Buffer = readFileSync(file);
  const names: string[] = [];
  let off = 0;
  for (;;) {
    // Skip the zero padding between concatenated archives.
    while (off < data.length && data[off] === 0) off++;
    if (off >= data.length) break;
    if (data.subarray(off, off + 6).toString('latin1') !== '070701') {
      // A compressed archive follows: decompress the rest and go on from there.
      data = decompress(data.subarray(off));
      off = 0;
      if (data.subarray(0, 6).toString('latin1') !== '070701') throw new Error(`${file}: not a newc cpio archive`);
    }
    const field = (i: number): number => parseInt(data.subarray(off + 6 + i * 8, off + 14 + i * 8).toString('latin1'), 16);
    const fileSize = field(6);
    const nameSize = field(11);
    const name = data.subarray(off + 110, off + 110 + nameSize - 1).toString('utf8');
    off = align4(off + 110 + nameSize);
    off = align4(off + fileSize);
    if (name === 'TRAILER!!!') continue;
    names.push(name.replace(/^\.\//, ''));
  }
  return names;
}
