// `bootfarm server-image`: builds bootfarm's own server image (the top-level
// Dockerfile) with no registry needed.
import type { Command } from 'commander';
import { DEFAULT_MIRROR } from '../image/base.js';
import { connectDocker } from '../image/docker.js';
import { buildServerImage, DEFAULT_SERVER_TAG } from '../lab/server-image.js';

/** `fail` is the CLI's error exit (main.ts): one line for a SetupError, a stack otherwise. */
export function registerServerImageCommand(program: Command, fail: (err: unknown) => never): void {
  program
    .command('server-image')
    .description(
      "build bootfarm's server image from the top-level Dockerfile; without --base, on a local base made with debootstrap plus this host's Node runtime (no registry needed)",
    )
    .option('--tag <tag>', 'tag of the server image', DEFAULT_SERVER_TAG)
    .option(
      '--base <image>',
      'a base image with Node >= 20.19 and npm (e.g. node:20-bookworm-slim) instead of the local bootfarm/node-base:<suite>-<arch>',
    )
    .option('--suite <suite>', 'Debian suite of the local base', 'bookworm')
    .option('--mirror <url>', 'Debian mirror for the local base', DEFAULT_MIRROR)
    .option('--context <dir>', 'the bootfarm checkout holding the Dockerfile (default: this one)')
    .option('--no-cache', 'build every step again (the node base too)')
    .option('--json', 'print the build report as JSON on stdout')
    .action(
      async (opts: { tag: string; base?: string; suite: string; mirror: string; context?: string; cache: boolean; json?: boolean }) => {
        try {
          const docker = await connectDocker();
          // Progress goes to stderr, line by line; stdout carries the result.
          const report = await buildServerImage(docker, {
            tag: opts.tag,
            base: opts.base,
            suite: opts.suite,
            mirror: opts.mirror,
            repoDir: opts.context,
            noCache: !opts.cache,
            log: (line) => process.stderr.write(`${line}\n`),
          });
          process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${report.tag}\n`);
        } catch (err) {
          fail(err);
        }
      },
    );
}
