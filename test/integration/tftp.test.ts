// bootfarm's TFTP server against real clients (tftp-hpa, curl, busybox tftp, the
// shared benchmark client with windowsize) in test namespaces, plus the hostile
// cases: traversal, fuzzing of the request port and of a live transfer port,
// packet loss, a stalled client, and the UEFI size probe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const BENCH_TFTP = path.resolve(REPO_ROOT, '../shared/bench/bench-tftp');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('TFTP with real clients', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let client: LabHost;
  let root: string;
  let work: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-tftp-'));
    root = path.join(work, 'root');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    const put = (name: string, data: Buffer) => {
      files.set(name, data);
      writeFileSync(path.join(root, name), data);
    };
    put('big40.bin', randomBytes(40 * 1024 * 1024));
    put('mid5.bin', randomBytes(5 * 1024 * 1024 + 17));
    put('small.bin', randomBytes(64 * 1024 + 3));
    put('loss16k.bin', randomBytes(16 * 1024 + 100));
    put('exact.bin', randomBytes(512 * 4));
    put('empty.bin', Buffer.alloc(0));
    put('sub/hi.txt', Buffer.from('hello\n'));
    writeFileSync(path.join(work, 'secret.txt'), 'TOP-SECRET\n');
    symlinkSync(path.join(work, 'secret.txt'), path.join(root, 'escape'));
    symlinkSync('sub/hi.txt', path.join(root, 'inside-link'));

    lab = await NetLab.create('tf');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    server = await startBootfarm(lab, srv.ns, { server: { address: '10.9.0.1' }, tftp: { root } });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const inClient = (cmd: string, args: string[], timeoutMs = 120_000) => lab.exec(client.ns, cmd, args, timeoutMs);
  const received = (name: string) => readFileSync(path.join(work, name));

  it('tftp-hpa, curl (blksize 512 and 1468) and busybox tftp fetch byte-identical files', async () => {
    expect((await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', 'mid5.bin', path.join(work, 'hpa.bin')])).code).toBe(0);
    expect(sha(received('hpa.bin'))).toBe(sha(files.get('mid5.bin') as Buffer));
    for (const blksize of ['512', '1468']) {
      const r = await inClient('curl', [
        '-sS',
        '--tftp-blksize',
        blksize,
        '-o',
        path.join(work, `curl${blksize}.bin`),
        'tftp://10.9.0.1/mid5.bin',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(sha(received(`curl${blksize}.bin`))).toBe(sha(files.get('mid5.bin') as Buffer));
    }
    const bb = await inClient('busybox', ['tftp', '-g', '-b', '1024', '-r', 'small.bin', '-l', path.join(work, 'bb.bin'), '10.9.0.1']);
    expect(bb.code, bb.stderr).toBe(0);
    expect(sha(received('bb.bin'))).toBe(sha(files.get('small.bin') as Buffer));
    // A size that is a multiple of the block size ends with an empty block; an empty file is one empty block.
    for (const name of ['exact.bin', 'empty.bin', 'inside-link']) {
      expect((await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', name, path.join(work, `hpa-${name}`)])).code).toBe(0);
    }
    expect(received('hpa-exact.bin')).toEqual(files.get('exact.bin'));
    expect(received('hpa-empty.bin').length).toBe(0);
    expect(received('hpa-inside-link').toString()).toBe('hello\n');
  });

  it('negotiates windowsize 16 with the benchmark client and tsize/blksize as asked', async () => {
    const r = await inClient('python3', [
      BENCH_TFTP,
      'get',
      '--host',
      '10.9.0.1',
      '--port',
      '69',
      '--file',
      `mid5.bin=${path.join(root, 'mid5.bin')}`,
      '--blksize',
      '1468',
      '--windowsize',
      '16',
    ]);
    const summary = JSON.parse(
      r.stdout
        .split('\n')
        .find((l) => l.startsWith('TFTP_GET '))
        ?.slice(9) ?? '{}',
    ) as { ok: boolean; oack: Record<string, string> };
    expect(summary.ok).toBe(true);
    expect(summary.oack).toEqual({ blksize: '1468', tsize: String(5 * 1024 * 1024 + 17), windowsize: '16' });
  });

  it('crosses the 65535-block rollover: 40 MiB at blksize 512 arrives intact', async () => {
    const r = await inClient(
      'curl',
      ['-sS', '--tftp-blksize', '512', '-o', path.join(work, 'big.bin'), 'tftp://10.9.0.1/big40.bin'],
      240_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(sha(received('big.bin'))).toBe(sha(files.get('big40.bin') as Buffer));
  }, 300_000);

  it('refuses every traversal form and never sends a byte from outside the root', async () => {
    const attempts = [
      '../secret.txt',
      '..\\secret.txt',
      'sub/../../secret.txt',
      '/../secret.txt',
      'escape',
      `${work}/secret.txt`,
      '%2e%2e/secret.txt',
      'sub\\..\\..\\secret.txt',
      'a\u0001b',
    ];
    for (const [i, name] of attempts.entries()) {
      const target = path.join(work, `attempt-${i}`);
      const r = await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', name, target]);
      expect(r.stdout + r.stderr, name).toMatch(/Error code [12]: (access violation|file not found)/);
      let content = '';
      try {
        content = readFileSync(target, 'utf8');
      } catch {
        /* not created */
      }
      expect(content).not.toContain('TOP-SECRET');
    }
    const put = await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'put', path.join(root, 'sub/hi.txt'), 'uploaded']);
    expect(put.stdout + put.stderr).toContain('Error code 4: write requests are not supported');
    const ascii = await inClient('tftp', ['-m', 'netascii', '10.9.0.1', '-c', 'get', 'sub/hi.txt', path.join(work, 'ascii')]);
    expect(ascii.stdout + ascii.stderr).toContain('Error code 4: mode netascii is not supported; use octet (binary)');
  });

  it('treats the UEFI size probe (ERROR 8 after the OACK) as a normal close', async () => {
    const r = await inClient(
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/tftp-peers.ts'), ['uefi-probe', '10.9.0.1', 'mid5.bin']),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      tsize: 5 * 1024 * 1024 + 17,
      size: 5 * 1024 * 1024 + 17,
      sha256: sha(files.get('mid5.bin') as Buffer),
    });
    const closed = await server.waitForLog(
      (l) => l.msg === 'tftp transfer closed by client' && l.clientError === 8,
      5_000,
      'the probe close',
    );
    expect(closed).toMatchObject({ outcome: 'aborted-by-client', level: 30 });
  });

  it('survives 100,000 fuzzed datagrams on the request port and on a live transfer port', async () => {
    const peers = path.join(REPO_ROOT, 'test/lib/tftp-peers.ts');
    // A slow, legitimate transfer whose port the fuzzer then hammers from other ports.
    const slow = lab.spawn(client.ns, process.execPath, nodeArgs(peers, ['slow', '10.9.0.1', 'small.bin', '20']), 'slow-client');
    const port = (JSON.parse(await slow.waitFor((l) => l.includes('"port"'), 15_000, 'the transfer port')) as { port: number }).port;
    const [onTransfer, onListener] = await Promise.all([
      inClient(process.execPath, nodeArgs(peers, ['fuzz', '10.9.0.1', String(port), '50000', '1']), 240_000),
      inClient(process.execPath, nodeArgs(peers, ['fuzz', '10.9.0.1', '69', '50000', '2']), 240_000),
    ]);
    expect(onTransfer.stdout).toContain('"sent":50000');
    expect(onListener.stdout).toContain('"sent":50000');
    const done = JSON.parse(await slow.waitFor((l) => l.includes('sha256'), 120_000, 'the slow transfer to finish')) as { sha256: string };
    expect(done.sha256).toBe(sha(files.get('small.bin') as Buffer));
    expect(server.bg.child.exitCode).toBeNull();
    expect(server.logs().filter((l) => l.msg === 'tftp packet dropped').length).toBeLessThanOrEqual(40);
    expect((await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', 'sub/hi.txt', path.join(work, 'after-fuzz')])).code).toBe(0);
    expect(received('after-fuzz').toString()).toBe('hello\n');
  }, 300_000);

  it('completes a transfer through a 5-second stall of the client (SIGSTOP)', async () => {
    const target = path.join(work, 'stalled.bin');
    const dl = lab.spawn(client.ns, 'curl', ['-sS', '--tftp-blksize', '512', '-o', target, 'tftp://10.9.0.1/mid5.bin'], 'curl-stalled');
    await new Promise((r) => setTimeout(r, 300));
    dl.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 5000));
    dl.child.kill('SIGCONT');
    expect(await dl.exited).toBe(0);
    expect(sha(received('stalled.bin'))).toBe(sha(files.get('mid5.bin') as Buffer));
  }, 120_000);

  it('completes transfers under 20% packet loss in both directions', async () => {
    // This kernel has no netem. nftables drops 20% of incoming UDP in the client
    // (DATA lost) and in the server (ACKs lost); dropping on input, not output,
    // so that neither side's sendto() fails with EPERM.
    const srvNs = `${lab.id}-srv`;
    const lossy = async (ns: string) => {
      const nft = (...args: string[]) => lab.exec(ns, 'nft', args);
      expect((await nft('add', 'table', 'inet', 'lossy')).code).toBe(0);
      await nft('add', 'chain', 'inet', 'lossy', 'in', '{ type filter hook input priority 0; }');
      expect(
        (await nft('add', 'rule', 'inet', 'lossy', 'in', 'meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '100', '<', '20', 'drop'))
          .code,
      ).toBe(0);
    };
    await lossy(client.ns);
    await lossy(srvNs);
    try {
      // tftp-hpa ACKs every DATA it receives, duplicates included (RFC 1350), and
      // retransmits its own ACK every second. (The shared benchmark client re-ACKs
      // a duplicate only once per gap, so one lost re-ACK leaves it silent while a
      // server that never answers duplicate ACKs waits for its timer: it is not a
      // peer for lossy links.)
      const target = path.join(work, 'lossy.bin');
      const r = await inClient(
        'sh',
        ['-c', `printf 'binary\\nrexmt 1\\ntimeout 100\\nget loss16k.bin ${target}\\nquit\\n' | tftp 10.9.0.1`],
        120_000,
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(sha(received('lossy.bin'))).toBe(sha(files.get('loss16k.bin') as Buffer));
      // The client's final ACK can itself be lost (RFC 1350 §6 leaves it unprotected):
      // then the server retransmits the last block until it gives up (15 s) and logs
      // the file as sent with outcome final-ack-missing, not as a failure.
      const sent = await server.waitForLog((l) => l.msg === 'tftp file sent' && l.path === 'loss16k.bin', 25_000, 'the lossy transfer');
      expect(['complete', 'final-ack-missing']).toContain(sent.outcome);
      expect(Number(sent.bytes)).toBe(files.get('loss16k.bin')?.length);
      expect(Number(sent.retransmits)).toBeGreaterThan(0);
    } finally {
      await lab.exec(client.ns, 'nft', ['delete', 'table', 'inet', 'lossy']);
      await lab.exec(srvNs, 'nft', ['delete', 'table', 'inet', 'lossy']);
    }
  }, 200_000);
});
