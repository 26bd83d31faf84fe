// Base images without a registry: debootstrap a minimal Debian for the target
// arch and `docker load` it from an image archive whose config records that arch
// (dockerd 20.10 ignores `docker import --platform`, and BuildKit then looks
// for the right platform in a registry).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { execa } from 'execa';
import tar from 'tar-stream';
import { SetupError } from '../errors.js';
import { ARCH_INFO, type ImageArch } from './arch.js';

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export function baseTag(suite: string, arch: ImageArch): string {
  return `bootfarm/base:${suite}-${arch}`;
}

export interface BaseOptions {
  arch: ImageArch;
  suite: string;
  mirror?: string;
  log: (line: string) => void;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** debootstrap (minbase) into a temp dir, then load it as bootfarm/base:<suite>-<arch>. */
export async function createBaseImage(docker: Docker, opts: BaseOptions): Promise<string> {
  const tag = baseTag(opts.suite, opts.arch);
  const mirror = opts.mirror ?? DEFAULT_MIRROR;
  const work = await mkdtemp(path.join(process.env.BOOTFARM_TMPDIR ?? tmpdir(), 'bootfarm-base-'));
  const root = path.join(work, 'root');
  try {
    opts.log(`debootstrap ${opts.suite} ${opts.arch} from ${mirror}`);
    const boot = await execa('debootstrap', ['--variant=minbase', `--arch=${opts.arch}`, opts.suite, root, mirror], {
      reject: false,
      all: true,
    });
    if (boot.failed) {
      if ((boot as { code?: string }).code === 'ENOENT')
        throw new SetupError('debootstrap is not installed: apt-get install debootstrap (scripts/install-system-deps.sh image)');
      throw new SetupError(
        `debootstrap ${opts.suite} ${opts.arch} failed (exit ${boot.exitCode}):\n${String(boot.all ?? '')
          .split('\n')
          .slice(-15)
          .join('\n')}`,
      );
    }
    // The host's resolver must not end up in node images; build steps get the
    // host's from dockerd anyway. No apt lists or debs in the layer.
    await writeFile(path.join(root, 'etc/resolv.conf'), '# bootfarm: no resolver configured in the image\n');
    await writeFile(path.join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    await execa('sh', ['-c', 'rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* var/log/*.log', ''], { cwd: root });

    opts.log(`packing the ${opts.arch} root as an image layer`);
    const layer = path.join(work, 'layer.tar');
    await execa('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', root, '-cf', layer, '.']);
    const diffId = await sha256File(layer);
    const info = ARCH_INFO[opts.arch];
    const config = Buffer.from(
      JSON.stringify({
        architecture: info.oci.architecture,
        ...(info.oci.variant ? { variant: info.oci.variant } : {}),
        os: 'linux',
        created: new Date().toISOString(),
        config: { Cmd: ['/bin/bash'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
        rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
        history: [
          {
            created: new Date().toISOString(),
            created_by: `bootfarm image base: debootstrap --variant=minbase --arch=${opts.arch} ${opts.suite}`,
          },
        ],
      }),
    );
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: [`${diffId}/layer.tar`] }]));

    // docker save/load archive: manifest.json + config + <id>/layer.tar.
    const pack = tar.pack();
    const layerSize = (await stat(layer)).size;
    const feed = (async () => {
      pack.entry({ name: configName }, config);
      pack.entry({ name: 'manifest.json' }, manifest);
      const entry = pack.entry({ name: `${diffId}/layer.tar`, size: layerSize });
      await pipeline(createReadStream(layer), entry);
      pack.finalize();
    })();
    opts.log(`docker load ${tag} (${(layerSize / 1048576).toFixed(0)} MiB)`);
    // tar-stream packs are streamx streams: wrap them for dockerode's Node stream API.
    const response = await docker.loadImage(Readable.from(pack), { quiet: true });
    let text = '';
    for await (const chunk of response as Readable) text += String(chunk);
    await feed;
    if (/"error"/.test(text)) throw new SetupError(`docker load of ${tag} failed: ${text.trim()}`);
    const inspected = await docker.getImage(tag).inspect();
    if (inspected.Architecture !== info.oci.architecture) {
      throw new SetupError(`docker load recorded ${tag} as ${inspected.Architecture}, expected ${info.oci.architecture}`);
    }
    opts.log(`${tag} ready (${inspected.Os}/${inspected.Architecture})`);
    return tag;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
