// The control socket: a Unix socket in server.stateDir (as Kea's control socket)
// through which `bootfarm reload` asks the running server to reload and reads the
// outcome back, so the operator sees a refusal's file:line:key where they typed
// the command, and `bootfarm image gc` asks which image versions machines hold. Only the owner of the state directory (0700) can reach it. One
// JSON line in ({"command":"config-reload"}), one JSON line out, then close.
import net from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { SetupError } from './errors.js';

const CONTROL_SOCKET = 'control.sock';
/** A request is one short line: more than this is not a client of ours. */
const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 5000;

/** config-reload: `bootfarm reload`; root-holders: what `bootfarm image gc` must keep (server/image/gc.ts). */
export type ControlCommand = 'config-reload' | 'root-holders';
const COMMANDS: ReadonlySet<string> = new Set<ControlCommand>(['config-reload', 'root-holders']);

/** sun_path holds 108 bytes with the terminating NUL; Node cuts a longer path short (elsewhere) instead of failing. */
const MAX_SOCKET_PATH_BYTES = 107;

function tooLong(file: string): boolean {
  return Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES;
}

export function controlSocketPath(stateDir: string): string {
  return path.join(stateDir, CONTROL_SOCKET);
}

/** Whether something answers on `file` (another bootfarm on the same state directory). */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export class ControlSocket {
  private readonly server: net.Server;
  private listening = false;

  constructor(
    private readonly file: string,
    handle: (command: ControlCommand) => object,
    private readonly logger: Logger,
  ) {
    this.server = net.createServer((conn) => {
      let buffered = Buffer.alloc(0);
      conn.setTimeout(REQUEST_TIMEOUT_MS, () => conn.destroy());
      conn.on('error', () => undefined);
      conn.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf(0x0a);
        if (end < 0) {
          if (buffered.length > MAX_REQUEST_BYTES) conn.destroy();
          return;
        }
        conn.removeAllListeners('data');
        conn.end(`${JSON.stringify(this.answer(buffered.subarray(0, end), handle))}\n`);
      });
    });
  }

  private answer(line: Buffer, handle: (command: ControlCommand) => object): object {
    let command: unknown;
    try {
      command = (JSON.parse(line.toString('utf8')) as { command?: unknown } | null)?.command;
    } catch {
      return { outcome: 'error', message: 'expected one JSON line: {"command":"config-reload"}' };
    }
    if (typeof command !== 'string' || !COMMANDS.has(command))
      return { outcome: 'error', message: `unknown command; expected one of ${[...COMMANDS].join(', ')}` };
    try {
      return handle(command as ControlCommand);
    } catch (err) {
      // A failure of the command is this request's answer, never the server's end.
      this.logger.error({ command, err: (err as Error).message }, 'control command failed');
      return { outcome: 'error', message: (err as Error).message };
    }
  }

  async start(): Promise<void> {
    // Serving matters more than the socket: without it, SIGHUP still reloads.
    const unavailable = 'control socket unavailable: `bootfarm reload` cannot reach this server; SIGHUP still reloads';
    if (tooLong(this.file)) {
      this.logger.warn({ socket: this.file, reason: `the path is longer than ${MAX_SOCKET_PATH_BYTES} bytes` }, unavailable);
      return;
    }
    // A socket file left by a bootfarm that died is removed; one that answers belongs to a running one.
    if (await answers(this.file)) throw new SetupError(`another bootfarm answers on ${this.file}: it serves this state directory already`);
    try {
      unlinkSync(this.file);
    } catch {
      /* not there */
    }
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(this.file, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.logger.warn({ socket: this.file, reason: (err as Error).message }, unavailable);
      return;
    }
    this.listening = true;
    chmodSync(this.file, 0o600);
    this.logger.info({ socket: this.file }, 'control socket listening (bootfarm reload)');
  }

  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Sends one command to the server behind `file` and returns its answer. */
export function sendControlCommand(file: string, command: ControlCommand, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  if (tooLong(file))
    return Promise.reject(
      new SetupError(
        `${file}: the path is longer than a Unix socket's ${MAX_SOCKET_PATH_BYTES} bytes, so the server has no control socket; send it SIGHUP instead`,
      ),
    );
  return new Promise((resolve, reject) => {
    const conn = net.connect(file);
    let text = '';
    conn.setTimeout(timeoutMs, () => conn.destroy(new Error(`no answer on ${file} within ${timeoutMs / 1000} s`)));
    conn.once('connect', () => conn.write(`${JSON.stringify({ command })}\n`));
    conn.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    conn.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new SetupError(`no bootfarm is serving with this state directory (nothing answers on ${file})`)
          : err,
      );
    });
    conn.once('end', () => {
      try {
        resolve(JSON.parse(text) as Record<string, unknown>);
      } catch {
        reject(new Error(`unexpected answer on ${file}: ${text.slice(0, 200)}`));
      }
    });
  });
}
