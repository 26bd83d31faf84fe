// TFTP through a NAT (issue 14): a client behind an nftables masquerade, as in a
// home router, a container's port mapping or a Kubernetes node. The NAT passes
// back only replies from the address and port the client sent to; with no TFTP
// conntrack helper assigned (none is, here), the default mode's replies from an
// ephemeral port are dropped there and the download fails, and tftp.singlePort,
// which answers every transfer from port 69, gets the file through. Real peers:
// bootfarm serve, tftp-hpa and curl.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FUZZER = path.join(REPO_ROOT, 'test/lib/tftp-fuzzer.ts');

describe('TFTP through an nftables masquerade', () => {
  let lab: NetLab;
  let srv: LabHost;
  let client: LabHost;
  let nat: LabHost;
  let root: string;
  let work: string;
  const file = randomBytes(300 * 1024 + 11);

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-tftp-nat-'));
    root = path.join(work, 'root');
    mkdirSync(root);
    writeFileSync(path.join(root, 'boot.bin'), file);

    // server 10.9.0.1 and the NAT's outside 10.9.0.254 share the bridge; the client
    // 10.8.0.2 sits behind the NAT on a link of its own (its bridge port stays down).
    lab = await NetLab.create('tn');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    nat = await lab.addHost('nat', { address: '10.9.0.254/24' });
    client = await lab.addHost('cli');
    await lab.ip(client.ns, 'link', 'set', 'eth0', 'down');
    await lab.link(nat, '10.8.0.1/24', client, '10.8.0.2/24', 'inside');
    await lab.ip(client.ns, 'route', 'add', 'default', 'via', '10.8.0.1');
    const sysctl = await lab.exec(nat.ns, 'sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    expect(sysctl.code, sysctl.stderr).toBe(0);
    const nft = await lab.exec(nat.ns, 'nft', [
      'add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; policy accept; }; add rule ip nat post oifname "eth0" masquerade',
    ]);
    expect(nft.code, nft.stderr).toBe(0);
  });
  afterAll(async () => {
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Runs bootfarm in the server namespace with `tftp`, runs `body`, stops bootfarm whatever happens. */
  async function withServer(tftp: Record<string, unknown>, body: (server: BootfarmProcess) => Promise<void>): Promise<void> {
    const server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1', drainSeconds: 0 },
      dhcp: { mode: 'off' },
      tftp: { root, ...tftp },
      http: { port: 8080 },
    });
    try {
      await body(server);
    } finally {
      await server.stop();
    }
  }

  // Bounds, not measurements: a client that gets nothing would otherwise retry for 25 s (tftp-hpa) or longer (curl).
  const tftpHpa = (out: string, boundSeconds: number) =>
    lab.exec(client.ns, 'timeout', [String(boundSeconds), 'tftp', '-m', 'binary', '10.9.0.1', '-c', 'get', 'boot.bin', out], 60_000);
  const curl = (out: string, boundSeconds: number) =>
    lab.exec(client.ns, 'curl', ['-sS', '--max-time', String(boundSeconds), '-o', out, 'tftp://10.9.0.1/boot.bin'], 60_000);
  /** One sample from /metrics, read from the NAT's outside address (0 when the series does not exist yet). */
  async function metric(name: string, labels = ''): Promise<number> {
    const r = await lab.exec(nat.ns, 'curl', ['-sS', '--max-time', '10', 'http://10.9.0.1:8080/metrics']);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }
  const received = (out: string) => (existsSync(out) ? sha(readFileSync(out)) : 'missing');

  it('the NAT has no TFTP conntrack helper: nothing in its ruleset assigns one', async () => {
    const ruleset = await lab.exec(nat.ns, 'nft', ['list', 'ruleset']);
    expect(ruleset.code, ruleset.stderr).toBe(0);
    expect(ruleset.stdout).toContain('masquerade');
    expect(ruleset.stdout).not.toMatch(/ct helper|helper "tftp"/);
    // Kernels before 6.0 could assign helpers automatically, per namespace: off here, where the knob exists.
    const auto = await lab.exec(nat.ns, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_helper']);
    if (auto.code === 0) expect(auto.stdout.trim()).toBe('0');
  });

  it('default mode: replies from an ephemeral port do not pass the NAT, tftp-hpa and curl fail', async () => {
    await withServer({}, async (server) => {
      const hpaOut = path.join(work, 'eph-hpa.bin');
      const curlOut = path.join(work, 'eph-curl.bin');
      expect((await tftpHpa(hpaOut, 5)).code).not.toBe(0);
      const c = await curl(curlOut, 5);
      expect(c.code).not.toBe(0);
      expect(received(hpaOut)).not.toBe(sha(file));
      expect(received(curlOut)).not.toBe(sha(file));
      // The requests did reach bootfarm (from the NAT's outside address): the replies are what the NAT dropped.
      expect(server.logs().some((l) => typeof l.client === 'string' && l.client.startsWith('10.9.0.254:'))).toBe(true);
    });
  });

  it('tftp.singlePort: tftp-hpa and curl behind the NAT get the file, sha256 identical', async () => {
    await withServer({ singlePort: true }, async () => {
      const hpaOut = path.join(work, 'single-hpa.bin');
      const curlOut = path.join(work, 'single-curl.bin');
      const h = await tftpHpa(hpaOut, 30);
      expect(h.code, h.stdout + h.stderr).toBe(0);
      expect(received(hpaOut)).toBe(sha(file));
      const c = await curl(curlOut, 30);
      expect(c.code, c.stderr).toBe(0);
      expect(received(curlOut)).toBe(sha(file));
    });
  });

  it('tftp.singlePort under a 20,000-packet stateful fuzz on the shared port: the process lives, every slot comes back, the client behind the NAT still gets its file', async () => {
    await withServer({ singlePort: true }, async (server) => {
      // From the NAT's outside address, so the fuzzer's own replies and its port-0 forgeries reach bootfarm unchanged.
      const fuzz = await lab.exec(
        nat.ns,
        process.execPath,
        nodeArgs(FUZZER, ['10.9.0.1', '20000', '11', '10.9.0.254', 'boot.bin']),
        180_000,
      );
      expect(fuzz.code, fuzz.stderr).toBe(0);
      const summary = JSON.parse(fuzz.stdout.trim().split('\n').at(-1) ?? '{}') as { sent: number; replies: number };
      expect(summary.sent).toBe(20_000);
      expect(summary.replies).toBeGreaterThan(0);
      expect(server.bg.child.exitCode).toBeNull();
      // ACKs and ERRORs aimed at port 69 from endpoints with no transfer were dropped, not answered.
      expect(await metric('bootfarm_tftp_dropped_total', 'reason="unknown-peer"')).toBeGreaterThan(0);
      // Forged and abandoned transfers end by their deadlines (5 s unconfirmed, 15 s + timeout otherwise).
      const deadline = Date.now() + 60_000;
      while ((await metric('bootfarm_tftp_transfers_in_flight')) !== 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 500));
      expect(await metric('bootfarm_tftp_transfers_in_flight')).toBe(0);
      const out = path.join(work, 'after-fuzz.bin');
      const h = await tftpHpa(out, 30);
      expect(h.code, h.stdout + h.stderr).toBe(0);
      expect(received(out)).toBe(sha(file));
      expect(server.logs().filter((l) => l.msg === 'tftp request failed')).toEqual([]);
    });
  }, 300_000);
});
