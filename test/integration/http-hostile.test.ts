// HTTP under attack, in a test namespace: raw TCP sockets from other namespaces
// (test/lib/http-attacker.ts) flood the server with connections, send headers
// one byte at a time (Slowloris), or stop reading a large file; curl is the
// well-behaved client and must still be served. Two bootfarm processes: one
// with small connection caps and long deadlines (the floods), one with short
// deadlines (the slow clients).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import type { Background } from '../../server/lab/proc.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const ATTACKER = path.join(REPO_ROOT, 'test/lib/http-attacker.ts');
const FUZZER = path.join(REPO_ROOT, 'test/lib/http-fuzzer.ts');
const FUZZ_REQUESTS = 100_000;
const SERVER = '10.9.0.1';
const CAPS_PORT = 8080;
const DEADLINES_PORT = 8081;
const BIG_BYTES = 64 * 1024 * 1024;

interface AttackReport {
  event: string;
  opened?: number;
  refused?: number;
  open?: number;
  closedByServer?: number;
  declared?: number;
  received?: number;
  ended?: boolean;
}

describe('HTTP against connection floods and slow clients', () => {
  let lab: NetLab;
  let work: string;
  let client: LabHost;
  const attackers: LabHost[] = [];
  let caps: BootfarmProcess;
  let deadlines: BootfarmProcess;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-http-hostile-'));
    mkdirSync(path.join(work, 'tftpboot'));
    // Larger than what the kernel buffers on both ends of one connection.
    writeFileSync(path.join(work, 'tftpboot/big.bin'), randomBytes(BIG_BYTES));
    // A small published image for the fuzzer's paths to hit.
    mkdirSync(path.join(work, 'images/base/v1/amd64'), { recursive: true });
    for (const f of ['vmlinuz', 'initrd.img', 'root.squashfs', 'manifest.json'])
      writeFileSync(path.join(work, 'images/base/v1/amd64', f), randomBytes(f === 'vmlinuz' ? 65_537 : 4096));
    symlinkSync('v1', path.join(work, 'images/base/current'));
    lab = await NetLab.create('hh');
    const srv = await lab.addHost('srv', { address: `${SERVER}/24` });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    for (const n of [11, 12, 13]) attackers.push(await lab.addHost(`a${n}`, { address: `10.9.0.${n}/24` }));
    const base = {
      server: { address: SERVER },
      tftp: { enabled: false, root: path.join(work, 'tftpboot') },
      images: { dir: path.join(work, 'images') },
    };
    caps = await startBootfarm(lab, srv.ns, {
      ...base,
      http: { port: CAPS_PORT, maxConnections: 24, maxConnectionsPerClient: 8, headersTimeoutSeconds: 60, requestTimeoutSeconds: 60 },
    });
    deadlines = await startBootfarm(lab, srv.ns, {
      ...base,
      http: { port: DEADLINES_PORT, headersTimeoutSeconds: 2, requestTimeoutSeconds: 4, keepAliveTimeoutSeconds: 2, idleTimeoutSeconds: 3 },
    });
  });
  afterAll(async () => {
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const attack = (host: LabHost, args: string[]): Background =>
    lab.spawn(host.ns, process.execPath, nodeArgs(ATTACKER, args), `http-attacker@${host.ns}`);
  const report = async (bg: Background, event: string, timeoutMs: number): Promise<AttackReport> =>
    JSON.parse(
      await bg.waitFor((l) => l.startsWith('{') && (JSON.parse(l) as AttackReport).event === event, timeoutMs, `attacker ${event}`),
    ) as AttackReport;
  const curl = async (port: number, file = 'healthz') =>
    (await lab.exec(client.ns, 'curl', ['-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_code}', `http://${SERVER}:${port}/${file}`]))
      .stdout;
  const metrics = async (port: number) =>
    (await lab.exec(client.ns, 'curl', ['-sS', '-m', '10', `http://${SERVER}:${port}/metrics`])).stdout;
  const counter = (text: string, series: string) =>
    Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  /** Served again once the attack is over: the server may take a moment to see the sockets close. */
  const servedEventually = async (port: number): Promise<string> => {
    let status = '';
    for (let i = 0; i < 20 && status !== '200'; i++) {
      status = await curl(port);
      if (status !== '200') await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return status;
  };

  it('one address opening many connections keeps http.maxConnectionsPerClient of them; another client is served meanwhile', async () => {
    const flood = attack(attackers[0] as LabHost, ['hold', SERVER, String(CAPS_PORT), '20', '60000']);
    const holding = await report(flood, 'holding', 30_000);
    expect(holding).toMatchObject({ opened: 20, refused: 12, open: 8 });
    expect(await curl(CAPS_PORT)).toBe('200');
    await flood.stop('SIGTERM', 3000);
    expect(counter(await metrics(CAPS_PORT), 'bootfarm_http_connections_refused_total{reason="client-full"}')).toBeGreaterThanOrEqual(12);
  });

  it('connections from several addresses fill http.maxConnections: a new client is turned away until they go, then served', async () => {
    const floods: Background[] = [];
    for (const host of attackers) {
      const flood = attack(host, ['hold', SERVER, String(CAPS_PORT), '8', '60000']);
      floods.push(flood);
      expect(await report(flood, 'holding', 30_000)).toMatchObject({ opened: 8, refused: 0, open: 8 });
    }
    // 24 of 24 open: curl's connection is closed before a byte of reply.
    expect(await curl(CAPS_PORT)).toBe('000');
    for (const flood of floods) await flood.stop('SIGTERM', 3000);
    expect(await servedEventually(CAPS_PORT)).toBe('200');
    const text = await metrics(CAPS_PORT);
    expect(counter(text, 'bootfarm_http_connections_refused_total{reason="server-full"}')).toBeGreaterThanOrEqual(1);
  });

  it('Slowloris (headers a byte a second) and silent connections are closed by the server at the headers deadline; curl is served', async () => {
    const slow = attack(attackers[1] as LabHost, ['slowloris', SERVER, String(DEADLINES_PORT), '6', '60000']);
    const done = await report(slow, 'done', 90_000);
    expect(done).toMatchObject({ opened: 6, closedByServer: 6 });
    expect(await curl(DEADLINES_PORT)).toBe('200');
    expect(counter(await metrics(DEADLINES_PORT), 'bootfarm_http_connections_timed_out_total{phase="request"}')).toBeGreaterThanOrEqual(6);
  }, 120_000);

  it('a client that stops reading a large file is disconnected after http.idleTimeoutSeconds', async () => {
    // Sanity: the whole file is served to a client that reads.
    expect(await curl(DEADLINES_PORT, 'big.bin')).toBe('200');
    const stalled = attack(attackers[2] as LabHost, ['stall', SERVER, String(DEADLINES_PORT), 'big.bin', '10000']);
    const done = await report(stalled, 'done', 90_000);
    expect(done.declared).toBe(BIG_BYTES);
    expect(done.ended).toBe(true);
    expect(done.received).toBeLessThan(BIG_BYTES);
    expect(counter(await metrics(DEADLINES_PORT), 'bootfarm_http_connections_timed_out_total{phase="idle"}')).toBeGreaterThanOrEqual(1);
    expect(await curl(DEADLINES_PORT)).toBe('200');
  }, 120_000);

  it(`${FUZZ_REQUESTS} fuzzed requests: no crash, bounded memory, curl served byte for byte afterwards`, async () => {
    const rssKiB = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${deadlines.bg.pid}/status`, 'utf8'))?.[1]);
    const before = { rss: rssKiB('VmRSS'), peak: rssKiB('VmHWM') };
    const run = lab.spawn(
      (attackers[0] as LabHost).ns,
      process.execPath,
      nodeArgs(FUZZER, [SERVER, String(DEADLINES_PORT), String(FUZZ_REQUESTS), '7', '16']),
      'http-fuzzer',
    );
    const done = JSON.parse(await run.waitFor((l) => l.startsWith('{"event":"done"'), 240_000, 'fuzzer done')) as {
      sent: number;
      answered: number;
      connections: number;
      statuses: Record<string, number>;
      closedEarly: number;
    };
    expect(done.sent).toBe(FUZZ_REQUESTS);
    // Requests pipelined after one that makes the server close are never read; most are.
    expect(done.answered).toBeGreaterThan(FUZZ_REQUESTS / 2);
    expect(deadlines.bg.child.exitCode).toBeNull();
    // Every kind of answer a hostile client should get came back.
    for (const status of ['200', '206', '400', '403', '404', '416', '431']) expect(done.statuses[status] ?? 0, status).toBeGreaterThan(0);
    const kernel = path.join(work, 'kernel-after-fuzz');
    const r = await lab.exec(client.ns, 'curl', [
      '-sS',
      '-f',
      '-o',
      kernel,
      `http://${SERVER}:${DEADLINES_PORT}/images/base/amd64/vmlinuz`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(createHash('sha256').update(readFileSync(kernel)).digest('hex')).toBe(
      createHash('sha256')
        .update(readFileSync(path.join(work, 'images/base/v1/amd64/vmlinuz')))
        .digest('hex'),
    );
    // Resident memory of the server process (VmRSS now, VmHWM the peak since it started), for bench/RESULTS.md.
    expect(readFileSync(`/proc/${deadlines.bg.pid}/status`, 'utf8')).toMatch(/^Name:\s+node/m);
    const peakKiB = rssKiB('VmHWM');
    const mib = (kib: number) => Math.round(kib / 1024);
    process.stdout.write(
      `HTTP_FUZZ ${JSON.stringify({ ...done, serverRssMiB: { beforeFuzz: mib(before.rss), peakBeforeFuzz: mib(before.peak), afterFuzz: mib(rssKiB('VmRSS')), peak: mib(peakKiB) } })}\n`,
    );
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB).toBeLessThan(512 * 1024);
  }, 300_000);

  it('both servers are still running and hold no leftover connections', async () => {
    expect(caps.bg.child.exitCode).toBeNull();
    expect(deadlines.bg.child.exitCode).toBeNull();
    // The /metrics request itself is the one open connection.
    expect(counter(await metrics(CAPS_PORT), 'bootfarm_http_connections_open')).toBe(1);
  });
});
