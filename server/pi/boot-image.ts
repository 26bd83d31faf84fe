// Builds a Pi node's boot.img, a FAT file system image, with dosfstools'
// mkfs.fat and mtools' mmd/mcopy (as raspberrypi/usbboot's rpi-make-boot-image
// does when mtools is there): no loop mount, no root, and a FAT writer that the
// firmware's FAT reader has long been tested against, which a FAT writer of our
// own would not be. The child processes run off the event loop.
import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PiBootFile } from './boot-files.js';

const exec = promisify(execFile);
const SECTOR = 512;
const SECTORS_PER_CLUSTER = 8;
const CLUSTER = SECTOR * SECTORS_PER_CLUSTER;
const ROOT_ENTRIES = 512;

/** FAT width and size in KiB for files of these sizes: the smallest width mkfs.fat accepts for the cluster count. */
function fatLayout(sizes: number[], directories: number): { fat: 12 | 16 | 32; kib: number } {
  const fileClusters = sizes.reduce((sum, size) => sum + Math.ceil(size / CLUSTER), 0);
  // Directory clusters (long names take up to 4 entries of 32 bytes per file) and a little slack.
  const needed = fileClusters + directories * (1 + Math.ceil((sizes.length * 4 * 32) / CLUSTER)) + 16;
  // Margins keep the count mkfs.fat derives from the size inside the width's range (FAT12 <= 4084, FAT16 4085..65524).
  const [fat, clusters] = needed <= 4000 ? [12, needed] : needed <= 65000 ? [16, Math.max(needed, 4200)] : [32, Math.max(needed, 66000)];
  const fatBytes = fat === 12 ? Math.ceil(((clusters + 2) * 3) / 2) : (clusters + 2) * (fat / 8);
  const reserved = (fat === 32 ? 32 : 1) * SECTOR;
  const root = fat === 32 ? CLUSTER : ROOT_ENTRIES * 32;
  const total = reserved + 2 * Math.ceil(fatBytes / SECTOR) * SECTOR + root + clusters * CLUSTER + 64 * 1024;
  return { fat: fat as 12 | 16 | 32, kib: Math.ceil(total / 1024) };
}

async function tool(cmd: string, args: string[]): Promise<void> {
  try {
    // MTOOLS_SKIP_CHECK: the image has no partition table or disk geometry for mtools to check.
    await exec(cmd, args, { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' }, maxBuffer: 1024 * 1024 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error(`${cmd} is not installed: apt-get install mtools dosfstools (scripts/install-system-deps.sh runtime)`);
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/**
 * Writes the FAT image `out` holding `files` in their order (the caller puts
 * cmdline.txt last: mtools allocates clusters in order, so it ends up at the
 * image's tail). Built in a temporary directory beside `out` and renamed into place.
 */
export async function buildFatImage(files: PiBootFile[], out: string, volumeId: string): Promise<void> {
  const work = await mkdtemp(path.join(path.dirname(out), '.build-'));
  try {
    const image = path.join(work, 'boot.img');
    const sources: Array<{ name: string; source: string }> = [];
    for (const f of files) {
      if ('data' in f) {
        const staged = path.join(work, `staged-${sources.length}`);
        await writeFile(staged, f.data);
        sources.push({ name: f.name, source: staged });
      } else sources.push({ name: f.name, source: f.file });
    }
    const dirs = [...new Set(files.map((f) => path.posix.dirname(f.name)).filter((d) => d !== '.'))];
    const sizes = files.map((f) => ('data' in f ? f.data.length : f.size));
    const { fat, kib } = fatLayout(sizes, dirs.length);
    const fatArgs = fat === 32 ? [] : ['-r', String(ROOT_ENTRIES)];
    await tool('mkfs.fat', [
      '-C',
      '-F',
      String(fat),
      '-s',
      String(SECTORS_PER_CLUSTER),
      '-S',
      String(SECTOR),
      ...fatArgs,
      '-n',
      'BOOT',
      '-i',
      volumeId,
      image,
      String(kib),
    ]);
    for (const dir of dirs) await tool('mmd', ['-i', image, `::/${dir}`]);
    // One file per mcopy keeps the order exact and the target names as given.
    for (const { name, source } of sources) await tool('mcopy', ['-i', image, '-Q', source, `::/${name}`]);
    await rename(image, out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
