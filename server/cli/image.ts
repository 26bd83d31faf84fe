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
import { listPublished, planGc, removeVersions, type GcDecision, type RootHolders } from '../image/gc.js';
import { controlSocketPath, sendControlCommand } from '../control-socket.js';

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

function stateDirOf(opts: { stateDir?: string; config?: string }): string {
  if (opts.stateDir) return path.resolve(opts.stateDir);
  if (opts.config) return loadConfig(opts.config).server.stateDir;
  throw new SetupError('say where the running bootfarm keeps its state: --config FILE (its server.stateDir) or --state-dir DIR');
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function gcLines(decisions: GcDecision[], dryRun: boolean): string[] {
  return decisions.map(
    (d) =>
      `${d.keep ? 'keep  ' : dryRun ? 'would remove' : 'removed'} ${d.image}/${d.version} (${mib(d.bytes)})${d.keep ? `: ${d.reasons.join('; ')}` : ''}`,
  );
}

/**
 * The image versions machines hold, from the running server. Without it gc does
 * nothing: a node waiting to reconnect while bootfarm is down holds a version
 * that only bootfarm's records know.
 */
async function rootHolders(stateDir: string): Promise<RootHolders> {
  const answer = await sendControlCommand(controlSocketPath(stateDir), 'root-holders');
  if (answer.outcome === 'error') throw new SetupError(`the running bootfarm refused root-holders: ${String(answer.message)}`);
  const holders = answer as unknown as RootHolders;
  if (holders.backend !== 'builtin')
    throw new SetupError(
      `nbd.backend is ${holders.backend}: bootfarm does not see which image versions nodes attach, so gc cannot tell what is safe to remove`,
    );
  return holders;
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
    .option('-c, --config <file>', "publish into this configuration's images.dir")
    .option('--images-dir <dir>', 'publish into this directory')
    .option('--suite <suite>', 'Debian suite of the base images', 'bookworm')
    .option('--mirror <url>', 'Debian mirror', DEFAULT_MIRROR)
    .option('--base <image>', 'a pullable base image (e.g. debian:bookworm) instead of the local debootstrap ones')
    .option(
      '--kubernetes-version <v>',
      "real kubeadm/kubelet/containerd from the Kubernetes apt repository (e.g. 1.31); default: the lab's kubeadm stand-in",
    )
    .option('--version <version>', 'version name (default: derived from the build, so an unchanged rebuild republishes the same version)')
    .option('--context <dir>', 'the build context (default: imagebuild/ of this checkout)')
    .option('--no-cache', 'build every step again')
    .option('--plain', 'plain progress lines instead of the live view')
    .option('--json', 'print the build report as JSON on stdout')
    .action(
      async (opts: {
        name: string;
        arch: string;
        config?: string;
        imagesDir?: string;
        suite: string;
        mirror: string;
        base?: string;
        kubernetesVersion?: string;
        version?: string;
        context?: string;
        cache: boolean;
        plain?: boolean;
        json?: boolean;
      }) => {
        try {
          const arches = parseArchList(opts.arch);
          const imagesDir = imagesDirOf(opts);
          const docker = await connectDocker();
          const report = await runImageBuild(docker, {
            name: opts.name,
            arches,
            imagesDir,
            suite: opts.suite,
            mirror: opts.mirror,
            base: opts.base,
            kubernetesVersion: opts.kubernetesVersion,
            version: opts.version,
            contextDir: opts.context ? path.resolve(opts.context) : undefined,
            noCache: !opts.cache,
            plain: opts.plain,
            log,
          });
          if (opts.json) {
            process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          } else {
            const p = report.publish;
            process.stdout.write(
              `${path.join(imagesDir, opts.name)}: current -> ${p.version}${p.reused ? ' (unchanged, already published)' : ''}${p.previous && p.previous !== p.version ? ` (was ${p.previous})` : ''}\n`,
            );
          }
        } catch (err) {
          fail(err);
        }
      },
    );

  image
    .command('gc')
    .description(
      "remove published versions no machine can still read: not current, not held by any machine's last root attachment, not open now (asks the running bootfarm)",
    )
    .option('-c, --config <file>', 'the configuration of the running bootfarm (its images.dir and server.stateDir)')
    .option('--images-dir <dir>', "the images directory (instead of the configuration's)")
    .option('--state-dir <dir>', "the running bootfarm's state directory, where its control socket is (instead of the configuration's)")
    .option('--image <name>', 'only this image')
    .option('--keep <n>', 'also keep this many of the newest other versions of each image, for a rollback', '1')
    .option('--dry-run', 'say what would be removed and why the rest is kept; remove nothing')
    .option('--json', 'print the decisions as JSON on stdout')
    .action(
      async (opts: {
        config?: string;
        imagesDir?: string;
        stateDir?: string;
        image?: string;
        keep: string;
        dryRun?: boolean;
        json?: boolean;
      }) => {
        try {
          const keep = Number(opts.keep);
          if (!Number.isInteger(keep) || keep < 0)
            throw new SetupError(`--keep: expected a whole number of versions (0 or more), got ${JSON.stringify(opts.keep)}`);
          const imagesDir = imagesDirOf(opts);
          const holders = await rootHolders(stateDirOf(opts));
          const { versions, current } = await listPublished(imagesDir, opts.image);
          const decisions = planGc(versions, current, holders, keep);
          if (!opts.dryRun) await removeVersions(imagesDir, decisions);
          if (opts.json) process.stdout.write(`${JSON.stringify({ dryRun: opts.dryRun === true, decisions }, null, 2)}\n`);
          else process.stdout.write(`${gcLines(decisions, opts.dryRun === true).join('\n')}\n`);
        } catch (err) {
          fail(err);
        }
      },
    );
}
