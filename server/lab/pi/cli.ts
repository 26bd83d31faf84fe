// The stand-in's command line (run through server/lab/pi-bootloader.ts): flags to
// PiBootOptions, the usage text, and the exit codes (0 ok, 1 failure, 2 bad usage).
import { readFileSync } from 'node:fs';
import { makeIdentity } from './model.js';
import { tftpPrefix, type PiBootOptions } from './options.js';
import { runPiBoot } from './run.js';

const USAGE = `usage: node --import tsx server/lab/pi-bootloader.ts --iface IF --mac MAC --serial HEX8 [options]
  --model 3|4|5             Pi model (default 4; 3 is the Pi 3B+: ROM, bootcode.bin from the root, then <serial>/)
  --board-revision HEX      option 97 board revision (default 0x00c03111 / 0x00d04170)
  --dhcp-timeout SEC        DHCP_TIMEOUT for the whole DHCP phase (default 45; Pi 3 ROM 25)
  --dhcp-retry MS           DHCP_REQ_TIMEOUT: DISCOVER retry and ACK wait (default 4000; Pi 3 ROM 5000)
  --no-broadcast-flag       send flags 0x0000 like captured Pi 4s (adds an AnyIP route during DHCP; the Pi 3 default)
  --option43 TEXT           PXE_OPTION43 match string (default "Raspberry Pi Boot")
  --lenient-option43        accept the string anywhere in option 43
  --tftp-server IP          TFTP_IP: override options 66/54
  --tftp-port N             (default 69)
  --http-host IP            HTTP boot (Pi 4/5, BOOT_ORDER nibble 7): HTTP_HOST; DHCP for an address only, then
                            boot.sig and boot.img, nothing over TFTP; needs --http-path, --pubkey, --hostname
  --http-port N             HTTP_PORT (default 80)
  --http-path PATH          HTTP_PATH (bootfarm: pi/<serial>)
  --pubkey FILE             the public key programmed with rpi-eeprom-config --pubkey (PEM)
  --hostname NAME           the node's name, which boot.img's cmdline.txt must carry
  --prefix MODE             serial (default) | mac | none | str:NAME
  --files A,B,...           replace the sequence after the prefix probe; tokens @kernel @initramfs @dtb @cmdline @overlays
  --required A,B,...        files (unprefixed names or @kernel, @dtb, @initramfs, @cmdline) that must arrive
                            (default Pi 4: config.txt,start4.elf,cmdline.txt,@kernel; Pi 5: config.txt,cmdline.txt,@kernel)
  --out DIR                 save every fetched file as DIR/<path as requested>
  --blksize N               (default 1024; Pi 5 1468)
  --tftp-timeout MS         retransmit after this much silence (default 1000)
  --tftp-retries N          (default 5)
  --file-timeout MS         TFTP_FILE_TIMEOUT per file, 0 = none (default 30000)
  --probe-each              probe (Early terminate) then re-request every file
  --no-ip-config            do not run ip(8); the interface must already route 255.255.255.255 and have an address for TFTP
  --keep-address            leave the leased address and routes on the interface
  --quiet                   no progress lines`;

function parseCliArgs(argv: string[]): PiBootOptions {
  const opts: Partial<PiBootOptions> & { quiet?: boolean } = {};
  const http: { host?: string; port: number; path?: string; pubkey?: string; hostname?: string } = { port: 80 };
  const take = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
    return v;
  };
  const list = (v: string) =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x.length > 0);
  const int = (v: string, flag: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: not a number: ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    switch (a) {
      case '--iface':
        opts.iface = take(i++, a);
        break;
      case '--mac':
        opts.mac = take(i++, a);
        break;
      case '--serial':
        opts.serial = take(i++, a);
        break;
      case '--model': {
        const m = take(i++, a);
        if (m !== '3' && m !== '4' && m !== '5') throw new Error('--model must be 3, 4 or 5');
        opts.model = m === '3' ? 3 : m === '4' ? 4 : 5;
        break;
      }
      case '--board-revision':
        opts.boardRevision = Number.parseInt(take(i++, a).replace(/^0x/i, ''), 16) >>> 0;
        break;
      case '--dhcp-timeout':
        opts.dhcpTimeoutMs = int(take(i++, a), a) * 1000;
        break;
      case '--dhcp-retry':
        opts.dhcpRetryMs = int(take(i++, a), a);
        break;
      case '--no-broadcast-flag':
        opts.broadcastFlag = false;
        break;
      case '--option43':
        opts.option43Match = take(i++, a);
        break;
      case '--lenient-option43':
        opts.lenientOption43 = true;
        break;
      case '--tftp-server':
        opts.tftpServer = take(i++, a);
        break;
      case '--tftp-port':
        opts.tftpPort = int(take(i++, a), a);
        break;
      case '--http-host':
        http.host = take(i++, a);
        break;
      case '--http-port':
        http.port = int(take(i++, a), a);
        break;
      case '--http-path':
        http.path = take(i++, a);
        break;
      case '--pubkey':
        http.pubkey = take(i++, a);
        break;
      case '--hostname':
        http.hostname = take(i++, a);
        break;
      case '--prefix':
        opts.prefix = take(i++, a);
        break;
      case '--files':
        opts.files = list(take(i++, a));
        break;
      case '--required':
        opts.required = list(take(i++, a));
        break;
      case '--out':
        opts.outDir = take(i++, a);
        break;
      case '--blksize':
        opts.blksize = int(take(i++, a), a);
        break;
      case '--tftp-timeout':
        opts.tftpTimeoutMs = int(take(i++, a), a);
        break;
      case '--tftp-retries':
        opts.tftpRetries = int(take(i++, a), a);
        break;
      case '--file-timeout':
        opts.fileTimeoutMs = int(take(i++, a), a);
        break;
      case '--probe-each':
        opts.probeEach = true;
        break;
      case '--no-ip-config':
        opts.configureIp = false;
        break;
      case '--keep-address':
        opts.keepAddress = true;
        break;
      case '--quiet':
        opts.quiet = true;
        break;
      case '--help':
      case '-h':
        throw new UsageHelp();
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  if (!opts.iface || !opts.mac || !opts.serial) throw new Error('--iface, --mac and --serial are required');
  const { quiet, ...rest } = opts;
  const out: PiBootOptions = { ...rest, iface: opts.iface, mac: opts.mac, serial: opts.serial };
  if (http.host !== undefined) {
    if (!http.path || !http.pubkey || !http.hostname) throw new Error('--http-host needs --http-path, --pubkey and --hostname');
    const publicKeyPem = readFileSync(http.pubkey, 'utf8');
    out.http = { host: http.host, port: http.port, path: http.path, publicKeyPem, hostname: http.hostname };
  }
  if (quiet) out.log = () => {};
  // Validate early so a typo is a usage error, not a network failure.
  makeIdentity(out.mac, out.serial, out.model ?? 4, out.boardRevision);
  tftpPrefix(out.prefix ?? 'serial', makeIdentity(out.mac, out.serial));
  return out;
}

class UsageHelp extends Error {}

export async function main(): Promise<void> {
  let options: PiBootOptions;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageHelp) {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    process.stderr.write(`pi-bootloader: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const report = await runPiBoot({ ...options, signal: controller.signal });
  // undefined fields become null so every report has the same keys.
  process.stdout.write(`PI_BOOT_REPORT ${JSON.stringify(report, (_k, v: unknown) => (v === undefined ? null : v))}\n`);
  if (!report.ok) {
    for (const f of report.failures) process.stderr.write(`pi-bootloader: FAIL: ${f}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(
      report.http
        ? `pi-bootloader: OK: boot.img (${report.http.image.bytes} bytes) verified; ${report.http.extracted.map((f) => f.name).join(', ')} taken out of it\n`
        : `pi-bootloader: OK: ${report.files.filter((f) => f.outcome === 'ok').length} files from ${report.tftpServer}\n`,
    );
  }
}
