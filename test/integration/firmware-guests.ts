// Shared steps of the firmware tests: a lab with bootfarm, an observer on the
// TFTP/HTTP ports, and a QEMU guest whose first fetch is awaited.
import { NetLab } from '../../server/lab/netlab.js';
import { startBootfarm, nodeArgs, REPO_ROOT, type BootfarmProcess } from '../lib/bootfarm.js';
import { startGuest, type GuestFirmware } from '../../server/lab/qemu.js';
import type { Background } from '../../server/lab/proc.js';
import path from 'node:path';
import { startSiteDnsmasq } from '../lib/site-dnsmasq.js';

export interface FetchSeen {
  proto: 'tftp' | 'http';
  file?: string;
  path?: string;
  from: string;
}

export interface FirmwareLab {
  lab: NetLab;
  bootfarm: BootfarmProcess;
  observer: Background;
  srvNs: string;
}

export async function createFirmwareLab(
  tag: string,
  dhcp: Record<string, unknown>,
  withSiteDhcp: boolean,
): Promise<FirmwareLab & { site?: Background }> {
  const lab = await NetLab.create(tag);
  try {
    return await populate(lab, dhcp, withSiteDhcp);
  } catch (err) {
    // The caller never gets the lab to destroy: clean up here.
    await lab.destroy();
    throw err;
  }
}

async function populate(lab: NetLab, dhcp: Record<string, unknown>, withSiteDhcp: boolean): Promise<FirmwareLab & { site?: Background }> {
  const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
  let site: Background | undefined;
  if (withSiteDhcp) {
    site = await startSiteDnsmasq(lab);
  }
  const bootfarm = await startBootfarm(lab, srv.ns, {
    server: { address: '10.9.0.1' },
    // DHCP only: the observer stands on bootfarm's TFTP and HTTP ports (the boot
    // plan still names HTTP port 8080, the default).
    dhcp: { interface: 'eth0', ...dhcp },
    // The guests are in no inventory: these tests are about firmware, so every
    // machine boots the defaults, as with dnsmasq or pixiecore.
    unknownNodes: 'boot-default',
  });
  const observer = lab.spawn(
    srv.ns,
    process.execPath,
    nodeArgs(path.join(REPO_ROOT, 'test/lib/wire-observer.ts'), ['69', '8080']),
    'observer',
  );
  await observer.waitFor((l) => l.includes('"ready":true'), 15_000, 'observer ready');
  return { lab, bootfarm, observer, srvNs: srv.ns, site };
}

/** Boots a guest and resolves with its first TFTP or HTTP request to the server. */
export async function firstFetch(fl: FirmwareLab, firmware: GuestFirmware, mac: string, timeoutMs: number): Promise<FetchSeen> {
  const since = fl.observer.lines.length;
  const guest = await startGuest(fl.lab, firmware, mac);
  try {
    const line = await fl.observer
      .waitFor((l) => l.includes('"proto"'), timeoutMs, `the first fetch of the ${firmware} guest`, since)
      .catch((err: Error) => {
        throw new Error(`${err.message}\n--- guest console:\n${guest.lines.slice(-20).join('\n')}`);
      });
    return JSON.parse(line) as FetchSeen;
  } finally {
    await guest.stop('SIGTERM', 2000);
  }
}
