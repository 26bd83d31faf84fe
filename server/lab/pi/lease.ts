// One DHCP exchange and the address it gives, put on the interface for TFTP: the
// AnyIP set-up a run without the broadcast flag needs during DHCP (undone right
// after), then the leased address and, for an off-subnet TFTP server, a route.
// Why each step is needed: the socket notes in server/lab/pi/dhcp-phase.ts. A
// Pi 3 takes two leases in one boot (its ROM's, then bootcode.bin's).
import { dhcpPhase } from './dhcp-phase.js';
import { maskToPrefix, sameSubnet } from './ipv4.js';
import type { PiIdentity } from './model.js';
import type { NetConfig } from './net-config.js';
import type { PiBootReport } from './report.js';

export interface LeaseParams {
  iface: string;
  id: PiIdentity;
  xid: number;
  broadcastFlag: boolean;
  configureIp: boolean;
  match: string;
  lenient: boolean;
  timeoutMs: number;
  retryMs: number;
  sendRequest: boolean;
  /** HTTP boot: an address is all the EEPROM takes from DHCP (dhcp-phase.ts needBootOptions). */
  needBootOptions?: boolean;
  /** TFTP_IP, or HTTP_HOST in HTTP boot: the server the files come from, over options 66/54. */
  tftpServer: string | undefined;
  /** Where this exchange is recorded (report.dhcp, or the Pi 3 ROM's report.romDhcp); failures go to report.failures. */
  dhcp: PiBootReport['dhcp'];
  report: PiBootReport;
  net: NetConfig;
  log: (l: string) => void;
  warn: (w: string) => void;
  signal: AbortSignal | undefined;
}

export interface Lease {
  /** The TFTP server, and where it came from. */
  server: string;
  source: 'option66' | 'option54' | 'override';
  /** The address TFTP sockets bind (0.0.0.0 with configureIp false). */
  localAddress: string;
}

export async function takeLease(p: LeaseParams): Promise<Lease | undefined> {
  const started = Date.now();
  const anyIpMark = p.net.mark();
  if (!p.broadcastFlag && p.configureIp) {
    await p.net.sysctl('net.ipv4.icmp_echo_ignore_all', '1');
    await p.net.sysctl(`net.ipv4.conf.${p.iface}.arp_ignore`, '1');
    // With every address local, the server's source address is "local" too: a martian unless accept_local.
    await p.net.sysctl(`net.ipv4.conf.${p.iface}.accept_local`, '1');
    await p.net.add(
      ['route', 'add', 'broadcast', '255.255.255.255', 'dev', p.iface, 'table', 'local'],
      ['route', 'del', 'broadcast', '255.255.255.255', 'dev', p.iface, 'table', 'local'],
    );
    await p.net.add(
      ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local'],
      ['route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local'],
    );
  }
  const dhcp = await dhcpPhase({
    id: p.id,
    xid: p.xid,
    broadcastFlag: p.broadcastFlag,
    match: p.match,
    lenient: p.lenient,
    timeoutMs: p.timeoutMs,
    retryMs: p.retryMs,
    report: { ...p.report, dhcp: p.dhcp },
    log: p.log,
    warn: p.warn,
    signal: p.signal,
    model: p.id.model,
    sendRequest: p.sendRequest,
    needBootOptions: p.needBootOptions ?? true,
  });
  await p.net.rollback(anyIpMark);
  p.dhcp.durationMs = Date.now() - started;
  if (!dhcp) {
    if (p.report.failures.length === 0) p.report.failures.push('DHCP failed');
    return undefined;
  }
  const server = p.tftpServer ?? dhcp.tftpServer;
  const source = p.tftpServer ? 'override' : dhcp.tftpServerSource;

  const lease = p.dhcp.ack ?? p.dhcp.offer;
  const address = lease?.yiaddr ?? dhcp.offer.yiaddr;
  let prefixLength = 32;
  const mask = lease?.subnetMask ?? dhcp.offer.subnetMask;
  if (mask !== undefined) {
    const pl = maskToPrefix(mask);
    if (pl === undefined) p.warn(`option 1 ${mask} is not a contiguous netmask; using /32`);
    else prefixLength = pl;
  }
  p.dhcp.leasedAddress = address;
  p.dhcp.prefixLength = prefixLength;
  let localAddress = '0.0.0.0';
  if (p.configureIp) {
    await p.net.add(
      ['addr', 'add', `${address}/${prefixLength}`, 'dev', p.iface],
      ['addr', 'del', `${address}/${prefixLength}`, 'dev', p.iface],
    );
    localAddress = address;
    if (!sameSubnet(address, server, prefixLength)) {
      const router = (lease?.routers ?? dhcp.offer.routers)[0];
      if (router && sameSubnet(address, router, prefixLength)) {
        await p.net.add(
          ['route', 'add', `${server}/32`, 'via', router, 'dev', p.iface],
          ['route', 'del', `${server}/32`, 'via', router, 'dev', p.iface],
        );
      } else {
        p.warn(`TFTP server ${server} is outside ${address}/${prefixLength} and there is no usable router (option 3); trying it on-link`);
        await p.net.add(['route', 'add', `${server}/32`, 'dev', p.iface], ['route', 'del', `${server}/32`, 'dev', p.iface]);
      }
    }
  }
  p.log(`leased ${address}/${prefixLength}; ${p.needBootOptions === false ? 'HTTP' : 'TFTP'} server ${server} (${source})`);
  return { server, source, localAddress };
}
