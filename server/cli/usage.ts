// How the command line answers a mistake: an unknown command or option, a
// missing argument or no command at all is a usage error, exit 2 with one line
// naming it, as most CLIs do; help that was asked for exits 0.
import type { Command, CommanderError } from 'commander';

/** `bootfarm node list` for the `list` command under `node`. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function* everyCommand(cmd: Command): Generator<Command> {
  yield cmd;
  for (const sub of cmd.commands) yield* everyCommand(sub);
}

/**
 * The first word of `args` that names no subcommand of the command group before
 * it. Commander checks the help flag before it looks for an unknown command, so
 * `bootfarm pi eeprom-config --help` would print the top-level help and exit 0;
 * this walk runs first.
 */
function findUnknownCommand(program: Command, args: readonly string[]): { group: Command; word: string } | undefined {
  let group = program;
  for (const word of args) {
    // A command without subcommands takes its own operands; options are commander's to check.
    if (group.commands.length === 0 || word.startsWith('-')) return undefined;
    // Commander's help command: `bootfarm help image` shows `bootfarm image --help`.
    if (word === 'help') continue;
    const sub = group.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) return { group, word };
    group = sub;
  }
  return undefined;
}

/** Exit code for the end commander asks for: 0 when help or the version was asked for, 2 for every usage error. */
function usageExitCode(err: CommanderError): number {
  if (err.exitCode === 0) return 0;
  // A spawned executable subcommand ended: its own status (bootfarm has none today).
  if (err.code === 'commander.executeSubCommandAsync') return err.exitCode;
  return 2;
}

/** Applies the rules above to `program` and every command under it, then checks `args` (argv without node and the script). */
export function enforceUsage(program: Command, args: readonly string[]): void {
  for (const cmd of everyCommand(program)) {
    const prefix = commandPath(cmd);
    cmd.configureOutput({
      // Commander writes "error: <what>" and maybe "\n(Did you mean <other>?)": one line, named after the command.
      outputError: (str, write) =>
        write(
          `${prefix}: ${str
            .trim()
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')}\n`,
        ),
    });
    cmd.exitOverride((err) => process.exit(usageExitCode(err)));
  }
  const unknown = findUnknownCommand(program, args);
  if (unknown) {
    const group = commandPath(unknown.group);
    unknown.group.error(`unknown command '${unknown.word}' (see ${group} --help)`, { code: 'commander.unknownCommand', exitCode: 2 });
  }
}
