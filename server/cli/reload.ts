// `bootfarm reload`: asks the running server to re-read its configuration (as
// SIGHUP does) through the control socket in its state directory, and prints the
// outcome: what changed and which keys wait for a restart, or why the file was
// refused (exit 2, the same file:line:key lines as `bootfarm config check`).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parseDocument } from 'yaml';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { controlSocketPath, sendControlCommand } from '../control-socket.js';
import type { ReloadOutcome } from '../reload.js';
import { SetupError } from '../errors.js';

/**
 * The state directory the configuration names. The file may be the broken edit
 * the operator wants the server to refuse, so server.stateDir is also read from
 * a file that does not validate; only a file without one is an error here.
 */
function stateDirOf(file: string): string {
  try {
    return loadConfig(file).server.stateDir;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    let stateDir: unknown;
    try {
      stateDir = (parseDocument(readFileSync(file, 'utf8')).toJS() as { server?: { stateDir?: unknown } } | null)?.server?.stateDir;
    } catch {
      throw err;
    }
    if (typeof stateDir !== 'string' || stateDir.length === 0) throw err;
    return path.resolve(path.dirname(path.resolve(file)), stateDir);
  }
}

function print(answer: ReloadOutcome): void {
  if (answer.outcome === 'refused') {
    process.stderr.write(`bootfarm: reload refused; the running configuration keeps serving:\n${answer.problems.join('\n')}\n`);
    return;
  }
  const { added, removed, changed } = answer.nodes;
  process.stdout.write(
    `${answer.file}: reloaded (nodes: ${added} added, ${removed} removed, ${changed} changed; ${answer.profiles} profiles)\n`,
  );
  if (answer.restartRequired.length > 0)
    process.stderr.write(`bootfarm: changed but kept until a restart: ${answer.restartRequired.join(', ')}\n`);
}

export function registerReloadCommand(program: Command, fail: (err: unknown) => never): void {
  program
    .command('reload')
    .description(
      'make the running server re-read its configuration file (as SIGHUP does) and print the outcome; an invalid file is refused and the running configuration keeps serving',
    )
    .option('-c, --config <file>', 'the configuration file of the running server (to find its server.stateDir)')
    .option('--state-dir <dir>', "the running server's server.stateDir, instead of --config")
    .action(async (opts: { config?: string; stateDir?: string }) => {
      try {
        if (!opts.config && !opts.stateDir)
          throw new ConfigError([
            { file: '(command line)', line: undefined, column: undefined, key: '', message: 'give --config <file> or --state-dir <dir>' },
          ]);
        const stateDir = opts.stateDir ?? stateDirOf(opts.config as string);
        const answer = (await sendControlCommand(controlSocketPath(stateDir), 'config-reload')) as
          ReloadOutcome | { outcome: 'error'; message: string };
        if (answer.outcome === 'error') throw new SetupError(`the server answered: ${answer.message}`);
        print(answer);
        process.exit(answer.outcome === 'applied' ? 0 : 2);
      } catch (err) {
        fail(err);
      }
    });
}
