// Reads a file line by line in fixed-size chunks, with the byte offset and line
// number of each line: a state file of hundreds of megabytes never becomes one
// string, and a damaged record can be named by where it is.
import { closeSync, openSync, readSync } from 'node:fs';

export interface FileLine {
  /** The line without its newline; valid only until the next line is read (the chunk buffer is reused). */
  bytes: Buffer;
  /** Byte offset of the line's first byte in the file. */
  offset: number;
  /** 1-based. */
  lineNo: number;
  /** false for a last line with no newline after it (an interrupted append). */
  complete: boolean;
}

const CHUNK = 1 << 20;

/** Yields every line of `file`; throws ENOENT when it does not exist. */
export function* readLines(file: string): Generator<FileLine> {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = 0;
    let fileOffset = 0;
    let lineNo = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK, fileOffset);
      if (n === 0) break;
      // The bytes of a line that spans chunks are copied once into `carry`.
      const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      const dataOffset = carry.length > 0 ? carryOffset : fileOffset;
      fileOffset += n;
      let start = 0;
      for (;;) {
        const nl = data.indexOf(10, start);
        if (nl < 0) break;
        yield { bytes: data.subarray(start, nl), offset: dataOffset + start, lineNo: ++lineNo, complete: true };
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
      carryOffset = dataOffset + start;
    }
    if (carry.length > 0) yield { bytes: carry, offset: carryOffset, lineNo: ++lineNo, complete: false };
  } finally {
    closeSync(fd);
  }
}
