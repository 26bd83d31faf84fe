// `bootfarm image build`: bases -> one BuildKit build per arch (live progress per
// arch and stage) -> extract each export -> publish all arches as one version.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { Listr, ListrLogger, ProcessOutput } from 'listr2';
import { SetupError } from '../errors.js';
import { ARCH_INFO, hostArch, type ImageArch } from './arch.js';
import { baseTag, createBaseImage, DEFAULT_MIRROR } from './base.js';
import { ensureBinfmt } from './binfmt.js';
import { BuildFailure, buildImage, type BuildResult } from './build.js';
import { packContext } from './context.js';
import { imageExists } from './docker.js';
import { extractExport } from './extract.js';
import { checkImageName, checkVersionName, contentVersion, publish, type BuiltArch, type PublishResult } from './publish.js';

/** imagebuild/ of this checkout (from server/image/ or dist/server/image/). */
function defaultContextDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..';
  return path.resolve(here, up, 'imagebuild');
}

export interface ImageBuildOptions {
  name: string;
  arches: ImageArch[];
  imagesDir: string;
  suite: string;
  mirror?: string;
  /** A pullable base (e.g. debian:bookworm) instead of the local debootstrap ones. */
  base?: string;
  kubernetesVersion?: string;
  version?: string;
  contextDir?: string;
  noCache?: boolean;
  /** Progress renderer: listr2's default on a terminal, plain lines otherwise. */
  plain?: boolean;
  log?: (line: string) => void;
}

interface ArchReport {
  arch: ImageArch;
  imageId: string;
  executed: string[];
  cached: string[];
  seconds: number;
  sizes: Record<string, number>;
}

export interface ImageBuildReport {
  publish: PublishResult;
  arches: ArchReport[];
}

export async function runImageBuild(docker: Docker, opts: ImageBuildOptions): Promise<ImageBuildReport> {
  checkImageName(opts.name);
  if (opts.version !== undefined) checkVersionName(opts.version);
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const contextDir = opts.contextDir ?? defaultContextDir();
  const native = hostArch();
  for (const line of ensureBinfmt(opts.arches)) log(line);

  // Bases: the local debootstrap images (made here when missing), or a pullable one.
  const toolsBase = opts.base ?? baseTag(opts.suite, native);
  const needed = opts.base ? [] : [...new Set<ImageArch>([native, ...opts.arches])];
  for (const arch of needed) {
    if (await imageExists(docker, baseTag(opts.suite, arch))) continue;
    log(`base image ${baseTag(opts.suite, arch)} is missing: making it (bootfarm image base --arch ${arch} --suite ${opts.suite})`);
    await createBaseImage(docker, { arch, suite: opts.suite, mirror: opts.mirror ?? DEFAULT_MIRROR, log });
  }

  const imageDir = path.join(opts.imagesDir, opts.name);
  const work = path.join(imageDir, `.build-${process.pid}`);
  await mkdir(work, { recursive: true });
  const built: BuiltArch[] = [];
  const reports: ArchReport[] = [];
  const live = !opts.plain && process.stderr.isTTY === true;
  // Progress goes to stderr: stdout carries the result (--json).
  const logger = new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) });
  try {
    const tasks = new Listr(
      opts.arches.map((arch) => ({
        title: `${arch}: build`,
        task: async (_ctx: unknown, task: { title: string; output: string }) => {
          const started = Date.now();
          const tag = `bootfarm/${opts.name}:build-${arch}`;
          const stages = new Map<string, string>();
          let result: BuildResult;
          try {
            result = await buildImage(docker, {
              context: await packContext(contextDir),
              tag,
              target: 'export',
              noCache: opts.noCache,
              buildargs: {
                BASE_IMAGE: opts.base ?? baseTag(opts.suite, arch),
                TOOLS_IMAGE: toolsBase,
                TARGET_PLATFORM: ARCH_INFO[arch].platform,
                TOOLS_PLATFORM: ARCH_INFO[native].platform,
                KERNEL_PACKAGE: ARCH_INFO[arch].kernelPackage,
                KUBERNETES_VERSION: opts.kubernetesVersion ?? '',
                DEBIAN_MIRROR: opts.mirror ?? DEFAULT_MIRROR,
                SUITE: opts.suite,
                ARCH: arch,
              },
              onStep: (step) => {
                stages.set(step.stage, `${step.state === 'running' ? '…' : step.state}`);
                task.title = `${arch}: ${[...stages].map(([s, st]) => `${s} ${st}`).join(', ')}`;
                task.output = `${step.state}: ${step.name}`;
              },
              // On a terminal the live view shows the last line of output; plain
              // output (CI logs) gets only the step changes.
              onLog: (line) => {
                if (live && line.trim()) task.output = line.slice(0, 200);
              },
            });
          } catch (err) {
            if (err instanceof BuildFailure) throw new SetupError(`image build for ${arch} failed at ${err.message}`);
            throw err;
          }
          task.title = `${arch}: extracting the export`;
          const dir = path.join(work, arch);
          const manifest = await extractExport(docker, result.imageId, dir);
          built.push({ arch, dir, manifest, imageId: result.imageId });
          const seconds = (Date.now() - started) / 1000;
          reports.push({
            arch,
            imageId: result.imageId,
            executed: result.executed,
            cached: result.cached,
            seconds,
            sizes: Object.fromEntries(manifest.files.map((f) => [f.path, f.size])),
          });
          const root = manifest.files.find((f) => f.path === 'root.squashfs')?.size ?? 0;
          task.title = `${arch}: built in ${seconds.toFixed(1)} s (${result.executed.length} steps run, ${result.cached.length} cached), kernel ${manifest.kernelVersion}, root.squashfs ${(root / 1048576).toFixed(1)} MiB`;
        },
      })),
      {
        concurrent: false,
        exitOnError: true,
        renderer: live ? 'default' : 'simple',
        rendererOptions: { collapseErrors: false, logger },
        fallbackRendererOptions: { logger },
      },
    );
    await tasks.run();
    const version = opts.version ?? contentVersion(built);
    const published = await publish(opts.imagesDir, opts.name, version, built);
    return { publish: published, arches: reports };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
