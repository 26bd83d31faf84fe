// bootfarm's server image (top-level Dockerfile, `bootfarm server-image`) run as a
// container attached to a NetLab bridge, checked with real peers: busybox udhcpc
// gets a lease from it, curl fetches /healthz, a node's iPXE script and an image
// file, tftp-hpa fetches a file, and after restart() the lease is still known.
// Real dockerd (scripts/start-dockerd.sh), no mocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { connectDocker } from '../../server/image/docker.js';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { run, runOk } from '../../server/lab/proc.js';
import { containerConfig, startServerContainer, type ServerContainer } from '../../server/lab/server-container.js';
import { buildServerImage, type ServerImageReport } from '../../server/lab/server-image.js';
import { CLI, nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';
import { VolumeWatch } from '../lib/docker-volumes.js';

const TAG = 'bootfarm/server:test';
const NODE_MAC = '52:54:00:00:00:01';
const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];
// Every container this file starts is named from it (bootfarm's holder adds -net): how the
// volume check below tells them from other runs' on the same daemon.
const NAME = `bootfarm-server-sctest${process.pid}`;

describe('bootfarm in its container on a lab bridge', () => {
  let docker: Docker;
  let lab: NetLab;
  let server: ServerContainer | undefined;
  let client: LabHost;
  let work: string;
  let cold: ServerImageReport;
  let warm: ServerImageReport;
  const kernel = randomBytes(2 * 1024 * 1024 + 3);
  const tftpFile = randomBytes(300 * 1024 + 11);
  const buildLog: string[] = [];
  let volumes: VolumeWatch | undefined;

  beforeAll(async () => {
    await runOk('bash', [path.join(REPO_ROOT, 'scripts/start-dockerd.sh')]);
    volumes = VolumeWatch.start();
    docker = await connectDocker();
    // Cold (or partly cached) build, then the same build again: all from the cache.
    // On a fresh machine the cold build (node base from debootstrap, npm ci) alone
    // takes minutes: the hook has its own deadline, well past the 120 s default.
    cold = await buildServerImage(docker, { tag: TAG, log: (l) => buildLog.push(l) });
    warm = await buildServerImage(docker, { tag: TAG, log: (l) => buildLog.push(l) });

    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-container-'));
    for (const d of ['state', 'tftpboot', 'images/base/v1/amd64']) mkdirSync(path.join(work, d), { recursive: true });
    writeFileSync(path.join(work, 'images/base/v1/amd64/vmlinuz'), kernel);
    symlinkSync('v1', path.join(work, 'images/base/current'));
    writeFileSync(path.join(work, 'tftpboot/hello.bin'), tftpFile);
    writeFileSync(
      path.join(work, 'bootfarm.yaml'),
      stringify(
        containerConfig({
          server: { address: '10.9.0.1' },
          dhcp: {
            mode: 'full',
            interface: 'eth0',
            subnets: [
              {
                cidr: '10.9.0.0/24',
                range: ['10.9.0.100', '10.9.0.150'],
                router: '10.9.0.1',
                dns: ['10.9.0.1'],
                domain: 'lab',
                leaseSeconds: 600,
              },
            ],
          },
          tftp: { port: 69 },
          http: { port: 8080 },
          images: { default: 'base' },
          nodes: [{ mac: NODE_MAC, hostname: 'node-1', arch: 'amd64', image: 'base' }],
          // The lease table is read anonymously; reads are protected by default.
          api: { protectReads: false },
          log: { level: 'debug' },
        }),
      ),
    );

    lab = await NetLab.create('sc');
    server = await startServerContainer({
      docker,
      name: NAME,
      image: TAG,
      configFile: path.join(work, 'bootfarm.yaml'),
      stateDir: path.join(work, 'state'),
      imagesDir: path.join(work, 'images'),
      tftpRoot: path.join(work, 'tftpboot'),
      network: { mode: 'bridge', netns: lab.switchNs, bridge: 'br0', address: '10.9.0.1/24' },
    });
    client = await lab.addHost('c1', { mac: NODE_MAC });
  }, 900_000);

  afterAll(async () => {
    const id = server?.id;
    await server?.stop();
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
    if (id && docker) {
      // Both containers are gone.
      const left = await docker.listContainers({ all: true, filters: { label: [`bootfarm.server=${server?.name}`] } });
      expect(left).toEqual([]);
    }
    // The image's VOLUME /var/lib/bootfarm gives the holder (nothing mounted there) an
    // anonymous volume; stop() removes it with the container.
    if (volumes) expect(await volumes.left((name) => name.startsWith(NAME))).toEqual([]);
  });

  it('builds the image, and a second build comes entirely from the cache', () => {
    expect(cold.tag).toBe(TAG);
    expect(warm.baseBuilt).toBe(false);
    expect(warm.executed).toEqual([]);
    expect(warm.cached.length).toBeGreaterThan(5);
    expect(warm.imageId).toBe(cold.imageId);
    expect(buildLog.join('\n')).toContain('is up to date');
  });

  it('sits on the bridge: the container owns 10.9.0.1 on eth0 and a port of br0 leads to it', async () => {
    const s = server as ServerContainer;
    const addrs = await runOk('nsenter', ['-t', String(s.netnsPid), '-n', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addrs).toContain('10.9.0.1/24');
    const port = JSON.parse(await lab.ip(lab.switchNs, '-j', 'link', 'show', 'dev', s.hostIfname as string)) as Array<{ master?: string }>;
    expect(port[0]?.master).toBe('br0');
  });

  it('serves DHCP, HTTP and TFTP to real peers, and keeps the lease over a restart', async () => {
    const s = server as ServerContainer;
    const dhcp = lab.spawn(client.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-q', '-s', SCRIPT, '-t', '5', '-T', '1'], 'udhcpc');
    const bound = await dhcp.waitFor((l) => l.startsWith('LEASE '), 30_000, 'a lease from the container');
    const ip = field(bound, 'ip') as string;
    expect(field(bound, 'server')).toBe('10.9.0.1');
    expect(ip).toMatch(/^10\.9\.0\.(1[0-4]\d|150)$/);

    const curl = (url: string, out = '-') => lab.exec(client.ns, 'curl', ['-sSf', '--max-time', '20', '-o', out, url]);
    const health = await curl('http://10.9.0.1:8080/healthz');
    expect(health.code, health.stderr).toBe(0);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'ok' });

    const script = await curl(`http://10.9.0.1:8080/boot/${NODE_MAC.replaceAll(':', '-')}.ipxe`);
    expect(script.code, script.stderr).toBe(0);
    expect(script.stdout).toMatch(/^#!ipxe/);
    expect(script.stdout).toContain('bootfarm.node=node-1');

    const kernelOut = path.join(work, 'vmlinuz.http');
    const k = await curl('http://10.9.0.1:8080/images/base/amd64/vmlinuz', kernelOut);
    expect(k.code, k.stderr).toBe(0);
    expect(sha(readFileSync(kernelOut))).toBe(sha(kernel));

    const tftpOut = path.join(work, 'hello.tftp');
    const t = await lab.exec(client.ns, 'tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', 'hello.bin', tftpOut]);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    expect(sha(readFileSync(tftpOut))).toBe(sha(tftpFile));

    const leases = async () => {
      const r = await curl('http://10.9.0.1:8080/api/v1/leases');
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { leases: Array<{ ip: string; mac: string; state: string }> }).leases;
    };
    expect(await leases()).toContainEqual(expect.objectContaining({ ip, mac: NODE_MAC }));

    const pidBefore = s.pid;
    await s.restart();
    expect(s.pid).not.toBe(pidBefore);
    // The state dir (a host directory) carried the lease over; the network stayed attached.
    expect(await leases()).toContainEqual(expect.objectContaining({ ip, mac: NODE_MAC }));
    // And the same client renewing after the restart gets its address again.
    const again = lab.spawn(
      client.ns,
      'busybox',
      ['udhcpc', '-i', 'eth0', '-f', '-q', '-s', SCRIPT, '-t', '5', '-T', '1', '-r', ip],
      'udhcpc-again',
    );
    const rebound = await again.waitFor((l) => l.startsWith('LEASE '), 30_000, 'the lease after the restart');
    expect(field(rebound, 'ip')).toBe(ip);
    const logs = await s.logs();
    expect(logs.split('\n').filter((l) => l.includes('"msg":"bootfarm ready"'))).toHaveLength(2);
  });

  it('restart() re-plumbs the network when the namespace holder is gone', async () => {
    const s = server as ServerContainer;
    await docker.getContainer(`${s.name}-net`).kill();
    const oldNetns = s.netnsPid;
    await s.restart();
    expect(s.netnsPid).not.toBe(oldNetns);
    const health = await lab.exec(client.ns, 'curl', ['-sSf', '--max-time', '20', 'http://10.9.0.1:8080/healthz']);
    expect(health.code, health.stderr).toBe(0);
  });

  it('refuses a missing image and a configuration naming host paths, with the fix', async () => {
    const opts = {
      docker,
      name: `${NAME}-refused`,
      configFile: path.join(work, 'bootfarm.yaml'),
      stateDir: path.join(work, 'state'),
      network: { mode: 'bridge' as const, netns: lab.switchNs, bridge: 'br0', address: '10.9.0.1/24' },
    };
    await expect(startServerContainer({ ...opts, image: 'bootfarm/server:absent' })).rejects.toThrow(
      /bootfarm server-image --tag bootfarm\/server:absent/,
    );
    const hostPaths = path.join(work, 'host-paths.yaml');
    writeFileSync(hostPaths, stringify({ server: { address: '10.9.0.1', stateDir: path.join(work, 'state') } }));
    await expect(startServerContainer({ ...opts, image: TAG, configFile: hostPaths })).rejects.toThrow(
      /set server\.stateDir: \/var\/lib\/bootfarm \(containerConfig\(\) writes them\)/,
    );
  });

  it('a missing dockerd is one line naming the fix', async () => {
    const r = await run('env', [
      'DOCKER_HOST=unix:///nonexistent/docker.sock',
      process.execPath,
      ...nodeArgs(CLI, ['server-image', '--tag', TAG]),
    ]);
    expect(r.code).toBe(2);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('npm warn'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bootfarm: cannot reach dockerd at unix:\/\/\/nonexistent\/docker\.sock .*scripts\/start-dockerd\.sh/);
  });
});
