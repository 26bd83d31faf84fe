// The lab's TPMs for `--admission tpm` (kubernetes.admission: tpm): one swtpm
// state directory per QEMU node under the lab's work dir. Its EK is registered
// (read over TCP with tpm2-tools) before the node powers on, as an operator
// enrols a machine; the guest then gets that same TPM over a Unix socket. An
// impostor node (--tpm-impostor) boots the same image on a VM whose swtpm is a
// different, never-registered TPM: bootfarm must refuse it (ek-mismatch).
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { NetLab } from './netlab.js';
import type { Background } from './proc.js';
import { enrolEk, spawnSwtpm } from './swtpm.js';

/** The TPM registered for `hostname`, and the other one its impostor boots with. */
function tpmDir(workDir: string, hostname: string, which: 'registered' | 'impostor'): string {
  return path.join(workDir, 'tpm', hostname, which);
}

/**
 * Registers each node's TPM: its EK (TPM2B_PUBLIC) base64, as a node's `tpm.ek`
 * in the lab's config. `ns` needs a loopback: tpm2-tools reach swtpm on 127.0.0.1.
 */
export async function enrolLabTpms(
  lab: NetLab,
  ns: string,
  workDir: string,
  hostnames: string[],
  basePort = 2321,
): Promise<Map<string, string>> {
  const eks = new Map<string, string>();
  // One at a time: each enrolment's swtpm ends before the next starts on the same ports.
  for (const hostname of hostnames) {
    eks.set(hostname, (await enrolEk(lab, ns, tpmDir(workDir, hostname, 'registered'), basePort)).toString('base64'));
  }
  return eks;
}

/**
 * Starts the swtpm a node's QEMU attaches (GuestOptions.tpmSocket): the registered
 * TPM, or for an impostor a fresh one. Resolves once its control socket exists.
 */
export async function startNodeTpm(
  lab: NetLab,
  ns: string,
  workDir: string,
  hostname: string,
  impostor: boolean,
  timeoutMs = 20_000,
): Promise<{ swtpm: Background; socket: string }> {
  const dir = tpmDir(workDir, hostname, impostor ? 'impostor' : 'registered');
  const socket = path.join(path.dirname(dir), `${impostor ? 'impostor' : 'registered'}.sock`);
  const swtpm = spawnSwtpm(lab, ns, dir, { kind: 'qemu', socket });
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(socket)) {
    if (swtpm.child.exitCode !== null) throw new Error(`${hostname}: swtpm exited (${swtpm.child.exitCode}):\n${swtpm.lines.join('\n')}`);
    if (Date.now() > deadline) {
      await swtpm.stop('SIGTERM', 3000);
      throw new Error(`${hostname}: swtpm made no control socket within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { swtpm, socket };
}
