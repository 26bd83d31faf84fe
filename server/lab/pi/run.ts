// One boot, start to end: check the interface, add the broadcast route (and, without
// the broadcast flag, the AnyIP set-up) for DHCP, take the lease onto the interface,
// fetch the files, then remove everything added. Why each interface step is needed:
// the socket notes in server/lab/pi/dhcp-phase.ts.
import { randomBytes } from 'node:crypto';
import { DEFAULT_OPTION43_MATCH } from './dhcp-build.js';
import { isDottedQuad } from './ipv4.js';
import { httpPhase } from './http-phase.js';
import { takeLease } from './lease.js';
import { formatMac, formatSerial, makeIdentity, PI_MODELS, type PiModel } from './model.js';
import { NetConfig, readText } from './net-config.js';
import { Aborted, DEFAULTS, defaultRequired, tftpPrefix, type PiBootOptions } from './options.js';
import { emptyDhcpReport, type PiBootReport } from './report.js';
import { romPhase } from './rom-phase.js';
import { tftpPhase } from './tftp-phase.js';

export async function runPiBoot(options: PiBootOptions): Promise<PiBootReport> {
  const started = Date.now();
  const model: PiModel = options.model ?? 4;
  const profile = PI_MODELS[model];
  const id = makeIdentity(options.mac, options.serial, model, options.boardRevision);
  const log = options.log ?? ((l: string) => process.stderr.write(`[pi-boot] ${l}\n`));
  const match = options.option43Match ?? DEFAULT_OPTION43_MATCH;
  // The Pi 3 ROM's capture shows flags 0 (boot-net.adoc); EEPROM runs set it unless told not to.
  const broadcastFlag = options.broadcastFlag ?? model !== 3;
  const configureIp = options.configureIp ?? true;
  // The Pi 3 ROM: five DISCOVERs 5 s apart, then it gives up (boot-net.adoc).
  const dhcpTimeoutMs = options.dhcpTimeoutMs ?? (model === 3 ? 25_000 : DEFAULTS.dhcpTimeoutMs);
  const dhcpRetryMs = options.dhcpRetryMs ?? (model === 3 ? 5_000 : DEFAULTS.dhcpRetryMs);
  const blksize = options.blksize ?? profile.blksize;
  const prefixDir = tftpPrefix(options.prefix ?? 'serial', id);
  const required = (options.required ?? defaultRequired(model)).map((x) => x.trim()).filter((x) => x.length > 0);
  if (options.tftpServer !== undefined && !isDottedQuad(options.tftpServer))
    throw new Error(`--tftp-server must be a dotted quad, got ${options.tftpServer}`);
  if (blksize !== undefined && (!Number.isInteger(blksize) || blksize < 8 || blksize > 65464))
    throw new Error(`blksize ${blksize} outside 8..65464`);
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
    dhcp: emptyDhcpReport(xid, broadcastFlag),
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

    // --- DHCP (a Pi 3: its ROM's lease and files first, then bootcode.bin's lease)
    const leaseParams = {
      iface: options.iface,
      id,
      broadcastFlag,
      configureIp,
      match,
      lenient: options.lenientOption43 ?? false,
      timeoutMs: dhcpTimeoutMs,
      retryMs: dhcpRetryMs,
      tftpServer: options.tftpServer,
      report,
      net,
      log,
      warn,
      signal: options.signal,
    };
    if (options.http) {
      // HTTP boot: an address from DHCP, then HTTP_HOST directly; the files arrive in one signed image.
      if (model === 3) throw new Error('HTTP boot is a Pi 4/5 EEPROM feature; the Pi 3B+ ROM boots over TFTP only');
      const http = options.http;
      const lease = await takeLease({
        ...leaseParams,
        xid,
        sendRequest: true,
        dhcp: report.dhcp,
        needBootOptions: false,
        tftpServer: http.host,
      });
      if (!lease) return report;
      log(`HTTP boot from http://${http.host}:${http.port}/${http.path}/`);
      report.http = await httpPhase({ ...http, model, workDir: options.outDir ?? '.', extract: true });
      report.failures.push(...report.http.failures);
    } else {
      if (model === 3 && !(await romPhase(leaseParams, options, profile, id))) return report;
      const lease = await takeLease({ ...leaseParams, xid, sendRequest: model !== 3, dhcp: report.dhcp });
      if (!lease) return report;
      report.tftpServer = lease.server;
      report.tftpServerSource = lease.source;

      // --- TFTP
      await tftpPhase({
        options,
        profile,
        id,
        report,
        log,
        warn,
        server: lease.server,
        localAddress: lease.localAddress,
        blksize,
        prefixDir,
        required,
      });
    }
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
