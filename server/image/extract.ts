// Copies /bootfarm out of a built export image (a container is created, never
// started: the export stage is FROM scratch) and checks it against its manifest.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import tar from 'tar-stream';

export interface ExportManifest {
  schema: number;
  arch: string;
  kernelVersion: string;
  kubeadm: string;
  files: { path: string; size: number; sha256: string }[];
  packages: { name: string; version: string; arch: string }[];
}

const ROOT = 'bootfarm/';

export async function extractExport(docker: Docker, image: string, dest: string): Promise<ExportManifest> {
  await mkdir(dest, { recursive: true });
  const container = await docker.createContainer({ Image: image, Cmd: ['/bootfarm'], NetworkDisabled: true });
  try {
    const archive = (await container.getArchive({ path: '/bootfarm' })) as unknown as Readable;
    const extract = tar.extract();
    const done = (async () => {
      for await (const entry of extract as unknown as AsyncIterable<Readable & { header: tar.Header }>) {
        const name = entry.header.name.replace(/^\.?\/?/, '');
        const rel = name.startsWith(ROOT) ? name.slice(ROOT.length) : '';
        const target = path.join(dest, rel);
        if (rel && !target.startsWith(dest + path.sep)) throw new Error(`export entry escapes its directory: ${name}`);
        if (entry.header.type === 'directory') {
          await mkdir(target, { recursive: true });
          entry.resume();
        } else if (entry.header.type === 'file' && rel) {
          await mkdir(path.dirname(target), { recursive: true });
          await pipeline(entry, createWriteStream(target, { mode: 0o644 }));
        } else {
          entry.resume();
        }
      }
    })();
    await pipeline(archive, extract as unknown as NodeJS.WritableStream);
    await done;
  } finally {
    await container.remove({ force: true, v: true });
  }
  const manifest = JSON.parse(await readFile(path.join(dest, 'manifest.json'), 'utf8')) as ExportManifest;
  await verifyManifest(dest, manifest);
  return manifest;
}

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** Every file the manifest names exists with its size and hash. */
async function verifyManifest(dir: string, manifest: ExportManifest): Promise<void> {
  for (const f of manifest.files) {
    const actual = await sha256Of(path.join(dir, f.path)).catch(() => 'missing');
    if (actual !== f.sha256)
      throw new Error(`export ${dir}: ${f.path} is ${actual === 'missing' ? 'missing' : `sha256 ${actual}`}, manifest says ${f.sha256}`);
  }
}
