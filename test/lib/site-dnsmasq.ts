// The site's own DHCP server for proxy-mode tests: stock dnsmasq with no PXE
// configuration at all, at 10.9.0.254 on the lab bridge, leasing 10.9.0.50-99.
import type { NetLab } from '../../server/lab/netlab.js';
import type { Background } from '../../server/lab/proc.js';

/** `extraArgs`: more dnsmasq options, e.g. `--dhcp-host=MAC,IP` reservations. */
export async function startSiteDnsmasq(lab: NetLab, extraArgs: string[] = []): Promise<Background> {
  const siteHost = await lab.addHost('site', { address: '10.9.0.254/24' });
  const site = lab.spawn(
    siteHost.ns,
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--log-facility=-',
      '--log-dhcp',
      '--port=0',
      '--conf-file=/dev/null',
      '--pid-file',
      '--interface=eth0',
      '--bind-interfaces',
      '--dhcp-range=10.9.0.50,10.9.0.99,1h',
      `--dhcp-leasefile=/tmp/${lab.id}-dnsmasq.leases`,
      '--dhcp-option=3,10.9.0.254',
      ...extraArgs,
    ],
    'dnsmasq',
  );
  await site.waitFor((l) => l.includes('DHCP, IP range'), 10_000, 'dnsmasq ready');
  return site;
}
