// A QEMU amd64 UEFI (OVMF) guest with a swtpm TPM 2.0 (server/lab/swtpm.ts), the
// building block of the lab's kubernetes.admission: tpm nodes: the EK registered
// from the TPM's state directory over TCP with tpm2-tools is the EK of the TPM
// the guest gets, and the guest's firmware really uses that TPM (TPM2_Startup,
// then measurements: TPM2_PCR_Extend, in swtpm's command trace).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { startGuest } from '../../server/lab/qemu.js';
import { enrolEk, spawnSwtpm } from '../../server/lab/swtpm.js';
import { objectName, parsePublic } from '../../server/tpm/public-area.js';
import { Swtpm } from '../lib/swtpm.js';
import { waitUntil } from '../lib/wait.js';

/** A TPM command in swtpm's trace: its header's tag (no sessions / sessions), size, then the command code. */
const command = (code: number) =>
  new RegExp(
    `SWTPM_IO_Read: length \\d+\\n 80 0[12] 00 00 [0-9A-F]{2} [0-9A-F]{2} ${code.toString(16).padStart(8, '0').toUpperCase().match(/../g)?.join(' ')}`,
  );
const TPM_CC_STARTUP = 0x144;
const TPM_CC_PCR_EXTEND = 0x182;

describe('OVMF guest with swtpm', () => {
  let lab: NetLab;
  let host: LabHost;
  let dir: string;
  let state: string;

  beforeAll(async () => {
    lab = await NetLab.create('tpg');
    host = await lab.addHost('tpm');
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-tpm-guest-'));
    state = path.join(dir, 'state');
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('the guest firmware starts and measures into the TPM whose EK was registered', async () => {
    // Enrolment: the EK, read over TCP from the state directory.
    const registered = await enrolEk(lab, host.ns, state, 2321);

    const socket = path.join(dir, 'swtpm.sock');
    const log = path.join(dir, 'swtpm.log');
    const tpm = spawnSwtpm(lab, host.ns, state, { kind: 'qemu', socket }, log);
    await waitUntil(() => existsSync(socket), 20_000, "swtpm's control socket");
    // The lab's own guest (its NIC on the lab bridge finds no DHCP server: the firmware measures before it tries).
    const guest = await startGuest(lab, 'ovmf', '52:54:00:00:0c:01', { tpmSocket: socket, label: 'qemu-ovmf-tpm' });
    const trace = () => (existsSync(log) ? readFileSync(log, 'latin1') : '');
    await waitUntil(() => command(TPM_CC_PCR_EXTEND).test(trace()), 120_000, "the firmware's first TPM2_PCR_Extend");
    expect(trace()).toMatch(command(TPM_CC_STARTUP));
    await guest.stop('SIGTERM', 5000);
    // --terminate: swtpm ends with QEMU's connection.
    await tpm.exited;

    // The same TPM: its EK again over TCP, after the guest had it.
    const again = await Swtpm.start(lab, host.ns, 2321, state);
    const ek = (await again.createKeys('rsa', 'after')).ekPub;
    await again.stop();
    expect(objectName(parsePublic(ek)).toString('hex')).toBe(objectName(parsePublic(registered)).toString('hex'));
  });
});
