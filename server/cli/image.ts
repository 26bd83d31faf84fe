// `bootfarm image base` and `bootfarm image build`: the image builder's command line.
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { SetupError } from '../errors.js';
import { parseArchList } from '../image/arch.js';
import { createBaseImage, DEFAULT_MIRROR } from '../image/base.js';
import { ensureBinfmt } from '../image/binfmt.js';
import { connectDocker } from '../image/docker.js';
import { runImageBuild } from '../image/run-build.js';

function fail(err: unknown): never {
  if (err instanceof SetupError || err instanceof ConfigError) {
    process.stderr.write(`bootfarm: ${(err as Error).message}\n`);
    process.exit(2);
  }
  process.stderr.write(`bootfarm: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function imagesDirOf(opts: { imagesDir?: string; config?: string }): string {
  if (opts.imagesDir) return path.resolve(opts.imagesDir);
  if (opts.config) return loadConfig(opts.config).images.dir;
  throw new SetupError('say where images are published: --config FILE (its images.dir) or --images-dir DIR');
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('build and publish netboot root images (Docker multistage, per arch)');

  image
    .command('base')
    .description('make the local base image bootfarm/base:<suite>-<arch> with debootstrap (no registry needed)')
    .requiredOption('--arch <arches>', 'amd64, arm64, armhf (comma separated)')
    .option('--suite <suite>', 'Debian suite', 'bookworm')
    .option('--mirror <url>', 'Debian mirror', DEFAULT_MIRROR)
    .action(async (opts: { arch: string; suite: string; mirror: string }) => {
      try {
        const arches = parseArchList(opts.arch);
        for (const line of ensureBinfmt(arches)) log(line);
        const docker = await connectDocker();
        for (const arch of arches) {
          const tag = await createBaseImage(docker, { arch, suite: opts.suite, mirror: opts.mirror, log });
          process.stdout.write(`${tag}\n`);
        }
      } catch (err) {
        fail(err);
      }
    });

  image
    .command('build')
    .description('build root.squashfs, kernel, initrd (and the Pi firmware set) per arch and publish them as one version')
    .requiredOption('--name <image>', 'image name (images/<name>/<version>/<arch>/)')
    .option('--arch <arches>', 'amd64, arm64, armhf (comma separated)', 'amd64')
    .option('-c, --config <file>', 'publish into this configuration\'s images.dir')
    .option('--images-dir <dir>', 'publish into this directory')
    .option('--suite <suite>', 'Debian suite of the base images', 'bookworm')
    .option('--mirror <url>', 'Debian mirror', DEFAULT_MIRROR)
    .option('--base <image>', 'a pullable base image (e.g. debian:bookworm) instead of the local debootstrap ones')
    .option('--kubernetes-version <v>', 'real kubeadm/kubelet/containerd from the Kubernetes apt repository (e.g. 1.31); default: the lab\'s kubeadm stand-in')
    .option('--version <version>', 'version name (default: derived from the build, so an unchanged rebuild republishes the same version)')
    .option('--context <dir>', 'the build context (default: imagebuild/ of this checkout)')
    .option('--no-cache', 'build every step again')
    .option('--plain', 'plain progress lines instead of the live view')
    .option('--json', 'print the build report as JSON on stdout')
    .action(async (opts: {
      name: string; arch: string; config?: string; imagesDir?: string; suite: string; mirror: string; base?: string;
      kubernetesVersion?: string; version?: string; context?: string; cache: boolean; plain?: boolean; json?: boolean;
    }) => {
      try {
        const arches = parseArchList(opts.arch);
        const imagesDir = imagesDirOf(opts);
        const docker = await connectDocker();
        const report = await runImageBuild(docker, {
          name: opts.name, arches, imagesDir, suite: opts.suite, mirror: opts.mirror, base: opts.base,
          kubernetesVersion: opts.kubernetesVersion, version: opts.version, contextDir: opts.context ? path.resolve(opts.context) : undefined,
          noCache: !opts.cache, plain: opts.plain, log,
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          const p = report.publish;
          process.stdout.write(`${path.join(imagesDir, opts.name)}: current -> ${p.version}${p.reused ? ' (unchanged, already published)' : ''}${p.previous && p.previous !== p.version ? ` (was ${p.previous})` : ''}\n`);
        }
      } catch (err) {
        fail(err);
      }
    });
}
