// nbdkit as the NBD backend: `nbdkit -f --exit-with-parent -r file dir=DIR`, in
// the foreground under bootfarm (it dies with us), its output streamed into
// bootfarm's log, restarted if it exits. nbdkit's file plugin serves the files
// directly inside DIR, so export names cannot contain '/': an export <image>/<arch>
// is served as <image>_<arch> (server/util/nbdkit-export-name.ts).
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from 'pino';
import { listExternalExports, type ExternalExport } from './export-list.js';
import { waitForPort } from '../../util/wait-for-port.js';
import { SetupError } from '../../errors.js';
import { nbdkitExportName } from '../../util/nbdkit-export-name.js';

export interface ExternalBackendOptions {
  port: number;
  host: string;
  stateDir: string;
  imagesDir: string;
  staticExports: ExternalExport[];
}

export class NbdkitBackend {
  private child: ResultPromise | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: ExternalBackendOptions,
    private readonly logger: Logger,
  ) {}

  private async writeExportDir(): Promise<string> {
    const dir = path.join(this.options.stateDir, 'nbdkit-exports');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const exp of await listExternalExports(this.options.imagesDir, this.options.staticExports)) {
      symlinkSync(exp.file, path.join(dir, nbdkitExportName(exp.name)));
    }
    return dir;
  }

  async start(): Promise<void> {
    const dir = await this.writeExportDir();
    const args = ['-f', '--exit-with-parent', '-r', '-i', this.options.host, '-p', String(this.options.port), 'file', `dir=${dir}`];
    const child = execa('nbdkit', args, { reject: false, all: true, buffer: false });
    this.child = child;
    // Ready once the port accepts; fail early with nbdkit's own words if it exits.
    const exited = child.then((r) => r);
    const ready = waitForPort(this.options.host === '0.0.0.0' ? '127.0.0.1' : this.options.host, this.options.port, 10_000);
    const first = await Promise.race([ready.then(() => 'ready' as const), exited.then(() => 'exited' as const)]);
    if (first === 'exited') {
      const r = await exited;
      if ((r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(r.message)))
        throw new SetupError('nbd.backend nbdkit: the nbdkit binary is not installed (apt-get install nbdkit)');
      throw new SetupError(
        `nbd.backend nbdkit: nbdkit exited at start (${r.exitCode}): ${String(r.all ?? r.message)
          .trim()
          .split('\n')
          .slice(-3)
          .join(' | ')}`,
      );
    }
    void this.follow(child);
    this.logger.info({ backend: 'nbdkit', pid: child.pid, args }, 'nbd backend started');
  }

  private async follow(child: ResultPromise): Promise<void> {
    if (child.all) {
      for await (const line of child.all) this.logger.info({ backend: 'nbdkit' }, String(line));
    }
    const result = await child;
    if (this.stopping) return;
    this.logger.warn({ backend: 'nbdkit', exitCode: result.exitCode, signal: result.signal }, 'nbd backend exited; restarting in 1 s');
    this.restartTimer = setTimeout(() => {
      this.start().catch((err: Error) => this.logger.error({ err: err.message }, 'nbd backend restart failed'));
    }, 1000);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.child) {
      this.child.kill('SIGTERM');
      await this.child.catch(() => undefined);
    }
  }
}
