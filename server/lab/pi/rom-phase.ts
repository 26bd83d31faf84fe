// The Pi 3B+ boot ROM's part of a boot (boot-net.adoc): DHCP with the ROM's
// DISCOVER and no REQUEST (it takes the OFFER's address), then plain RRQs with no
// options (512-byte blocks) for bootcode.bin and bootsig.bin from the TFTP root
// (bootsig.bin "will normally result in an error file not found"). bootcode.bin
// then starts over: the address is given back and the run goes on with its DHCP
// and its <serial>/start.elf probe (server/lab/pi/run.ts, tftp-phase.ts).
import { randomBytes } from 'node:crypto';
import { takeLease, type LeaseParams } from './lease.js';
import type { PiIdentity, PiModelProfile } from './model.js';
import type { PiBootOptions } from './options.js';
import { emptyDhcpReport } from './report.js';
import { tftpPhase } from './tftp-phase.js';

export async function romPhase(
  lease: Omit<LeaseParams, 'dhcp' | 'xid' | 'sendRequest'>,
  options: PiBootOptions,
  profile: PiModelProfile,
  id: PiIdentity,
): Promise<boolean> {
  const { report, net, log, warn } = lease;
  const xid = randomBytes(4).readUInt32BE(0);
  report.romDhcp = emptyDhcpReport(xid, lease.broadcastFlag);
  const mark = net.mark();
  const got = await takeLease({ ...lease, xid, sendRequest: false, dhcp: report.romDhcp });
  if (!got) return false;
  log('boot ROM: bootcode.bin and bootsig.bin from the TFTP root, no RRQ options');
  await tftpPhase({
    options,
    profile,
    id,
    report,
    log,
    warn,
    server: got.server,
    localAddress: got.localAddress,
    blksize: undefined,
    prefixDir: undefined,
    required: ['bootcode.bin'],
    rom: { sequence: ['bootcode.bin', 'bootsig.bin'] },
  });
  await net.rollback(mark);
  return report.failures.length === 0;
}
