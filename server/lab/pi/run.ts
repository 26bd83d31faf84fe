// One boot, start to end: check the interface, add the broadcast route (and, without
// the broadcast flag, the AnyIP set-up) for DHCP, take the lease onto the interface,
// fetch the files, then remove everything added. Why each interface step is needed:
// the socket notes in server/lab/pi/dhcp-phase.ts.
import { randomBytes } from 'node:crypto';
import { DEFAULT_OPTION43_MATCH } from './dhcp-build.js';
import { dhcpPhase } from './dhcp-phase.js';
import { isDottedQuad, maskToPrefix, sameSubnet } from './ipv4.js';
import { formatMac, formatSerial, makeIdentity, PI_MODELS, type PiModel } from './model.js';
import { NetConfig, readText } from './net-config.js';
import { Aborted, DEFAULTS, defaultRequired, tftpPrefix, type PiBootOptions } from './options.js';
import type { PiBootReport } from './report.js';
import { tftpPhase } from './tftp-phase.js';

export async function runPiBoot(options: PiBootOptions): Promise<PiBootReport> {
  const started = Date.now();
  const model: PiModel = options.model ?? 4;
  const profile = PI_MODELS[model];
  const id = makeIdentity(options.mac, options.serial, model, options.boardRevision);
  const log = options.log ?? ((l: string) => process.stderr.write(`[pi-boot] ${l}\n`));
  const match = options.option43Match ?? DEFAULT_OPTION43_MATCH;
  const broadcastFlag = options.broadcastFlag ?? true;
  const configureIp = options.configureIp ?? true;
  const dhcpTimeoutMs = options.dhcpTimeoutMs ?? DEFAULTS.dhcpTimeoutMs;
  const dhcpRetryMs = options.dhcpRetryMs ?? DEFAULTS.dhcpRetryMs;
  const blksize = options.blksize ?? profile.blksize;
  const prefixDir = tftpPrefix(options.prefix ?? 'serial', id);
  const required = (options.required ?? defaultRequired(model)).map((x) => x.trim()).filter((x) => x.length > 0);
  if (options.tftpServer !== undefined && !isDottedQuad(options.tftpServer))
    throw new Error(`--tftp-server must be a dotted quad, got ${options.tftpServer}`);
  if (!Number.isInteger(blksize) || blksize < 8 || blksize > 65464) throw new Error(`blksize ${blksize} outside 8..65464`);
  const xid = randomBytes(4).readUInt32BE(0);

  const report: PiBootReport = {
    ok: false,
    failures: [],
    warnings: [],
    iface: options.iface,
    mac: formatMac(id.mac),
    serial: formatSerial(id.serial),
    model,
    boardRevision: `0x${id.boardRevision.toString(16).padStart(8, '0')}`,
    dhcp: {
      xid: `0x${xid.toString(16).padStart(8, '0')}`,
      broadcastFlag,
      discoversSent: 0,
      discoverHex: '',
      offer: undefined,
      proxyOffer: undefined,
      offersIgnored: [],
      requestHex: undefined,
      ackReceived: false,
      ack: undefined,
      nak: undefined,
      leasedAddress: undefined,
      prefixLength: undefined,
      durationMs: 0,
    },
    tftpServer: undefined,
    tftpServerSource: undefined,
    prefix: prefixDir,
    prefixUsed: false,
    config: undefined,
    files: [],
    required: [],
    ipCommands: [],
    durationMs: 0,
  };
  const warn = (w: string) => {
    if (report.warnings.includes(w)) return; // e.g. the same OFFER flaw on every retransmission
    report.warnings.push(w);
    log(`WARNING: ${w}`);
  };
  const net = new NetConfig(options.iface, log);

  try {
    if (options.signal?.aborted) throw new Aborted('aborted');
    // --- interface checks
    const sysMac = await readText(`/sys/class/net/${options.iface}/address`);
    if (sysMac === undefined) throw new Error(`no interface ${options.iface} in this network namespace`);
    if (sysMac.toLowerCase() !== formatMac(id.mac)) {
      warn(`--mac ${formatMac(id.mac)} differs from ${options.iface}'s own ${sysMac}: unicast replies and ARP use the real one`);
    }
    if (configureIp) {
      const existing = await net.ipv4Addresses();
      if (existing.length > 0) warn(`${options.iface} already has IPv4 ${existing.join(', ')}: DISCOVER will not come from 0.0.0.0`);
      await net.run(['link', 'set', 'dev', options.iface, 'up']);
      await net.add(
        ['route', 'add', '255.255.255.255/32', 'dev', options.iface],
        ['route', 'del', '255.255.255.255/32', 'dev', options.iface],
      );
    }

    // --- DHCP
    const dhcpStarted = Date.now();
    const anyIpMark = net.mark();
    if (!broadcastFlag && configureIp) {
      await net.sysctl('net.ipv4.icmp_echo_ignore_all', '1');
      await net.sysctl(`net.ipv4.conf.${options.iface}.arp_ignore`, '1');
      // With every address local, the server's source address is "local" too: a martian unless accept_local.
      await net.sysctl(`net.ipv4.conf.${options.iface}.accept_local`, '1');
      await net.add(
        ['route', 'add', 'broadcast', '255.255.255.255', 'dev', options.iface, 'table', 'local'],
        ['route', 'del', 'broadcast', '255.255.255.255', 'dev', options.iface, 'table', 'local'],
      );
      await net.add(
        ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local'],
        ['route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local'],
      );
    }
    const dhcp = await dhcpPhase({
      id,
      xid,
      broadcastFlag,
      match,
      lenient: options.lenientOption43 ?? false,
      timeoutMs: dhcpTimeoutMs,
      retryMs: dhcpRetryMs,
      report,
      log,
      warn,
      signal: options.signal,
      model,
    });
    await net.rollback(anyIpMark);
    report.dhcp.durationMs = Date.now() - dhcpStarted;
    if (!dhcp) {
      report.failures.push(...(report.failures.length ? [] : ['DHCP failed']));
      return report;
    }
    report.tftpServer = options.tftpServer ?? dhcp.tftpServer;
    report.tftpServerSource = options.tftpServer ? 'override' : dhcp.tftpServerSource;

    // --- address
    const lease = report.dhcp.ack ?? report.dhcp.offer;
    const address = lease?.yiaddr ?? dhcp.offer.yiaddr;
    let prefixLength = 32;
    const mask = lease?.subnetMask ?? dhcp.offer.subnetMask;
    if (mask !== undefined) {
      const pl = maskToPrefix(mask);
      if (pl === undefined) warn(`option 1 ${mask} is not a contiguous netmask; using /32`);
      else prefixLength = pl;
    }
    report.dhcp.leasedAddress = address;
    report.dhcp.prefixLength = prefixLength;
    const server = report.tftpServer;
    let localAddress = '0.0.0.0';
    if (configureIp) {
      await net.add(
        ['addr', 'add', `${address}/${prefixLength}`, 'dev', options.iface],
        ['addr', 'del', `${address}/${prefixLength}`, 'dev', options.iface],
      );
      localAddress = address;
      if (!sameSubnet(address, server, prefixLength)) {
        const router = (lease?.routers ?? dhcp.offer.routers)[0];
        if (router && sameSubnet(address, router, prefixLength)) {
          await net.add(
            ['route', 'add', `${server}/32`, 'via', router, 'dev', options.iface],
            ['route', 'del', `${server}/32`, 'via', router, 'dev', options.iface],
          );
        } else {
          warn(`TFTP server ${server} is outside ${address}/${prefixLength} and there is no usable router (option 3); trying it on-link`);
          await net.add(['route', 'add', `${server}/32`, 'dev', options.iface], ['route', 'del', `${server}/32`, 'dev', options.iface]);
        }
      }
    }
    log(`leased ${address}/${prefixLength}; TFTP server ${server} (${report.tftpServerSource})`);

    // --- TFTP
    await tftpPhase({ options, profile, id, report, log, warn, server, localAddress, blksize, prefixDir, required });
  } catch (e) {
    report.failures.push(e instanceof Aborted ? 'aborted' : (e as Error).message);
  } finally {
    if (!options.keepAddress) await net.rollback();
    report.ipCommands = net.commands;
    report.durationMs = Date.now() - started;
  }
  report.ok = report.failures.length === 0;
  return report;
}
