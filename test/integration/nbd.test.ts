// The built-in NBD server against libnbd (nbdinfo, nbdcopy, the Python binding)
// and QEMU (qemu-img, qemu-io), in a test namespace: listing, a whole 256 MiB
// copy, ranges, 20 concurrent clients, a version switch under a connected
// client, a client that never reads, and the lease-based access policy (hostile
// clients: test/integration/nbd-limits.test.ts and nbd-fuzz.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const URI = 'nbd://10.9.0.1:10809';

describe('built-in NBD server', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let client: LabHost;
  let stranger: LabHost;
  let work: string;
  let root: Buffer;
  let disk: Buffer;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-nbd-'));
    root = randomBytes(256 * 1024 * 1024);
    mkdirSync(path.join(work, 'images/base/v1/amd64'), { recursive: true });
    writeFileSync(path.join(work, 'images/base/v1/amd64/root.squashfs'), root);
    symlinkSync('v1', path.join(work, 'images/base/current'));
    disk = randomBytes(8 * 1024 * 1024);
    writeFileSync(path.join(work, 'disk.img'), disk);

    lab = await NetLab.create('nb');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    stranger = await lab.addHost('str', { address: '10.9.0.3/24' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      // 20 concurrent clients below come from one address.
      nbd: { port: 10809, exports: [{ name: 'disk', file: path.join(work, 'disk.img') }], maxConnectionsPerClient: 32 },
      images: { dir: path.join(work, 'images') },
      // 10.9.0.2 is a node's address; 10.9.0.3 holds no lease and is nobody's.
      nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' }],
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  const inClient = (cmd: string, args: string[], timeoutMs = 120_000) => lab.exec(client.ns, cmd, args, timeoutMs);

  it('nbdinfo lists the exports and describes one read-only, flushable, multi-conn', async () => {
    const list = await inClient('nbdinfo', ['--list', '--json', URI]);
    expect(list.code, list.stderr).toBe(0);
    const exports = (
      JSON.parse(list.stdout) as {
        exports: Array<{
          'export-name': string;
          'export-size': number;
          is_read_only: boolean;
          can_flush: boolean;
          can_multi_conn: boolean;
        }>;
      }
    ).exports;
    // The current version under <image>/<arch>, and each version under its own name (what nodes attach).
    expect(exports.map((e) => e['export-name'])).toEqual(['base/amd64', 'base/v1/amd64', 'disk']);
    expect(exports[0]).toMatchObject({ 'export-size': 256 * 1024 * 1024, is_read_only: true, can_flush: true, can_multi_conn: true });
  });

  it('nbdcopy copies the whole 256 MiB root and the sha256 matches', async () => {
    const r = await inClient('sh', ['-c', `nbdcopy ${URI}/base/amd64 - | sha256sum`], 180_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split(' ')[0]).toBe(sha(root));
    await server.waitForLog(
      (l) => l.msg === 'nbd root attached' && l.node === 'node-1' && l.export === 'base/amd64',
      5_000,
      'the attach event',
    );
  }, 240_000);

  it('qemu-img describes the export and qemu-io reads verify byte for byte', async () => {
    const info = await inClient('qemu-img', ['info', '--output=json', `${URI}/disk`]);
    expect(JSON.parse(info.stdout)).toMatchObject({ 'virtual-size': 8 * 1024 * 1024, format: 'raw' });
    // read -P checks every byte of the range against the pattern; the range is one byte long.
    const offsets = [0, 5000, 4 * 1024 * 1024 + 3, 8 * 1024 * 1024 - 1];
    const io = await inClient('qemu-io', [
      '-r',
      '-f',
      'raw',
      ...offsets.flatMap((o) => ['-c', `read -P ${disk[o]} ${o} 1`]),
      `${URI}/disk`,
    ]);
    expect(io.stdout).not.toContain('Pattern verification failed');
    for (const o of offsets) expect(io.stdout).toContain(`read 1/1 bytes at offset ${o}`);
    const past = await inClient('qemu-io', ['-r', '-f', 'raw', '-c', `read ${8 * 1024 * 1024 - 512} 1024`, `${URI}/disk`]);
    expect(past.stdout + past.stderr).toMatch(/read failed|Invalid argument|Input\/output error|out of range|beyond/i);
    // libnbd reads of arbitrary ranges.
    const range = await inClient('/usr/bin/python3', [path.join(REPO_ROOT, 'test/lib/nbd-range.py'), `${URI}/disk`, '123457', '1000001']);
    expect(range.stdout.trim()).toBe(sha(disk.subarray(123457, 123457 + 1000001)));
  });

  it('refuses writes itself: WRITE, TRIM and WRITE_ZEROES that reach the server are answered EPERM and the image is unchanged', async () => {
    // qemu-io and libnbd refuse a write to a read-only export before sending it; with
    // libnbd's strict mode off the requests go out, so the answer is the server's.
    const since = server.bg.lines.length;
    const r = await inClient('/usr/bin/python3', [path.join(REPO_ROOT, 'test/lib/nbd-write.py'), `${URI}/disk`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['read-only True', 'write EPERM', 'trim EPERM', 'write-zeroes EPERM']);
    for (const command of ['write', 'trim', 'write-zeroes']) {
      await server.waitForLog(
        (l) => l.msg === 'nbd request refused' && l.command === command && l.error === 'EPERM' && l.node === 'node-1',
        5_000,
        `the server's refusal of ${command}`,
        since,
      );
    }
    expect(sha(readFileSync(path.join(work, 'disk.img')))).toBe(sha(disk));
  });

  it('serves 20 concurrent clients each reading its own range', async () => {
    const mib = 1024 * 1024;
    const runs = Array.from({ length: 20 }, (_, i) =>
      inClient('/usr/bin/python3', [
        path.join(REPO_ROOT, 'test/lib/nbd-range.py'),
        `${URI}/base/amd64`,
        String(i * 12 * mib + i),
        String(12 * mib),
      ]).then((r) => ({ i, r })),
    );
    for (const { i, r } of await Promise.all(runs)) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim(), `client ${i}`).toBe(sha(root.subarray(i * 12 * mib + i, (i + 1) * 12 * mib + i)));
    }
  }, 240_000);

  it('never changes the bytes under a connected client when a new version is published', async () => {
    const go = path.join(work, 'hold-go');
    const hold = lab.spawn(
      client.ns,
      '/usr/bin/python3',
      [path.join(REPO_ROOT, 'test/lib/nbd-hold.py'), `${URI}/base/amd64`, '4096', '65536', go],
      'nbd-hold',
    );
    await hold.waitFor((l) => l === 'READY', 30_000, 'the client to attach');
    const before = (await hold.waitFor((l) => l.startsWith('BEFORE'), 1_000, 'BEFORE')).split(' ')[1];
    expect(before).toBe(sha(root.subarray(4096, 4096 + 65536)));
    // Publish v2 and switch `current` atomically, as the image builder does.
    const v2 = randomBytes(1024 * 1024);
    mkdirSync(path.join(work, 'images/base/v2/amd64'), { recursive: true });
    writeFileSync(path.join(work, 'images/base/v2/amd64/root.squashfs'), v2);
    symlinkSync('v2', path.join(work, 'images/base/current.new'));
    renameSync(path.join(work, 'images/base/current.new'), path.join(work, 'images/base/current'));
    // The second read is on the connection opened before the publish.
    expect(hold.lines.some((l) => l.startsWith('AFTER'))).toBe(false);
    writeFileSync(go, '');
    const after = (await hold.waitFor((l) => l.startsWith('AFTER'), 30_000, 'AFTER')).split(' ')[1];
    expect(after).toBe(before);
    // A new connection gets the new version.
    const fresh = await inClient('sh', ['-c', `nbdcopy ${URI}/base/amd64 - | sha256sum`]);
    expect(fresh.stdout.split(' ')[0]).toBe(sha(v2));
    // A node reconnecting by its versioned name (bootfarm.export=base/v1/amd64) gets the bytes it mounted.
    const again = await inClient('/usr/bin/python3', [
      path.join(REPO_ROOT, 'test/lib/nbd-range.py'),
      `${URI}/base/v1/amd64`,
      '4096',
      '65536',
    ]);
    expect(again.stdout.trim()).toBe(before);
    const named = await inClient('sh', ['-c', `nbdcopy ${URI}/base/v2/amd64 - | sha256sum`]);
    expect(named.stdout.split(' ')[0]).toBe(sha(v2));
  }, 120_000);

  it('does not buffer without bound for a client that never reads its replies', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.bg.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    const greedy = lab.spawn(
      client.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/nbd-greedy.ts'), ['10.9.0.1', '10809', 'disk', '3000', '4000']),
      'nbd-greedy',
    );
    let peak = 0;
    while (greedy.child.exitCode === null && !greedy.lines.some((l) => l.includes('"sent"'))) {
      peak = Math.max(peak, rss());
      await new Promise((r) => setTimeout(r, 100));
    }
    // 3,000 MiB were asked for and never read: the server must hold back, not buffer them.
    expect(peak, `peak RSS ${peak} MiB`).toBeLessThan(400);
    const r = await inClient('sh', ['-c', `nbdcopy ${URI}/disk - | sha256sum`]);
    expect(r.stdout.split(' ')[0]).toBe(sha(disk));
  }, 120_000);

  it('refuses a client whose address holds no lease (nbd.allow: leased)', async () => {
    // libnbd receives the server's explanation (shown in its debug log) and fails;
    // its summary maps every option error to "Operation not supported".
    const r = await lab.exec(stranger.ns, 'env', ['LIBNBD_DEBUG=1', 'nbdinfo', `${URI}/disk`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("server error message: 10.9.0.3 holds no lease and is no node's address (nbd.allow: leased)");
    await server.waitForLog((l) => l.msg === 'nbd client refused' && l.client === '10.9.0.3', 5_000, 'the refusal in the log');
  });
});

// The same real clients against the external backends bootfarm can drive instead.
describe.each([
  ['nbd-server', 'base/amd64'],
  ['nbdkit', 'base_amd64'],
] as const)('NBD backend %s', (backend, rootExport) => {
  let lab: NetLab;
  let client: LabHost;
  let server: BootfarmProcess;
  let root: Buffer;

  beforeAll(async () => {
    const work = mkdtempSync(path.join(tmpdir(), `bootfarm-${backend}-`));
    root = randomBytes(64 * 1024 * 1024);
    mkdirSync(path.join(work, 'images/base/v1/amd64'), { recursive: true });
    writeFileSync(path.join(work, 'images/base/v1/amd64/root.squashfs'), root);
    symlinkSync('v1', path.join(work, 'images/base/current'));
    lab = await NetLab.create(backend === 'nbdkit' ? 'nk' : 'ns');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      nbd: { port: 10809, backend },
      images: { dir: path.join(work, 'images') },
    });
  }, 120_000);
  afterAll(async () => {
    // bootfarm stops its backend on SIGTERM; nbdkit would also exit with its parent.
    expect(await server?.stop()).toBe(0);
    await lab?.destroy();
  });

  const inClient = (cmd: string, args: string[], timeoutMs = 120_000) => lab.exec(client.ns, cmd, args, timeoutMs);

  it('lists and copies the root, reads ranges with qemu-io and 20 concurrent libnbd clients', async () => {
    const list = await inClient('nbdinfo', ['--list', '--json', URI]);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { exports: Array<{ 'export-name': string; is_read_only: boolean }> }).exports).toMatchObject([
      { 'export-name': rootExport, is_read_only: true },
    ]);
    const copy = await inClient('sh', ['-c', `nbdcopy ${URI}/${rootExport} - | sha256sum`], 180_000);
    expect(copy.stdout.split(' ')[0]).toBe(sha(root));
    const io = await inClient('qemu-io', ['-r', '-f', 'raw', '-c', `read -P ${root[777]} 777 1`, `${URI}/${rootExport}`]);
    expect(io.stdout).toContain('read 1/1 bytes at offset 777');
    const mib = 1024 * 1024;
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        inClient('/usr/bin/python3', [
          path.join(REPO_ROOT, 'test/lib/nbd-range.py'),
          `${URI}/${rootExport}`,
          String(i * 3 * mib),
          String(3 * mib),
        ]),
      ),
    );
    runs.forEach((r, i) => expect(r.stdout.trim(), `client ${i}`).toBe(sha(root.subarray(i * 3 * mib, (i + 1) * 3 * mib))));
    expect(server.logs().some((l) => l.msg === 'nbd backend started' && l.backend === backend)).toBe(true);
  }, 300_000);
});
