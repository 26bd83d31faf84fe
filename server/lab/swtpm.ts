// Software TPM 2.0 (swtpm) for lab guests and tests. One state directory is one
// TPM: its endorsement seed, and so its EK, lives there and survives restarts,
// so the EK read once over TCP with tpm2-tools (to register it) is the EK the
// QEMU guest later gets from the same directory.
//   tcp:  swtpm on 127.0.0.1:port (control port+1) in a namespace, for tpm2-tools
//         (TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=PORT)
//   qemu: swtpm on a Unix control socket; QEMU attaches it with qemuTpmArgs()
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetLab } from './netlab.js';
import type { Background } from './proc.js';

export type SwtpmListen = { kind: 'tcp'; port: number } | { kind: 'qemu'; socket: string };

/** Starts swtpm for the TPM kept in `stateDir` (created if missing); `log` gets swtpm's command trace (level 20). */
export function spawnSwtpm(lab: NetLab, ns: string, stateDir: string, listen: SwtpmListen, log?: string): Background {
  if (!existsSync(stateDir)) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const args = ['socket', '--tpm2', '--tpmstate', `dir=${stateDir}`];
  if (listen.kind === 'tcp') {
    // No firmware sends TPM2_Startup here: swtpm does it, so tools can talk at once.
    args.push(
      '--server',
      `type=tcp,port=${listen.port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${listen.port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    );
  } else {
    // QEMU initialises the TPM and the guest firmware sends TPM2_Startup.
    args.push('--ctrl', `type=unixio,path=${listen.socket}`, '--terminate');
  }
  if (log) args.push('--log', `file=${log},level=20`);
  return lab.spawn(ns, 'swtpm', args, `swtpm:${path.basename(stateDir)}`);
}

/** TPM2TOOLS_TCTI for a tcp-mode swtpm, as seen from inside its namespace. */
export function swtpmTcti(port: number): string {
  return `swtpm:host=127.0.0.1,port=${port}`;
}

/** Starts a tcp-mode swtpm and resolves once it answers TPM commands (tpm2_getrandom). */
export async function startTcpSwtpm(lab: NetLab, ns: string, stateDir: string, port: number, timeoutMs = 20_000): Promise<Background> {
  const bg = spawnSwtpm(lab, ns, stateDir, { kind: 'tcp', port });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (bg.child.exitCode !== null) throw new Error(`swtpm exited (${bg.child.exitCode}):\n${bg.lines.join('\n')}`);
    if ((await lab.exec(ns, 'env', [`TPM2TOOLS_TCTI=${swtpmTcti(port)}`, 'tpm2_getrandom', '--hex', '4'])).code === 0) return bg;
    if (Date.now() > deadline) {
      await bg.stop('SIGTERM', 3000);
      throw new Error(`swtpm on port ${port} did not answer within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The EK public area (TPM2B_PUBLIC) of the TPM kept in `stateDir`, as an operator
 * registers it (`bootfarm node add --ek`, a node's tpm.ek): tpm2_createek over a
 * short-lived tcp-mode swtpm. The TPM must not be attached to a guest meanwhile.
 */
export async function enrolEk(lab: NetLab, ns: string, stateDir: string, port: number, alg: 'rsa' | 'ecc' = 'rsa'): Promise<Buffer> {
  const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-enrol-'));
  const bg = await startTcpSwtpm(lab, ns, stateDir, port);
  try {
    const out = path.join(work, 'ek.pub');
    const r = await lab.exec(ns, 'env', [
      `TPM2TOOLS_TCTI=${swtpmTcti(port)}`,
      'tpm2_createek',
      '-c',
      path.join(work, 'ek.ctx'),
      '-G',
      alg,
      '-u',
      out,
    ]);
    if (r.code !== 0) throw new Error(`tpm2_createek failed (${r.code}): ${r.stderr}`);
    return readFileSync(out);
  } finally {
    await bg.stop('SIGTERM', 3000);
    rmSync(work, { recursive: true, force: true });
  }
}

/** QEMU arguments attaching the swtpm on `socket` as a TIS TPM (x86 guests). */
export function qemuTpmArgs(socket: string): string[] {
  return ['-chardev', `socket,id=chrtpm,path=${socket}`, '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', 'tpm-tis,tpmdev=tpm0'];
}
