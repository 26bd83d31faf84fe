// Edge: the interface set-up a run needs (`ip` routes and addresses, sysctls), each
// step remembered so cleanup removes exactly what was added. Why each step is needed:
// the socket notes in server/lab/pi/dhcp-phase.ts.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

function runIp(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function readText(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function writeSysctl(name: string, value: string): Promise<string | undefined> {
  const file = `/proc/sys/${name.replace(/\./g, '/')}`;
  const before = await readText(file);
  await writeFile(file, value);
  return before;
}

/** Remembers what it added so cleanup removes exactly that, in reverse. */
export class NetConfig {
  readonly commands: string[] = [];
  private readonly undo: Array<() => Promise<void>> = [];

  constructor(
    private readonly iface: string,
    private readonly log: (l: string) => void,
  ) {}

  /** `ip ARGS`; on success registers `ip UNDO`. "File exists" counts as already there (nothing to undo). */
  async add(args: string[], undoArgs: string[]): Promise<void> {
    const r = await runIp(args);
    this.commands.push(`ip ${args.join(' ')}${r.code === 0 ? '' : ` -> ${r.stderr.trim()}`}`);
    if (r.code === 0) {
      this.undo.push(async () => {
        const u = await runIp(undoArgs);
        // Removing an interface's last address also flushes its routes: "No such process" is fine.
        const note = u.code === 0 ? '' : /No such process|Cannot assign/i.test(u.stderr) ? ' (already gone)' : ` -> ${u.stderr.trim()}`;
        this.commands.push(`ip ${undoArgs.join(' ')}${note}`);
      });
      return;
    }
    if (/File exists|already assigned/i.test(r.stderr)) return;
    throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }

  /** `ip ARGS` with nothing to undo. */
  async run(args: string[]): Promise<void> {
    const r = await runIp(args);
    this.commands.push(`ip ${args.join(' ')}${r.code === 0 ? '' : ` -> ${r.stderr.trim()}`}`);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }

  async sysctl(name: string, value: string): Promise<void> {
    const before = await writeSysctl(name, value);
    this.commands.push(`sysctl ${name}=${value} (was ${before})`);
    if (before !== undefined && before !== value) {
      this.undo.push(async () => {
        await writeSysctl(name, before);
        this.commands.push(`sysctl ${name}=${before}`);
      });
    }
  }

  mark(): number {
    return this.undo.length;
  }

  /** Undoes everything added after `mark` (all by default). */
  async rollback(mark = 0): Promise<void> {
    while (this.undo.length > mark) {
      const step = this.undo.pop() as () => Promise<void>;
      try {
        await step();
      } catch (e) {
        this.log(`cleanup step failed: ${(e as Error).message}`);
      }
    }
  }

  async ipv4Addresses(): Promise<string[]> {
    const r = await runIp(['-j', '-4', 'addr', 'show', 'dev', this.iface]);
    if (r.code !== 0) throw new Error(`interface ${this.iface}: ${r.stderr.trim()}`);
    const parsed = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
    return parsed.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  }
}
