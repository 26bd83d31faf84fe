// Software TPM 2.0 (swtpm) for lab guests and tests. One state directory is one
// TPM: its endorsement seed, and so its EK, lives there and survives restarts,
// so the EK read once over TCP with tpm2-tools (to register it) is the EK the
// QEMU guest later gets from the same directory.
//   tcp:  swtpm on 127.0.0.1:port (control port+1) in a namespace, for tpm2-tools
//         (TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=PORT)
//   qemu: swtpm on a Unix control socket; QEMU attaches it with qemuTpmArgs()
import { existsSync, mkdirSync } from 'node:fs';
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
    args.push('--server', `type=tcp,port=${listen.port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${listen.port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear');
  } else {
    // QEMU initialises the TPM and the guest firmware sends TPM2_Startup.
    args.push('--ctrl', `type=unixio,path=${listen.socket}`, '--terminate');
  }
  if (log) args.push('--log', `file=${log},level=20`);
  return lab.spawn(ns, 'swtpm', args, `swtpm:${path.basename(stateDir)}`);
}

/** QEMU arguments attaching the swtpm on `socket` as a TIS TPM (x86 guests). */
export function qemuTpmArgs(socket: string): string[] {
  return ['-chardev', `socket,id=chrtpm,path=${socket}`, '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', 'tpm-tis,tpmdev=tpm0'];
}
