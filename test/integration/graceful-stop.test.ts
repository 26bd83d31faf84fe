// Graceful stop with real peers: SIGTERM while a large TFTP download (a lock-step
// client that paces its ACKs) and a large HTTP download (curl --limit-rate) are in
// flight. Both complete byte for byte, a new TFTP request (tftp-hpa) and a new HTTP
// connection (curl) during the drain are refused, and bootfarm exits 0. A transfer
// that outlives server.drainSeconds is cut and the exit is still 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';

const SERVER = '10.9.0.1';
const PEERS = path.join(REPO_ROOT, 'test/lib/tftp-peers.ts');
const API_TOKEN = 'api-token-for-graceful-stop-tests-01';
const NODE = { mac: '52:54:00:00:00:02', hostname: 'client', ip: '10.9.0.2' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('graceful stop (SIGTERM)', () => {
  let lab: NetLab;
  let srv: LabHost;
  let client: LabHost;
  let work: string;
  let root: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-stop-'));
    root = path.join(work, 'root');
    mkdirSync(root);
    // 4096 blocks of 512 bytes, each ACKed 3 ms late: the TFTP download lasts 12 s or more.
    files.set('tftp.bin', randomBytes(2 * 1024 * 1024));
    // 16 MiB at 1 MiB/s: the HTTP download lasts 16 s or so.
    files.set('http.bin', randomBytes(16 * 1024 * 1024));
    for (const [name, data] of files) writeFileSync(path.join(root, name), data);
    lab = await NetLab.create('gs');
    srv = await lab.addHost('srv', { address: `${SERVER}/24` });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('lets a large TFTP and a large HTTP download finish, refuses new ones meanwhile, and exits 0', async () => {
    // The client is a node of the file: the files it is served go on its boot timeline, in the state.
    // Idle keep-alive connections would stay open for an hour: only the drain closing them ends it before drainSeconds.
    const config = {
      server: { address: SERVER, drainSeconds: 120 },
      tftp: { root },
      http: { port: 8080, keepAliveTimeoutSeconds: 3600 },
      api: { token: API_TOKEN },
      nodes: [NODE],
    };
    const server = await startBootfarm(lab, srv.ns, config);
    const tftp = lab.spawn(client.ns, process.execPath, nodeArgs(PEERS, ['slow', SERVER, 'tftp.bin', '3']), 'tftp-slow');
    await tftp.waitFor((l) => l.startsWith('{"port"'), 30_000, 'the TFTP transfer to start');
    const httpOut = path.join(work, 'http.out');
    // Like firmware fetching a kernel, then an initrd: curl keeps the connection open after the first
    // response, for a second request it would send an hour later (--rate 1/h).
    const url = `http://${SERVER}:8080/http.bin`;
    const http = lab.spawn(
      client.ns,
      'curl',
      ['-sS', '--rate', '1/h', '--limit-rate', '1M', '-w', '%{stderr}curl-done %{http_code}\n', '-o', httpOut, url, '-o', '/dev/null', url],
      'curl-slow',
    );
    await waitUntil(() => (statSync(httpOut, { throwIfNoEntry: false })?.size ?? 0) > 0, 30_000, 'the HTTP download to start');

    const since = server.bg.lines.length;
    server.bg.child.kill('SIGTERM');
    await server.waitForLog((l) => l.msg.startsWith('stopping: no new TFTP or HTTP transfers'), 30_000, 'the drain', since);

    // New transfers during the drain: refused at once.
    const newHttp = await lab.exec(client.ns, 'curl', ['-sS', '--max-time', '10', '-o', '/dev/null', `http://${SERVER}:8080/http.bin`]);
    expect(newHttp.code, newHttp.stderr).toBe(7);
    expect(newHttp.stderr).toContain("Couldn't connect to server");
    const newTftp = await lab.exec(client.ns, 'tftp', ['-m', 'binary', SERVER, '-c', 'get', 'tftp.bin', path.join(work, 'refused.bin')]);
    expect(`${newTftp.stdout}${newTftp.stderr}`).toContain('server is stopping, retry later');
    // The downloads started before the signal were still running when those were refused.
    expect(
      server
        .logs()
        .slice(since)
        .some((l) => l.msg === 'transfers in flight finished'),
    ).toBe(false);

    const tftpDone = JSON.parse(await tftp.waitFor((l) => l.includes('"sha256"'), 120_000, 'the TFTP download to end')) as {
      sha256: string;
      size: number;
    };
    expect(tftpDone).toEqual({ size: files.get('tftp.bin')?.length, sha256: sha(files.get('tftp.bin') as Buffer) });
    expect(await http.waitFor((l) => l.startsWith('curl-done'), 120_000, 'the HTTP download to end')).toBe('curl-done 200');
    expect(sha(readFileSync(httpOut))).toBe(sha(files.get('http.bin') as Buffer));
    await http.stop('SIGKILL');

    expect(await server.bg.exited).toBe(0);
    const after = server
      .logs()
      .slice(since)
      .map((l) => l.msg);
    expect(after).toContain('tftp request refused: bootfarm is stopping');
    // Lines of one exit can cross the pipe out of order: their presence is what counts.
    expect(after).toEqual(expect.arrayContaining(['transfers in flight finished', 'stopped']));
    expect(after).not.toContain('drain ended with transfers still in flight: they are cut');

    // The state was written on the way out: after a restart the node's timeline has both files, whole.
    const again = await startBootfarm(lab, srv.ns, config, server.stateDir);
    const r = await lab.exec(srv.ns, 'curl', [
      '-sS',
      '--max-time',
      '10',
      '-H',
      `Authorization: Bearer ${API_TOKEN}`,
      `http://${SERVER}:8080/api/v1/nodes/${NODE.mac}/events`,
    ]);
    const events = (JSON.parse(r.stdout) as { events: Array<{ type: string; detail?: { path?: string; bytes?: number } }> }).events;
    expect(
      events
        .filter((e) => e.type === 'tftp.file' || e.type === 'http.file')
        .map((e) => [e.type, e.detail?.path, e.detail?.bytes])
        .sort(),
    ).toEqual([
      ['http.file', 'http.bin', files.get('http.bin')?.length],
      ['tftp.file', 'tftp.bin', files.get('tftp.bin')?.length],
    ]);
    expect(await again.stop()).toBe(0);
  }, 240_000);

  it('cuts a transfer that outlives server.drainSeconds and still exits 0', async () => {
    const server = await startBootfarm(lab, srv.ns, { server: { address: SERVER, drainSeconds: 1 }, tftp: { root } });
    // One block ACKed every 10 minutes: this transfer never ends by itself within the drain.
    const stalled = lab.spawn(client.ns, process.execPath, nodeArgs(PEERS, ['slow', SERVER, 'tftp.bin', '600000']), 'tftp-stalled');
    await stalled.waitFor((l) => l.startsWith('{"port"'), 30_000, 'the TFTP transfer to start');
    const since = server.bg.lines.length;
    server.bg.child.kill('SIGTERM');
    expect(await server.bg.exited).toBe(0);
    const after = server
      .logs()
      .slice(since)
      .map((l) => l.msg);
    expect(after).toContain('drain ended with transfers still in flight: they are cut');
    expect(after).not.toContain('transfers in flight finished');
    expect(after).toContain('stopped');
    await stalled.stop('SIGKILL');
  });
});
