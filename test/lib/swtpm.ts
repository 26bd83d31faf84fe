// A software TPM 2.0 (swtpm) for tests, in a test namespace so its fixed TCP
// ports cannot collide with anything else on the machine, and tpm2-tools run
// against it. Each instance gets its own state directory, so its endorsement
// seed, and so its EK, differs from every other instance's.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetLab } from '../../server/lab/netlab.js';
import type { Background, RunResult } from '../../server/lab/proc.js';
import { startTcpSwtpm, swtpmTcti } from '../../server/lab/swtpm.js';

export interface TpmKeys {
  ekPub: Buffer;
  akPub: Buffer;
  akName: Buffer;
  ekCtx: string;
  akCtx: string;
}

export class Swtpm {
  private constructor(
    readonly lab: NetLab,
    readonly ns: string,
    readonly port: number,
    readonly dir: string,
    readonly bg: Background,
  ) {}

  /** TPM2TOOLS_TCTI for this instance, as seen from inside its namespace. */
  get tcti(): string {
    return swtpmTcti(this.port);
  }

  /**
   * Starts swtpm on 127.0.0.1:port (control channel port+1) in `ns` for the TPM
   * kept in `stateDir` (a new one by default); resolves once it answers TPM commands.
   */
  static async start(lab: NetLab, ns: string, port: number, stateDir?: string): Promise<Swtpm> {
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-swtpm-'));
    return new Swtpm(lab, ns, port, dir, await startTcpSwtpm(lab, ns, stateDir ?? path.join(dir, 'state'), port));
  }

  tool(name: string, args: string[]): Promise<RunResult> {
    return this.lab.exec(this.ns, 'env', [`TPM2TOOLS_TCTI=${this.tcti}`, name, ...args]);
  }

  async toolOk(name: string, args: string[]): Promise<string> {
    const r = await this.tool(name, args);
    if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** Creates the EK (default template of `alg`) and an AK certified to it; files land in a fresh directory. Flushes the TPM's transient objects after. */
  async createKeys(alg: 'rsa' | 'ecc', tag: string): Promise<TpmKeys> {
    const d = mkdtempSync(path.join(this.dir, `${tag}-`));
    const f = (name: string) => path.join(d, name);
    await this.toolOk('tpm2_createek', ['-c', f('ek.ctx'), '-G', alg, '-u', f('ek.pub')]);
    await this.toolOk('tpm2_createak', [
      '-C',
      f('ek.ctx'),
      '-c',
      f('ak.ctx'),
      '-G',
      alg,
      '-g',
      'sha256',
      '-s',
      alg === 'rsa' ? 'rsassa' : 'ecdsa',
      '-u',
      f('ak.pub'),
      '-n',
      f('ak.name'),
      '-r',
      f('ak.priv'),
    ]);
    await this.flush();
    return {
      ekPub: readFileSync(f('ek.pub')),
      akPub: readFileSync(f('ak.pub')),
      akName: readFileSync(f('ak.name')),
      ekCtx: f('ek.ctx'),
      akCtx: f('ak.ctx'),
    };
  }

  /** tpm2_activatecredential of a tpm2-tools credential file with these keys (the EK authorised by PolicySecret(endorsement)). */
  async activate(keys: TpmKeys, credentialFile: string): Promise<RunResult & { secret?: Buffer }> {
    const session = path.join(path.dirname(credentialFile), `session-${path.basename(credentialFile)}.ctx`);
    const out = `${credentialFile}.recovered`;
    await this.toolOk('tpm2_startauthsession', ['--policy-session', '-S', session]);
    try {
      await this.toolOk('tpm2_policysecret', ['-S', session, '-c', 'e']);
      const r = await this.tool('tpm2_activatecredential', [
        '-c',
        keys.akCtx,
        '-C',
        keys.ekCtx,
        '-i',
        credentialFile,
        '-o',
        out,
        '-P',
        `session:${session}`,
      ]);
      return r.code === 0 ? { ...r, secret: readFileSync(out) } : r;
    } finally {
      await this.tool('tpm2_flushcontext', [session]);
      await this.flush();
    }
  }

  /** The tools leave loaded objects behind; a TPM holds only a few. */
  async flush(): Promise<void> {
    await this.toolOk('tpm2_flushcontext', ['-t']);
  }

  stop(): Promise<number | null> {
    return this.bg.stop('SIGTERM', 3000);
  }
}
