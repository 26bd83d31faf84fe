// The built-in NBD server's limits against raw attacker clients in a test
// namespace: a refused client is hung up on, the handshake is bounded (deadline,
// options, option size), connections are capped per address and in all, and a
// client that floods requests without reading its replies neither grows the
// server's memory nor stops it serving others (nbdcopy).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { REP } from '../lib/nbd-wire.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const URI = 'nbd://10.9.0.1:10809';
const ATTACKER = path.join(REPO_ROOT, 'test/lib/nbd-attacker.ts');
const LIMITS = {
  handshakeTimeoutSeconds: 2,
  maxConnectionsPerClient: 4,
  maxConnections: 7,
  maxHandshakeOptions: 32,
  maxBufferedReadMiB: 40,
};

interface OptionOutcome {
  closed: boolean;
  greeting: boolean;
  replies: number[];
}

describe('built-in NBD server limits', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let srv: LabHost;
  let client: LabHost;
  let client2: LabHost;
  let client3: LabHost;
  let stranger: LabHost;
  let disk: Buffer;

  beforeAll(async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-nbd-limits-'));
    disk = randomBytes(8 * 1024 * 1024);
    writeFileSync(path.join(work, 'disk.img'), disk);
    mkdirSync(path.join(work, 'tftpboot'));
    lab = await NetLab.create('nl');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    stranger = await lab.addHost('str', { address: '10.9.0.3/24' });
    client2 = await lab.addHost('cl2', { address: '10.9.0.4/24' });
    client3 = await lab.addHost('cl3', { address: '10.9.0.5/24' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      // HTTP only for /metrics (it serves boot files from tftp.root).
      http: { port: 8080 },
      tftp: { enabled: false, root: path.join(work, 'tftpboot') },
      nbd: { port: 10809, exports: [{ name: 'disk', file: path.join(work, 'disk.img') }], ...LIMITS },
      images: { dir: path.join(work, 'images') },
      // 10.9.0.2, 10.9.0.4 and 10.9.0.5 are nodes' addresses; 10.9.0.3 holds no lease and is nobody's.
      nodes: [
        { mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' },
        { mac: '52:54:00:00:00:02', hostname: 'node-2', arch: 'amd64', ip: '10.9.0.4' },
        { mac: '52:54:00:00:00:03', hostname: 'node-3', arch: 'amd64', ip: '10.9.0.5' },
      ],
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  const attack = async <T>(host: LabHost, args: string[]): Promise<T> => {
    const r = await lab.exec(
      host.ns,
      process.execPath,
      nodeArgs(ATTACKER, [args[0] as string, '10.9.0.1', '10809', ...args.slice(1)]),
      60_000,
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as T;
  };
  const metrics = async (): Promise<string> => {
    const r = await lab.exec(srv.ns, 'curl', ['-sS', 'http://10.9.0.1:8080/metrics']);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const metric = (text: string, series: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.split(' ')[1]) : 0;
  };
  const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.bg.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const copyHash = async (host: LabHost) => {
    const r = await lab.exec(host.ns, 'sh', ['-c', `nbdcopy ${URI}/disk - | sha256sum`], 60_000);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.split(' ')[0];
  };
  /** Connections just closed by a client are released when the server sees the FIN: wait until the address gets a greeting again. */
  const admittedAgain = async (host: LabHost) => {
    for (let i = 0; i < 50; i++) {
      if ((await attack<{ bytes: number }>(host, ['probe'])).bytes >= 18) return;
    }
    throw new Error(`${host.address ?? host.ns} is still over the connection cap`);
  };

  it('answers a refused client ERR_POLICY once and closes the connection; the options it floods after are not answered', async () => {
    const since = server.bg.lines.length;
    const before = metric(await metrics(), 'bootfarm_nbd_handshakes_ended_total{reason="policy"}');
    const outcome = await attack<OptionOutcome>(stranger, ['refused-flood', 'disk', '200']);
    expect(outcome).toEqual({ closed: true, greeting: true, replies: [REP.ERR_POLICY] });
    await server.waitForLog((l) => l.msg === 'nbd client refused' && l.client === '10.9.0.3', 5_000, 'the refusal in the log', since);
    expect(metric(await metrics(), 'bootfarm_nbd_handshakes_ended_total{reason="policy"}')).toBe(before + 1);
  });

  it('disconnects a client that has not reached transmission within nbd.handshakeTimeoutSeconds', async () => {
    const since = server.bg.lines.length;
    const outcome = await attack<OptionOutcome>(client, ['idle']);
    expect(outcome).toEqual({ closed: true, greeting: true, replies: [] });
    await server.waitForLog((l) => l.msg === 'nbd handshake timed out' && l.client === '10.9.0.2', 5_000, 'the timeout in the log', since);
    expect(metric(await metrics(), 'bootfarm_nbd_handshakes_ended_total{reason="timeout"}')).toBeGreaterThanOrEqual(1);
  });

  it('ends a handshake after nbd.maxHandshakeOptions options', async () => {
    const outcome = await attack<OptionOutcome>(client, ['options', '500']);
    expect(outcome).toEqual({
      closed: true,
      greeting: true,
      replies: Array.from({ length: LIMITS.maxHandshakeOptions }, () => REP.ERR_UNSUP),
    });
    expect(metric(await metrics(), 'bootfarm_nbd_handshakes_ended_total{reason="too-many-options"}')).toBe(1);
  });

  it('closes on an option claiming more data than any option needs, without waiting for that data', async () => {
    const outcome = await attack<OptionOutcome>(client, ['big-option', '60000']);
    expect(outcome).toEqual({ closed: true, greeting: true, replies: [] });
  });

  it('caps connections per address and in all: the one over is closed before the greeting, counted and logged', async () => {
    const since = server.bg.lines.length;
    const holdA = lab.spawn(
      client.ns,
      process.execPath,
      nodeArgs(ATTACKER, ['hold', '10.9.0.1', '10809', 'disk', String(LIMITS.maxConnectionsPerClient)]),
      'nbd-hold-a',
    );
    expect(JSON.parse(await holdA.waitFor((l) => l.startsWith('{"held"'), 30_000, 'node-1 holding'))).toEqual({
      held: [true, true, true, true],
    });
    // node-1 is at its cap; node-2 and the stranger are not.
    expect(await attack<{ bytes: number; closed: boolean }>(client, ['probe'])).toEqual({ bytes: 0, closed: true });
    await server.waitForLog(
      (l) => l.msg === 'nbd connection rejected: over the cap' && l.client === '10.9.0.2' && l.reason === 'per-client-cap',
      5_000,
      'the per-client rejection',
      since,
    );
    const holdB = lab.spawn(client2.ns, process.execPath, nodeArgs(ATTACKER, ['hold', '10.9.0.1', '10809', 'disk', '3']), 'nbd-hold-b');
    expect(JSON.parse(await holdB.waitFor((l) => l.startsWith('{"held"'), 30_000, 'node-2 holding'))).toEqual({ held: [true, true, true] });
    // 4 + 3 = nbd.maxConnections: any other admitted client is turned away...
    expect(await attack<{ bytes: number; closed: boolean }>(client3, ['probe'])).toEqual({ bytes: 0, closed: true });
    await server.waitForLog(
      (l) => l.msg === 'nbd connection rejected: over the cap' && l.client === '10.9.0.5' && l.reason === 'global-cap',
      5_000,
      'the global rejection',
      since,
    );
    // ...while a refused client still gets its greeting (and, on its first option, the reason):
    // refused connections have a cap of their own (test/unit/nbd-refused-cap.test.ts).
    expect((await attack<{ bytes: number; closed: boolean }>(stranger, ['probe'])).bytes).toBeGreaterThan(0);
    const text = await metrics();
    expect(metric(text, 'bootfarm_nbd_connections_rejected_total{reason="per-client-cap"}')).toBe(1);
    expect(metric(text, 'bootfarm_nbd_connections_rejected_total{reason="global-cap"}')).toBe(1);
    expect(metric(text, 'bootfarm_nbd_connections')).toBe(7);
    // Closing the held connections gives the slots back.
    await holdA.stop('SIGTERM', 5000);
    await holdB.stop('SIGTERM', 5000);
    await admittedAgain(client);
    expect(await copyHash(client)).toBe(sha(disk));
  });

  it('stops reading from a client that floods requests without reading replies; memory stays bounded and others are served', async () => {
    const baseline = rssMiB();
    const flood = lab.spawn(
      client.ns,
      process.execPath,
      nodeArgs(ATTACKER, ['flood', '10.9.0.1', '10809', 'disk', '4000000']),
      'nbd-flood',
    );
    let peak = baseline;
    while (!flood.lines.some((l) => l.startsWith('{"sent"')) && flood.child.exitCode === null) {
      peak = Math.max(peak, rssMiB());
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = JSON.parse(flood.lines.find((l) => l.startsWith('{"sent"')) as string) as { sent: number; stalled: boolean };
    // 4,000,000 requests (112 MB) were to be sent; the server stopped reading long before.
    expect(result.stalled, JSON.stringify(result)).toBe(true);
    expect(result.sent).toBeLessThan(4_000_000);
    // While the flooder holds its connection open, another node copies the export.
    expect(await copyHash(client2)).toBe(sha(disk));
    peak = Math.max(peak, rssMiB());
    const figure = `RSS ${baseline.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB; flooder sent ${result.sent} requests before the server stopped reading`;
    console.log(`nbd flood: ${figure}`);
    expect(peak - baseline, figure).toBeLessThan(64);
    await flood.stop('SIGTERM', 5000);
    expect(server.bg.child.exitCode).toBeNull();
  }, 120_000);

  it('bounds the read data held for clients that never read, across their connections, and keeps serving others', async () => {
    const baseline = rssMiB();
    // Three connections each ask for 3,000 MiB in 1 MiB READs and never read a byte.
    const greedy = Array.from({ length: 3 }, (_, i) =>
      lab.spawn(
        client.ns,
        process.execPath,
        nodeArgs(path.join(REPO_ROOT, 'test/lib/nbd-greedy.ts'), ['10.9.0.1', '10809', 'disk', '3000', '600000']),
        `nbd-greedy-${i}`,
      ),
    );
    let peak = baseline;
    let held = 0;
    for (let i = 0; i < 40; i++) {
      peak = Math.max(peak, rssMiB());
      held = metric(await metrics(), 'bootfarm_nbd_buffered_read_bytes');
      if (held >= LIMITS.maxBufferedReadMiB * 1024 * 1024) break;
    }
    // The budget is spent (and not exceeded but for one read per connection).
    expect(held).toBeGreaterThanOrEqual(LIMITS.maxBufferedReadMiB * 1024 * 1024);
    expect(held).toBeLessThanOrEqual((LIMITS.maxBufferedReadMiB + 3) * 1024 * 1024);
    // Another node still copies the export, one read per connection at a time.
    expect(await copyHash(client2)).toBe(sha(disk));
    peak = Math.max(peak, rssMiB());
    const figure = `RSS ${baseline.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB with 3 connections asking for 9,000 MiB unread (nbd.maxBufferedReadMiB ${LIMITS.maxBufferedReadMiB})`;
    console.log(`nbd greedy: ${figure}`);
    expect(peak - baseline, figure).toBeLessThan(LIMITS.maxBufferedReadMiB + 40);
    for (const g of greedy) await g.stop('SIGTERM', 5000);
    expect(server.bg.child.exitCode).toBeNull();
  }, 120_000);
});
