// The build context: imagebuild/ packed as a tar in memory (a few dozen small
// files). Entries get fixed times and owners; BuildKit keys its cache on file
// contents and modes, so an unchanged tree always hits the cache.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { SetupError } from '../errors.js';

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(dir, child)));
    else if (entry.isFile()) out.push(child);
  }
  return out;
}

export async function packContext(dir: string): Promise<Readable> {
  const files = await walk(dir).catch(() => {
    throw new SetupError(`image build context ${dir} cannot be read`);
  });
  if (!files.includes('Dockerfile')) throw new SetupError(`image build context ${dir} has no Dockerfile`);
  const pack = tar.pack();
  for (const file of files) {
    const full = path.join(dir, file);
    const st = await stat(full);
    pack.entry({ name: file, mode: st.mode & 0o111 ? 0o755 : 0o644, mtime: new Date(0), uid: 0, gid: 0 }, await readFile(full));
  }
  pack.finalize();
  // tar-stream packs are streamx streams; dockerode wants a Node stream.
  return Readable.from(pack);
}
