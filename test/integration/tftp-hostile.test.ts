// bootfarm's TFTP server against an attacker on the boot segment (issue 10), in
// test namespaces: datagrams from source port 0 (forged on a raw socket by
// test/lib/udp-forge.py), a timeout option of 255 s, and a stateful fuzzer of
// 100,000 packets; afterwards tftp-hpa must still fetch a file byte for byte,
// every transfer slot must be free again (bootfarm_tftp_transfers_in_flight,
// read from /metrics with curl) and the server's peak RSS must stay bounded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { encodeAck, encodeRequest } from '../../server/tftp/packet.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const PEERS = path.join(REPO_ROOT, 'test/lib/tftp-peers.ts');
const RAW = path.join(REPO_ROOT, 'test/lib/udp-forge.py');
const FUZZER = path.join(REPO_ROOT, 'test/lib/tftp-fuzzer.ts');
const SERVER = '10.9.0.1';
/** Extra client addresses, so the fuzzer's transfers are not all held by one per-client cap. */
const CLIENT_IPS = ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6'];
const MAX_TRANSFERS = 100;

describe('TFTP under hostile traffic', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let client: LabHost;
  let work: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-tftp-hostile-'));
    const root = path.join(work, 'root');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    const put = (name: string, data: Buffer) => {
      files.set(name, data);
      writeFileSync(path.join(root, name), data);
    };
    put('small.bin', randomBytes(64 * 1024 + 3));
    put('mid.bin', randomBytes(1024 * 1024 + 17));
    put('sub/hi.txt', Buffer.from('hello\n'));
    lab = await NetLab.create('th');
    const srv = await lab.addHost('srv', { address: `${SERVER}/24` });
    client = await lab.addHost('cli', { address: `${CLIENT_IPS[0]}/24` });
    for (const ip of CLIENT_IPS.slice(1)) await lab.ip(client.ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
    server = await startBootfarm(lab, srv.ns, {
      server: { address: SERVER },
      tftp: { root, maxTransfers: MAX_TRANSFERS, maxTransfersPerClient: 8, maxTimeoutSeconds: 5 },
      http: { port: 8080 },
    });
  });
  afterAll(async () => {
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const inClient = (cmd: string, args: string[], timeoutMs = 120_000) => lab.exec(client.ns, cmd, args, timeoutMs);

  /** Sends datagrams with any source (port 0 included) from the client namespace. */
  async function forge(datagrams: Array<{ srcPort: number; dstPort: number; payload: Buffer }>): Promise<void> {
    const script = path.join(work, `forge-${randomBytes(4).toString('hex')}.txt`);
    writeFileSync(
      script,
      datagrams.map((d) => `${CLIENT_IPS[0]} ${d.srcPort} ${SERVER} ${d.dstPort} ${d.payload.toString('hex')}\n`).join(''),
    );
    const r = await inClient('sh', ['-c', `python3 ${RAW} < ${script}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sent: datagrams.length, errors: 0 });
  }

  /** One sample from /metrics: the value of `name{labels}` (0 when the series does not exist yet). */
  async function metric(name: string, labels = ''): Promise<number> {
    const r = await inClient('curl', ['-sS', '--max-time', '10', `http://${SERVER}:8080/metrics`]);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  async function waitForMetric(
    name: string,
    labels: string,
    test: (v: number) => boolean,
    what: string,
    timeoutMs = 60_000,
  ): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await metric(name, labels);
      if (test(v)) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${name}{${labels}} = ${v}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async function fetchWithTftpHpa(name: string): Promise<Buffer> {
    const target = path.join(work, `hpa-${randomBytes(4).toString('hex')}`);
    const r = await inClient('tftp', ['-m', 'binary', SERVER, '-c', 'get', name, target]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/Error code/);
    return readFileSync(target);
  }

  it('RRQ, then a datagram from source port 0 to the transfer port: no reply, the process lives, the transfer completes', async () => {
    // A lock-step client ACKing every 20 ms; its transfer port is printed first.
    const slow = lab.spawn(client.ns, process.execPath, nodeArgs(PEERS, ['slow', SERVER, 'small.bin', '20']), 'slow-client');
    const port = (JSON.parse(await slow.waitFor((l) => l.includes('"port"'), 15_000, 'the transfer port')) as { port: number }).port;
    await forge([
      { srcPort: 0, dstPort: port, payload: encodeAck(1) },
      { srcPort: 0, dstPort: port, payload: Buffer.from('junk') },
    ]);
    const done = JSON.parse(await slow.waitFor((l) => l.includes('sha256'), 60_000, 'the slow transfer to finish')) as { sha256: string };
    expect(done.sha256).toBe(sha(files.get('small.bin') as Buffer));
    expect(server.bg.child.exitCode).toBeNull();
    expect(await metric('bootfarm_tftp_dropped_total', 'reason="source-port-0"')).toBe(2);
    expect(server.logs().filter((l) => l.level >= 50)).toEqual([]);
  });

  it('1000 read requests from source port 0 get no reply and hold no transfer slot', async () => {
    const before = await metric('bootfarm_tftp_dropped_total', 'reason="source-port-0"');
    // In batches of 50, paced, so the server's receive buffer does not simply drop most of them.
    for (let batch = 0; batch < 20; batch++) {
      await forge(
        Array.from({ length: 50 }, () => ({
          srcPort: 0,
          dstPort: 69,
          payload: encodeRequest('rrq', 'small.bin', 'octet', [['tsize', '0']]),
        })),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    // A slot leaked per request would leave TFTP answering "busy" to everyone.
    expect(sha(await fetchWithTftpHpa('small.bin'))).toBe(sha(files.get('small.bin') as Buffer));
    expect(await waitForMetric('bootfarm_tftp_transfers_in_flight', '', (v) => v === 0, "tftp-hpa's slot to be freed")).toBe(0);
    // More of them were read than tftp.maxTransfers, so the fetch above was not luck.
    expect((await metric('bootfarm_tftp_dropped_total', 'reason="source-port-0"')) - before).toBeGreaterThan(MAX_TRANSFERS);
    expect(
      server.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('tftp datagram from port 0')).length,
    ).toBeLessThanOrEqual(20);
    expect(server.bg.child.exitCode).toBeNull();
  });

  it('a timeout option of 255 s is left out of the OACK, and the abandoned transfer frees its slot', async () => {
    const since = server.bg.lines.length;
    const r = await inClient(
      process.execPath,
      nodeArgs(PEERS, ['first-reply', SERVER, 'mid.bin', 'timeout=255', 'tsize=0', 'blksize=1024']),
    );
    expect(r.code, r.stderr).toBe(0);
    const reply = JSON.parse(r.stdout) as { op: string; options: Array<[string, string]> };
    expect(reply.op).toBe('oack');
    expect(reply.options).toEqual([
      ['tsize', String(files.get('mid.bin')?.length)],
      ['blksize', '1024'],
    ]);
    // The client never ACKs: the server gives up after its own retransmissions (default
    // timer), not after 3 x 255 s; the slot is then free again.
    const failed = await server.waitForLog(
      (l) => l.msg === 'tftp transfer failed' && l.file === 'mid.bin',
      90_000,
      'the abandoned transfer to time out',
      since,
    );
    expect(failed.outcome).toBe('timeout');
    expect(await waitForMetric('bootfarm_tftp_transfers_in_flight', '', (v) => v === 0, 'the slot to be freed')).toBe(0);
    expect(await metric('bootfarm_tftp_options_ignored_total', 'option="timeout"')).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('survives a stateful fuzzer of 100,000 packets from ports 0, 1, 68, 69, 65535 and ephemeral ones; still serves, frees every slot, RSS bounded', async () => {
    const pid = server.bg.pid;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('main.ts');
    const rssKiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const rssBeforeKiB = rssKiB();
    const logsBefore = server.bg.lines.length;
    let rssSampledPeakKiB = rssBeforeKiB;
    const sampler = setInterval(() => {
      try {
        rssSampledPeakKiB = Math.max(rssSampledPeakKiB, rssKiB());
      } catch {
        /* exited: asserted below */
      }
    }, 200);
    const fuzz = await inClient(
      process.execPath,
      nodeArgs(FUZZER, [SERVER, '100000', '7', CLIENT_IPS.join(','), 'small.bin,mid.bin,sub/hi.txt']),
      180_000,
    ).finally(() => clearInterval(sampler));
    expect(fuzz.code, fuzz.stderr).toBe(0);
    const summary = JSON.parse(fuzz.stdout.trim().split('\n').at(-1) ?? '{}') as {
      sent: number;
      port0Sent: number;
      transferPortsLearned: number;
      sourcePorts: number[];
      replies: number;
    };
    const logLines = server.bg.lines.length - logsBefore;
    expect(summary.sent).toBe(100_000);
    expect(summary.port0Sent).toBeGreaterThan(1000);
    expect(summary.transferPortsLearned).toBeGreaterThan(0);
    expect(summary.sourcePorts).toEqual(expect.arrayContaining([1, 68, 69, 65535]));
    expect(server.bg.child.exitCode).toBeNull();
    // Every transfer the fuzzer opened ends (completed, aborted or timed out) and gives its slot back.
    expect(await waitForMetric('bootfarm_tftp_transfers_in_flight', '', (v) => v === 0, 'every fuzzed transfer to end', 90_000)).toBe(0);
    expect(sha(await fetchWithTftpHpa('mid.bin'))).toBe(sha(files.get('mid.bin') as Buffer));
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const peakKiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    const dropped = await metric('bootfarm_tftp_dropped_total', 'reason="source-port-0"');
    process.stdout.write(
      `tftp fuzz: ${JSON.stringify({ ...summary, serverRssBeforeMiB: Math.round(rssBeforeKiB / 1024), serverRssSampledPeakMiB: Math.round(rssSampledPeakKiB / 1024), serverVmHwmMiB: Math.round(peakKiB / 1024), port0Dropped: dropped, serverLogLines: logLines, malformed: await metric('bootfarm_tftp_malformed_total') })}\n`,
    );
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB).toBeLessThan(400 * 1024);
    expect(dropped).toBeGreaterThan(0);
    expect(server.logs().filter((l) => l.msg === 'tftp request failed')).toEqual([]);
    // Refusals, drops and failed transfers are logged at a bounded rate: far fewer lines than packets.
    expect(logLines).toBeLessThan(10_000);
  }, 300_000);
});
