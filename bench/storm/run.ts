// Boot storm, bootfarm beside the stock stack, in one interleaved run: rounds
// alternate (bootfarm, stock, bootfarm, stock, ...), each on freshly started servers
// with empty lease state, the same N simulated machines (bench/storm/clients.ts) each
// time. Needs root (namespaces). bench/run-storm.sh is the front door.
//
// Network: two namespaces made here, stm-srv-<pid> (the servers, eth0 10.56.0.1/16)
// and stm-cli-<pid> (every simulated machine, cli0), joined by one veth pair. Each
// machine's leased address is added to cli0 as an alias and used as its source
// address from TFTP on: one interface scales to 1000 addresses with no per-machine
// netdev, no per-machine socket bound to a device (Node has no SO_BINDTODEVICE) and
// one bridge/neighbour entry; the cost is that every machine's ARP shows cli0's MAC,
// not its own chaddr (neither server here ties anything to the ARP MAC).
//
// Stock stack (as ../shared/e2e-reference/server/run-servers.sh, but with tftpd-hpa
// instead of dnsmasq's TFTP, as the brief of issue 16 asks): dnsmasq DHCP only
// (no-ping, as the reference's FAST_DHCP default), in.tftpd (tftpd-hpa), nbd-server,
// and the reference's own HTTP server (e2e-httpd.py, python http.server, keep-alive).
// Its iPXE script is written here in bootfarm's shape (kernel, initrd, and
// bootfarm.nbd= / bootfarm.export= on the command line) so one client parses both.
//
// Generator: --workers processes of bench/storm/clients.ts (default 2, one per core
// here), machines dealt out in blocks, all starting at one wall-clock instant; each
// reports its CPU and event-loop lag, printed per round, so a storm limited by the
// generator rather than the server shows as such.
//
// Server cost: every 100 ms the process tree of each server (nbd-server forks one
// child per client) is read from /proc: CPU = utime + stime over the storm (last
// value seen per PID, minus the value at the storm's start; a child's last <100 ms
// before it exits is missed), peak RSS and peak PSS = the largest sums over the tree
// (smaps_rollup; PSS counts pages shared by nbd-server's forks once).
//
// Usage: node --import tsx bench/storm/run.ts --count 50 --rounds 2 [--servers bootfarm,stock]
//   [--main-js dist/server/cli/main.js] [--image-dir /var/tmp/bootfarm-lab-images/lab/current/amd64]
//   [--workers 2] [--results bench/results] [--seq-mib 16] [--rand-reads 256] [--trace FILE] [--spread-ms 1000]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { intOption } from './int-option.js';

const { values: opts } = parseArgs({
  options: {
    count: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    servers: { type: 'string', default: 'bootfarm,stock' },
    'main-js': { type: 'string', default: 'dist/server/cli/main.js' },
    'image-dir': { type: 'string', default: '/var/tmp/bootfarm-lab-images/lab/current/amd64' },
    results: { type: 'string', default: 'bench/results' },
    'seq-mib': { type: 'string', default: '16' },
    'rand-reads': { type: 'string', default: '256' },
    'spread-ms': { type: 'string', default: '1000' },
    'deadline-s': { type: 'string', default: '900' },
    workers: { type: 'string', default: '2' },
    trace: { type: 'string' },
  },
});

function intOpt(name: keyof typeof opts, min: number, max: number): number {
  return intOption(name, opts[name], min, max);
}

const count = intOpt('count', 1, 5000);
const rounds = intOpt('rounds', 1, 20);
const workers = intOpt('workers', 1, 64);
const servers = (opts.servers ?? '').split(',').filter(Boolean);
for (const s of servers) if (s !== 'bootfarm' && s !== 'stock') throw new Error(`--servers: expected bootfarm and/or stock, got ${s}`);
const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const mainJs = path.resolve(opts['main-js'] ?? '');
const imageDir = path.resolve(opts['image-dir'] ?? '');
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
const runId = `storm-${stamp}`;
const outDir = path.resolve(opts.results ?? 'bench/results', runId);
const work = `/var/tmp/bootfarm-storm-${process.pid}`;
const srvNs = `stm-srv-${process.pid}`;
const cliNs = `stm-cli-${process.pid}`;
const SRV_IP = '10.56.0.1';
const CLI_IP = '10.56.255.250';
const HTTP_PORT = 8080;
const NBD_PORT = 10809;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------ files

function prepareFiles(): void {
  for (const f of ['vmlinuz', 'initrd.img', 'root.squashfs']) {
    if (!existsSync(path.join(imageDir, f))) throw new Error(`--image-dir ${imageDir}: expected vmlinuz, initrd.img and root.squashfs`);
  }
  // Hard links where possible: no copy of the 130 MB root, and the lab cache is never written.
  const place = (src: string, dst: string): void => {
    mkdirSync(path.dirname(dst), { recursive: true });
    try {
      linkSync(src, dst);
    } catch {
      symlinkSync(src, dst);
    }
  };
  const bfImage = path.join(work, 'bootfarm/images/lab/v1/amd64');
  for (const f of ['vmlinuz', 'initrd.img', 'root.squashfs', 'manifest.json']) {
    if (existsSync(path.join(imageDir, f))) place(path.join(imageDir, f), path.join(bfImage, f));
  }
  symlinkSync('v1', path.join(work, 'bootfarm/images/lab/current'));
  place('/usr/lib/ipxe/undionly.kpxe', path.join(work, 'bootfarm/tftpboot/undionly.kpxe'));
  place('/usr/lib/ipxe/undionly.kpxe', path.join(work, 'stock/tftp/undionly.kpxe'));
  for (const f of ['vmlinuz', 'initrd.img']) place(path.join(imageDir, f), path.join(work, 'stock/http/amd64', f));
  place(path.join(imageDir, 'root.squashfs'), path.join(work, 'stock/nbd/root.squashfs'));
  writeFileSync(
    path.join(work, 'stock/http/boot.ipxe'),
    [
      '#!ipxe',
      `kernel http://${SRV_IP}:${HTTP_PORT}/amd64/vmlinuz initrd=initrd.img bootfarm.nbd=${SRV_IP}:${NBD_PORT} bootfarm.export=root console=ttyS0,115200`,
      `initrd http://${SRV_IP}:${HTTP_PORT}/amd64/initrd.img`,
      'boot',
      '',
    ].join('\n'),
  );
}

function mac(i: number): string {
  return [0x52, 0x54, 5, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function bootfarmConfig(dir: string): string {
  const nodes = Array.from({ length: count }, (_, i) => `  - { mac: "${mac(i + 1)}", hostname: storm-${i + 1}, arch: amd64 }`);
  const file = path.join(dir, 'bootfarm.yaml');
  writeFileSync(
    file,
    [
      'server:',
      `  address: ${SRV_IP}`,
      `  stateDir: ${dir}/state`,
      'dhcp:',
      '  mode: full',
      '  interface: eth0',
      '  subnets:',
      `    - { cidr: 10.56.0.0/16, range: [10.56.1.1, 10.56.200.254], leaseSeconds: 3600 }`,
      `tftp: { port: 69, root: ${work}/bootfarm/tftpboot, addresses: [${SRV_IP}] }`,
      `http: { port: ${HTTP_PORT} }`,
      `nbd: { port: ${NBD_PORT}, host: ${SRV_IP} }`,
      `images: { dir: ${work}/bootfarm/images, default: lab }`,
      'unknownNodes: ignore',
      'log: { level: warn }',
      'nodes:',
      ...nodes,
      '',
    ].join('\n'),
  );
  return file;
}

function stockConfigs(dir: string): { dnsmasq: string; nbd: string } {
  const dnsmasq = path.join(dir, 'dnsmasq.conf');
  writeFileSync(
    dnsmasq,
    [
      'port=0',
      'user=root',
      'interface=eth0',
      'bind-interfaces',
      'dhcp-range=10.56.1.1,10.56.200.254,255.255.0.0,1h',
      'dhcp-authoritative',
      `dhcp-lease-max=${Math.max(1000, count * 2)}`,
      `dhcp-leasefile=${dir}/dnsmasq.leases`,
      'no-ping',
      'dhcp-userclass=set:ipxe,iPXE',
      'dhcp-match=set:ipxe,175',
      'dhcp-option=tag:ipxe,encap:175,176,1',
      `dhcp-boot=tag:ipxe,http://${SRV_IP}:${HTTP_PORT}/boot.ipxe`,
      `dhcp-boot=tag:!ipxe,undionly.kpxe,,${SRV_IP}`,
      '',
    ].join('\n'),
  );
  const nbd = path.join(dir, 'nbd-server.conf');
  writeFileSync(
    nbd,
    [
      '[generic]',
      '\tuser = root',
      '\tgroup = root',
      `\tlistenaddr = ${SRV_IP}`,
      `\tport = ${NBD_PORT}`,
      '[root]',
      `\texportname = ${work}/stock/nbd/root.squashfs`,
      '\treadonly = true',
      '',
    ].join('\n'),
  );
  return { dnsmasq, nbd };
}

// ------------------------------------------------------------ namespaces

function netUp(): void {
  sh('ip', ['netns', 'add', srvNs]);
  sh('ip', ['netns', 'add', cliNs]);
  sh('ip', ['-n', srvNs, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', cliNs, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', srvNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'cli0', 'netns', cliNs]);
  sh('ip', ['-n', srvNs, 'addr', 'add', `${SRV_IP}/16`, 'dev', 'eth0']);
  sh('ip', ['-n', srvNs, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', cliNs, 'link', 'set', 'cli0', 'up']);
  // ARP: 1000 clients need 1000 neighbour entries on the server side; the kernel's
  // gc_thresh3 (1024 by default) is global, not per namespace, so it is not raised here.
}

function resetClientAddresses(): void {
  sh('ip', ['-n', cliNs, 'addr', 'flush', 'dev', 'cli0']);
  sh('ip', ['-n', cliNs, 'addr', 'add', `${CLI_IP}/16`, 'dev', 'cli0']);
  // 255.255.255.255 needs a route out of cli0.
  sh('ip', ['-n', cliNs, 'route', 'replace', 'default', 'dev', 'cli0']);
  sh('ip', ['-n', srvNs, 'neigh', 'flush', 'dev', 'eth0']);
}

function netDown(): void {
  for (const ns of [cliNs, srvNs]) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------ processes

function readProc(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** Resident and proportional set size. PSS too, because nbd-server forks one child
 * per client: the children's VmRSS counts the pages they share with their parent
 * again and again, their PSS divides them. */
function memKiB(pid: number): { rss: number; pss: number } {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = /^Rss:\s+(\d+)/m.exec(text)?.[1];
    const pss = /^Pss:\s+(\d+)/m.exec(text)?.[1];
    return { rss: Number(rss ?? 0), pss: Number(pss ?? 0) };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

/** The roots and every descendant, from one pass over /proc. */
function tree(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const p = readProc(Number(e));
    if (!p) continue;
    const list = children.get(p.ppid) ?? [];
    list.push(Number(e));
    children.set(p.ppid, list);
  }
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length > 0) {
    const p = todo.pop();
    if (p === undefined || out.includes(p)) continue;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

interface Cost {
  cpuSeconds: number;
  peakRssMiB: number;
  peakPssMiB: number;
}

class Sampler {
  private lastTicks = new Map<number, number>();
  private startTicks = new Map<number, number>();
  peakRssKiB = 0;
  peakPssKiB = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly roots: () => number[]) {}
  private sample(): void {
    let rss = 0;
    let pss = 0;
    for (const pid of tree(this.roots())) {
      const p = readProc(pid);
      if (!p) continue;
      this.lastTicks.set(pid, p.ticks);
      const m = memKiB(pid);
      rss += m.rss;
      pss += m.pss;
    }
    this.peakRssKiB = Math.max(this.peakRssKiB, rss);
    this.peakPssKiB = Math.max(this.peakPssKiB, pss);
  }
  start(): void {
    this.sample();
    this.startTicks = new Map(this.lastTicks);
    this.peakRssKiB = 0;
    this.peakPssKiB = 0;
    this.timer = setInterval(() => this.sample(), 100);
  }
  stop(): Cost {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    let ticks = 0;
    for (const [pid, t] of this.lastTicks) ticks += t - (this.startTicks.get(pid) ?? 0);
    return { cpuSeconds: ticks / 100, peakRssMiB: this.peakRssKiB / 1024, peakPssMiB: this.peakPssKiB / 1024 };
  }
}

interface Running {
  roots: () => number[];
  stop: () => Promise<void>;
}

function inNs(ns: string, cmd: string[], log: string): ChildProcess {
  const out = openLog(log);
  const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', out, out] });
  closeSync(out);
  return child;
}

function openLog(file: string): number {
  return openSync(file, 'a');
}

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`${what}: not ready after ${ms / 1000} s`);
    await sleep(200);
  }
}

function listening(): string {
  return sh('ip', ['netns', 'exec', srvNs, 'ss', '-lntu']);
}

function portsUp(): boolean {
  const s = listening();
  return [':67 ', ':69 ', `:${HTTP_PORT} `, `:${NBD_PORT} `].every((p) => s.includes(p));
}

async function killTree(roots: number[]): Promise<void> {
  const pids = tree(roots);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // gone
    }
  }
  const until = Date.now() + 10_000;
  while (pids.some((p) => readProc(p)) && Date.now() < until) await sleep(100);
  for (const p of pids) {
    try {
      if (readProc(p)) process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

async function startBootfarm(dir: string): Promise<Running> {
  mkdirSync(path.join(dir, 'state'), { recursive: true });
  const config = bootfarmConfig(dir);
  const child = inNs(srvNs, ['node', mainJs, 'serve', '--config', config], path.join(dir, 'bootfarm.log'));
  const pid = child.pid ?? 0;
  await waitFor(
    'bootfarm',
    () => {
      if (child.exitCode !== null) throw new Error(`bootfarm exited ${child.exitCode}; see ${dir}/bootfarm.log`);
      return portsUp();
    },
    60_000,
  );
  return { roots: () => [pid], stop: () => killTree([pid]) };
}

async function startStock(dir: string): Promise<Running> {
  const c = stockConfigs(dir);
  const log = path.join(dir, 'stock.log');
  const pidFile = path.join(dir, 'nbd-server.pid');
  execFileSync('ip', ['netns', 'exec', srvNs, 'nbd-server', '-C', c.nbd, '-p', pidFile], { stdio: 'ignore' });
  await waitFor('nbd-server pid file', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 10_000);
  const nbdPid = Number(readFileSync(pidFile, 'utf8').trim());
  const dnsmasq = inNs(srvNs, ['dnsmasq', '--keep-in-foreground', '-C', c.dnsmasq, `--pid-file=${dir}/dnsmasq.pid`], log);
  const tftpd = inNs(
    srvNs,
    ['in.tftpd', '--foreground', '--secure', '--user', 'root', '--address', `${SRV_IP}:69`, `${work}/stock/tftp`],
    log,
  );
  const httpd = inNs(
    srvNs,
    [
      '/usr/bin/python3',
      path.join(repo, '../shared/e2e-reference/server/e2e-httpd.py'),
      '--bind',
      SRV_IP,
      '--port',
      String(HTTP_PORT),
      '--root',
      `${work}/stock/http`,
      '--log',
      path.join(dir, 'http.log'),
      '--phonehome-log',
      path.join(dir, 'phonehome.log'),
    ],
    log,
  );
  const roots = (): number[] => [nbdPid, dnsmasq.pid ?? 0, tftpd.pid ?? 0, httpd.pid ?? 0].filter((p) => p > 0);
  await waitFor(
    'stock stack',
    () => {
      for (const [n, ch] of [
        ['dnsmasq', dnsmasq],
        ['in.tftpd', tftpd],
        ['httpd', httpd],
      ] as const) {
        if (ch.exitCode !== null) throw new Error(`${n} exited ${ch.exitCode}; see ${log}`);
      }
      return portsUp();
    },
    30_000,
  );
  return { roots, stop: () => killTree(roots()) };
}

// ------------------------------------------------------------ one round

interface Step {
  step: string;
  start: number;
  end: number;
  bytes?: number;
}
interface MachineResult {
  index: number;
  mac: string;
  ip?: string;
  steps: Step[];
  error?: string;
  failedStep?: string;
  start: number;
  end?: number;
}
interface ClientsOut {
  outcome: string;
  client?: { cpuSeconds: number; loopLagP99ms: number; loopLagMaxms: number };
  malformedDhcp: number;
  machines: MachineResult[];
}

const STEPS = ['dhcp1', 'addr', 'tftp', 'dhcp2', 'script', 'kernel', 'initrd', 'nbd', 'reads'];

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

interface RoundSummary {
  round: number;
  server: string;
  allDoneS: number;
  done: number;
  failures: number;
  failuresByStep: Record<string, number>;
  firstErrors: string[];
  steps: Record<string, { p50ms: number; p99ms: number; n: number }>;
  totalP50s: number;
  totalP99s: number;
  cpuSeconds: number;
  peakRssMiB: number;
  peakPssMiB: number;
  client?: ClientsOut['client'];
  clientUdpDrops?: { rcvbufErrors: number; inErrors: number };
  malformedDhcp: number;
  loadavg: string;
}

function summarize(round: number, server: string, c: ClientsOut, cost: Cost, loadavg: string): RoundSummary {
  const ok = c.machines.filter((m) => m.end !== undefined && !m.error);
  const failed = c.machines.filter((m) => m.error);
  const starts = c.machines.map((m) => m.start);
  const ends = ok.map((m) => m.end ?? 0);
  const steps: RoundSummary['steps'] = {};
  for (const s of STEPS) {
    const d = c.machines.flatMap((m) => m.steps.filter((x) => x.step === s).map((x) => x.end - x.start)).sort((a, b) => a - b);
    steps[s] = { p50ms: pct(d, 50), p99ms: pct(d, 99), n: d.length };
  }
  const totals = ok.map((m) => ((m.end ?? 0) - m.start) / 1000).sort((a, b) => a - b);
  const byStep: Record<string, number> = {};
  for (const m of failed) byStep[m.failedStep ?? '?'] = (byStep[m.failedStep ?? '?'] ?? 0) + 1;
  return {
    round,
    server,
    allDoneS: ends.length > 0 ? (Math.max(...ends) - Math.min(...starts)) / 1000 : NaN,
    done: ok.length,
    failures: failed.length,
    failuresByStep: byStep,
    firstErrors: [...new Set(failed.map((m) => `${m.failedStep}: ${m.error}`))].slice(0, 5),
    steps,
    totalP50s: pct(totals, 50),
    totalP99s: pct(totals, 99),
    cpuSeconds: cost.cpuSeconds,
    peakRssMiB: cost.peakRssMiB,
    peakPssMiB: cost.peakPssMiB,
    client: c.client,
    malformedDhcp: c.malformedDhcp,
    loadavg,
  };
}

/** One generator process for machines first..first+n-1, all starting at startAt. */
async function runWorker(first: number, n: number, startAt: number, log: string): Promise<ClientsOut> {
  const args = [
    'netns',
    'exec',
    cliNs,
    'node',
    '--import',
    'tsx',
    path.join(repo, 'bench/storm/clients.ts'),
    '--iface',
    'cli0',
    '--count',
    String(n),
    '--first-index',
    String(first),
    '--start-at',
    String(startAt),
    '--prefix',
    '16',
    '--seq-mib',
    opts['seq-mib'] ?? '16',
    '--rand-reads',
    opts['rand-reads'] ?? '256',
    '--spread-ms',
    opts['spread-ms'] ?? '1000',
    '--deadline-s',
    opts['deadline-s'] ?? '900',
    ...(opts.trace === undefined ? [] : ['--trace', path.resolve(opts.trace)]),
  ];
  const child = spawn('ip', args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  writeFileSync(log, err);
  const line = out.split('\n').find((l) => l.startsWith('STORM_CLIENTS '));
  if (!line) throw new Error(`storm clients exited ${code} without STORM_CLIENTS: ${err.slice(-500)}`);
  return JSON.parse(line.slice('STORM_CLIENTS '.length)) as ClientsOut;
}

/** The storm over --workers generator processes (machines dealt out in blocks), merged. */
async function runClients(logBase: string): Promise<ClientsOut> {
  // Far enough ahead for every worker's tsx start on a loaded machine.
  const startAt = Date.now() + 8000;
  const per = Math.ceil(count / workers);
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, w) => ({ first: 1 + w * per, n: Math.min(per, count - w * per) }))
      .filter((p) => p.n > 0)
      .map((p, w) => runWorker(p.first, p.n, startAt, `${logBase}.${w}.log`)),
  );
  return {
    outcome: parts.map((p) => p.outcome).join(','),
    client: {
      cpuSeconds: parts.reduce((a, p) => a + (p.client?.cpuSeconds ?? 0), 0),
      loopLagP99ms: Math.max(...parts.map((p) => p.client?.loopLagP99ms ?? 0)),
      loopLagMaxms: Math.max(...parts.map((p) => p.client?.loopLagMaxms ?? 0)),
    },
    malformedDhcp: parts.reduce((a, p) => a + p.malformedDhcp, 0),
    machines: parts.flatMap((p) => p.machines),
  };
}

/** The client namespace's UDP drop counters (/proc/net/snmp): datagrams the
 * generator lost because its socket buffers were full are its own fault, not the server's. */
function udpCounters(): { rcvbufErrors: number; inErrors: number } {
  const lines = sh('ip', ['netns', 'exec', cliNs, 'cat', '/proc/net/snmp'])
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/).map(Number);
  const get = (n: string): number => values[names.indexOf(n)] ?? 0;
  return { rcvbufErrors: get('RcvbufErrors'), inErrors: get('InErrors') };
}

async function round(k: number, server: string): Promise<RoundSummary> {
  const dir = path.join(work, `round-${k}-${server}`);
  mkdirSync(dir, { recursive: true });
  resetClientAddresses();
  const running = server === 'bootfarm' ? await startBootfarm(dir) : await startStock(dir);
  const sampler = new Sampler(running.roots);
  let clients: ClientsOut;
  let cost: Cost;
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const udp0 = udpCounters();
  sampler.start();
  try {
    clients = await runClients(path.join(outDir, `round-${k}-${server}.clients`));
  } finally {
    // Stopped on failure too: its interval would keep this process alive.
    cost = sampler.stop();
    await running.stop();
  }
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.log'))) {
    writeFileSync(path.join(outDir, `round-${k}-${server}.${f}`), readFileSync(path.join(dir, f)));
  }
  writeFileSync(path.join(outDir, `round-${k}-${server}.json`), JSON.stringify(clients));
  const udp1 = udpCounters();
  const s = summarize(k, server, clients, cost, loadavg);
  s.clientUdpDrops = { rcvbufErrors: udp1.rcvbufErrors - udp0.rcvbufErrors, inErrors: udp1.inErrors - udp0.inErrors };
  process.stdout.write(`STORM_ROUND ${JSON.stringify(s)}\n`);
  return s;
}

// ------------------------------------------------------------ table

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : '—');

function table(all: RoundSummary[]): string {
  const lines: string[] = [];
  lines.push(`Boot storm ${runId}: N=${count}, ${rounds} round(s) per server, interleaved; medians over rounds`);
  lines.push('');
  lines.push(
    `| Server | all done (s) | machine p50 / p99 (s) | failures | server CPU (s) | peak RSS / PSS (MiB) | ${STEPS.map((s) => `${s} p50/p99 ms`).join(' | ')} |`,
  );
  lines.push(`|---|---|---|---|---|---|${STEPS.map(() => '---|').join('')}`);
  for (const server of servers) {
    const rs = all.filter((r) => r.server === server);
    if (rs.length === 0) continue;
    const cells = STEPS.map(
      (s) => `${f0(median(rs.map((r) => r.steps[s]?.p50ms ?? NaN)))} / ${f0(median(rs.map((r) => r.steps[s]?.p99ms ?? NaN)))}`,
    );
    lines.push(
      `| ${server} | ${f1(median(rs.map((r) => r.allDoneS)))} (${rs.map((r) => f1(r.allDoneS)).join(', ')}) | ${f1(median(rs.map((r) => r.totalP50s)))} / ${f1(median(rs.map((r) => r.totalP99s)))} | ${rs.map((r) => r.failures).join(', ')} | ${f1(median(rs.map((r) => r.cpuSeconds)))} | ${f0(Math.max(...rs.map((r) => r.peakRssMiB)))} / ${f0(Math.max(...rs.map((r) => r.peakPssMiB)))} | ${cells.join(' | ')} |`,
    );
  }
  const b = all.filter((r) => r.server === 'bootfarm');
  const s = all.filter((r) => r.server === 'stock');
  if (b.length > 0 && s.length > 0) {
    const pairs = Math.min(b.length, s.length);
    const ratios = Array.from({ length: pairs }, (_, i) => (b[i]?.allDoneS ?? NaN) / (s[i]?.allDoneS ?? NaN));
    const cpu = Array.from({ length: pairs }, (_, i) => (b[i]?.cpuSeconds ?? NaN) / (s[i]?.cpuSeconds ?? NaN));
    lines.push('');
    lines.push(
      `bootfarm ÷ stock, time to all done: x${median(ratios).toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}); server CPU x${median(cpu).toFixed(2)}`,
    );
  }
  lines.push('');
  for (const r of all) {
    const c = r.client;
    lines.push(
      `round ${r.round} ${r.server}: all done ${f1(r.allDoneS)} s, ${r.failures} failed, server CPU ${f1(r.cpuSeconds)} s, load ${r.loadavg}; generator CPU ${c ? f1(c.cpuSeconds) : '?'} s, event-loop lag p99 ${c ? f0(c.loopLagP99ms) : '?'} ms, max ${c ? f0(c.loopLagMaxms) : '?'} ms; client UDP receive-buffer drops ${r.clientUdpDrops?.rcvbufErrors ?? '?'}`,
    );
  }
  for (const r of all.filter((x) => x.failures > 0))
    lines.push(`round ${r.round} ${r.server}: ${JSON.stringify(r.failuresByStep)} ${r.firstErrors.join(' | ')}`);
  return lines.join('\n');
}

// ------------------------------------------------------------ main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  if (servers.includes('bootfarm') && !existsSync(mainJs)) throw new Error(`--main-js ${mainJs}: not found (npm run build)`);
  mkdirSync(outDir, { recursive: true });
  process.stdout.write(
    `storm: run ${runId}, N=${count}, rounds ${rounds}, ${workers} generator process(es), servers ${servers.join(',')}, load ${readFileSync('/proc/loadavg', 'utf8').trim()}\n`,
  );
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    netDown();
    rmSync(work, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    prepareFiles();
    netUp();
    const all: RoundSummary[] = [];
    for (let k = 1; k <= rounds; k++) {
      for (const server of k % 2 === 1 ? servers : [...servers].reverse()) all.push(await round(k, server));
    }
    const t = table(all);
    writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify({ runId, count, rounds, servers, rounds_: all }, null, 1));
    writeFileSync(path.join(outDir, 'summary.md'), `${t}\n`);
    process.stdout.write(`${t}\nstorm: raw results in ${outDir}\n`);
  } finally {
    cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`storm: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
});
