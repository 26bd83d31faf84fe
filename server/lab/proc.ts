// Running real peer programs from tests: bounded in time, output captured, and
// background processes ended by the PID we started.
import { execFile, spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function runOk(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A background process whose output lines are collected and can be awaited. */
export class Background {
  readonly lines: string[] = [];
  private waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    // Chunks from a pipe do not end on line boundaries: keep the partial tail per stream.
    const partial = new Map<NodeJS.ReadableStream, string>();
    const onData = (stream: NodeJS.ReadableStream) => (chunk: Buffer) => {
      const text = (partial.get(stream) ?? '') + chunk.toString();
      const parts = text.split('\n');
      partial.set(stream, parts.pop() ?? '');
      for (const line of parts) {
        if (!line) continue;
        this.lines.push(line);
        for (const w of [...this.waiters]) {
          if (w.test(line)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    };
    if (child.stdout) child.stdout.on('data', onData(child.stdout));
    if (child.stderr) child.stderr.on('data', onData(child.stderr));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static start(cmd: string, args: string[], label = cmd): Background {
    return new Background(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }), label);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Resolves with the first line (from line index `since` on, seen or future) that passes `test`. */
  waitFor(test: (line: string) => boolean, timeoutMs: number, what = 'a matching line', since = 0): Promise<string> {
    const seen = this.lines.slice(since).find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}; last lines:\n${this.lines.slice(-15).join('\n')}`),
        );
      }, timeoutMs);
      const done = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
