// Who gets which file of a published image over TFTP (tftp-hpa) and HTTP (curl),
// in a test namespace: boot files (kernel, initrd, Pi firmware) go to anyone;
// the root image only to an address nbd.allow: leased admits (a node's
// configured address, or one holding a lease from this server, obtained here
// by busybox udhcpc), exactly as NBD would; any other file of an image to no
// one. Before, root.squashfs was served to anyone, bypassing nbd.allow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const SERVER = '10.9.0.1';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('image files over TFTP and HTTP: boot files to anyone, the root image as nbd.allow says, nothing else', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let work: string;
  let node: LabHost;
  let stranger: LabHost;
  let leased: LabHost;
  let leasedAddress = '';
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-file-access-'));
    const put = (rel: string, data: Buffer) => {
      const file = path.join(work, 'images/base/v1', rel);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, data);
      files.set(rel, data);
    };
    // As imagebuild/squash/make-export.sh publishes an image.
    put('amd64/vmlinuz', randomBytes(700_001));
    put('amd64/initrd.img', randomBytes(300_003));
    put('amd64/root.squashfs', randomBytes(400_007));
    put('amd64/manifest.json', Buffer.from('{"schema":1}'));
    put('amd64/notes.txt', Buffer.from('left here by an operator'));
    put('arm64/rpi/start4.elf', randomBytes(100_000));
    symlinkSync('v1', path.join(work, 'images/base/current'));
    mkdirSync(path.join(work, 'tftpboot'));

    lab = await NetLab.create('fa');
    const srv = await lab.addHost('srv', { address: `${SERVER}/24` });
    node = await lab.addHost('node', { address: '10.9.0.2/24' });
    stranger = await lab.addHost('str', { address: '10.9.0.3/24' });
    leased = await lab.addHost('lsd', { mac: '52:54:00:00:00:02' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: SERVER },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: path.join(work, 'tftpboot') },
      http: { port: 8080 },
      nbd: { enabled: false, allow: 'leased' },
      images: { dir: path.join(work, 'images'), default: 'base' },
      nodes: [
        { mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' },
        // In the inventory without a fixed address: admitted by its lease only.
        { mac: '52:54:00:00:00:02', hostname: 'node-2', arch: 'amd64' },
      ],
    });
    const lease = await lab.exec(leased.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    leasedAddress = /LEASE event=bound ip=(\S+)/.exec(lease.stderr)?.[1] ?? '';
    expect(leasedAddress, lease.stderr).toMatch(/^10\.9\.0\.1[0-5]\d$/);
  });
  afterAll(async () => {
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let fetches = 0;
  /** curl: the status and, when 200, the bytes. */
  async function http(host: LabHost, file: string): Promise<{ status: string; body: Buffer | undefined }> {
    const target = path.join(work, `http-${fetches++}`);
    const r = await lab.exec(host.ns, 'curl', ['-sS', '-m', '30', '-o', target, '-w', '%{http_code}', `http://${SERVER}:8080/${file}`]);
    return { status: r.stdout, body: r.stdout === '200' ? readFileSync(target) : undefined };
  }
  /** tftp-hpa: the bytes, or the error it printed. */
  async function tftp(host: LabHost, file: string): Promise<{ ok: boolean; body: Buffer | undefined; output: string }> {
    const target = path.join(work, `tftp-${fetches++}`);
    const r = await lab.exec(host.ns, 'tftp', ['-m', 'binary', SERVER, '-c', 'get', file, target]);
    const output = r.stdout + r.stderr;
    const ok = r.code === 0 && !/Error code/.test(output);
    return { ok, body: ok ? readFileSync(target) : undefined, output };
  }
  const image = (rel: string) => files.get(rel) as Buffer;

  it('the kernel, initrd and Pi firmware go to a stranger over both protocols', async () => {
    for (const rel of ['amd64/vmlinuz', 'amd64/initrd.img']) {
      const overHttp = await http(stranger, `images/base/${rel}`);
      expect(overHttp.status, rel).toBe('200');
      expect(sha(overHttp.body as Buffer), rel).toBe(sha(image(rel)));
      const overTftp = await tftp(stranger, `images/base/${rel}`);
      expect(overTftp.ok, overTftp.output).toBe(true);
      expect(sha(overTftp.body as Buffer), rel).toBe(sha(image(rel)));
    }
    expect((await http(stranger, 'images/base/arm64/rpi/start4.elf')).status).toBe('200');
  });

  it('the root image is refused to a stranger: 403 over HTTP, access violation over TFTP, the reason logged', async () => {
    expect((await http(stranger, 'images/base/amd64/root.squashfs')).status).toBe('403');
    const overTftp = await tftp(stranger, 'images/base/amd64/root.squashfs');
    expect(overTftp.ok).toBe(false);
    expect(overTftp.output).toMatch(/Error code 2: access violation/i);
    const refusal = (msg: string) => (l: { msg?: unknown; path?: unknown; file?: unknown; client?: unknown }) =>
      l.msg === msg && String(l.path ?? l.file).endsWith('root.squashfs') && String(l.client).startsWith('10.9.0.3');
    // The client has its answer before bootfarm's log line has crossed the
    // pipe to this test: wait for each line rather than read the log once.
    const logged = [
      await server.waitForLog(refusal('http request refused'), 5_000, 'http refusal logged'),
      await server.waitForLog(refusal('tftp request refused'), 5_000, 'tftp refusal logged'),
    ];
    expect(logged.map((l) => l.msg).sort()).toEqual(['http request refused', 'tftp request refused']);
    for (const line of logged)
      expect(String(line.reason)).toContain("10.9.0.3 holds no lease and is no node's address (nbd.allow: leased)");
  });

  it("the root image goes to a node's configured address and to an address leased from this server, byte for byte", async () => {
    for (const host of [node, leased]) {
      const overHttp = await http(host, 'images/base/amd64/root.squashfs');
      expect(overHttp.status, host.ns).toBe('200');
      expect(sha(overHttp.body as Buffer)).toBe(sha(image('amd64/root.squashfs')));
      const overTftp = await tftp(host, 'images/base/amd64/root.squashfs');
      expect(overTftp.ok, overTftp.output).toBe(true);
      expect(sha(overTftp.body as Buffer)).toBe(sha(image('amd64/root.squashfs')));
    }
  });

  it('a file of an image outside the allow-list is refused to everyone, nodes included', async () => {
    for (const host of [node, stranger]) {
      for (const file of ['images/base/amd64/manifest.json', 'images/base/amd64/notes.txt', 'images/base/current/amd64/manifest.json']) {
        expect((await http(host, file)).status, `${host.ns} ${file}`).toBe('403');
        const overTftp = await tftp(host, file);
        expect(overTftp.output, `${host.ns} ${file}`).toMatch(/Error code 2: access violation/i);
      }
    }
    // A version named in the path (`current` too, as boot scripts name versions) is held to the same rules:
    // its root image goes to the node, whose address NBD admits, and to no one else.
    expect((await http(stranger, 'images/base/current/amd64/root.squashfs')).status).toBe('403');
    expect((await http(node, 'images/base/current/amd64/root.squashfs')).status).toBe('200');
    const reasons = server
      .logs()
      .filter((l) => l.msg === 'http request refused' && l.path === 'images/base/amd64/notes.txt')
      .map((l) => String(l.reason));
    expect(reasons[0]).toContain('is not a boot file');
  });

  it('refusals are counted by protocol and reason', async () => {
    const text = (await lab.exec(node.ns, 'curl', ['-sS', `http://${SERVER}:8080/metrics`])).stdout;
    for (const series of [
      'protocol="http",reason="root-not-admitted"',
      'protocol="tftp",reason="root-not-admitted"',
      'protocol="http",reason="not-boot-file"',
      'protocol="tftp",reason="not-boot-file"',
    ]) {
      expect(text, series).toMatch(new RegExp(`^bootfarm_boot_files_refused_total\\{${series}\\} [1-9]`, 'm'));
    }
  });
});
