// Instances sharing etcd, as an operator sees them (docs/design.md "Instances
// and their clocks"): one etcd member and real `bootfarm serve` processes in
// this test's namespaces, `bootfarm status` run as the CLI.
// - A copied state directory (instance-id) on a second instance: both report it
//   on /healthz (a fixed reason) and in their log (the id, its file, the other
//   one's address), `bootfarm status` shows it; once the copy stops, the other
//   is ok again.
// - A hostile record under <prefix>/instances/ (anyone with write access to the
//   prefix can put one): `bootfarm status` prints its text escaped and bounded,
//   in text and in --json.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { startEtcd, type LabEtcdCluster } from '../lib/etcd.js';
import type { StatusReport } from '../../server/cli/status.js';
import { waitUntil } from '../lib/wait.js';

const PREFIX = '/bf-instances';
const [A, B] = ['10.9.0.1', '10.9.0.2'];
const DUPLICATE = 'instance id used by another live instance';

function instanceConfig(address: string, endpoints: string[]) {
  return {
    server: { address },
    http: { port: 8080 },
    dhcp: {
      mode: 'full',
      interface: 'eth0',
      subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.119'], router: '10.9.0.1', leaseSeconds: 600 }],
    },
    store: { backend: 'etcd', etcd: { endpoints, prefix: PREFIX, claimTimeoutMs: 1000 } },
  };
}

/** Any C0 or C1 control character, DEL, or a bidi override: what must not reach a terminal raw (newlines are taken out first). */
const RAW_CONTROL = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;

describe('instances sharing etcd as `bootfarm status` and /healthz show them', () => {
  let lab: NetLab;
  let etcd: LabEtcdCluster;
  let cliHost: LabHost;
  let one: BootfarmProcess | undefined;
  let two: BootfarmProcess | undefined;
  let copiedState: string | undefined;

  beforeAll(async () => {
    lab = await NetLab.create('inst');
    etcd = await startEtcd(lab, [await lab.addHost('etcd0', { address: '10.9.0.5/24' })]);
    cliHost = await lab.addHost('cli', { address: '10.9.0.9/24' });
    await lab.addHost('srv1', { address: `${A}/24` });
    await lab.addHost('srv2', { address: `${B}/24` });
    one = await startBootfarm(lab, `${lab.id}-srv1`, instanceConfig(A, etcd.endpoints));
  });
  afterAll(async () => {
    for (const s of [two, one]) {
      if (!s) continue;
      await s.stop();
      rmSync(path.dirname(s.configFile), { recursive: true, force: true });
    }
    if (copiedState) rmSync(path.dirname(copiedState), { recursive: true, force: true });
    await etcd?.stop();
    await lab?.destroy();
  });

  const get = async (address: string, p: string) =>
    (await lab.exec(cliHost.ns, 'curl', ['-sS', '--max-time', '5', `http://${address}:8080${p}`])).stdout;
  const healthz = async (address: string) =>
    JSON.parse(await get(address, '/healthz')) as { status: string; identity?: { reason?: string } };
  const status = async (json: boolean) => {
    const r = await lab.exec(
      cliHost.ns,
      process.execPath,
      nodeArgs(CLI, ['status', '--config', (one as BootfarmProcess).configFile, ...(json ? ['--json'] : [])]),
    );
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };

  it('a copied state directory: both instances say so on /healthz and in the log, status shows it; the copy stopped, all is ok', async () => {
    const first = one as BootfarmProcess;
    const idFile = path.join(first.stateDir, 'instance-id');
    copiedState = path.join(mkdtempSync(path.join(tmpdir(), 'bootfarm-copied-')), 'state');
    mkdirSync(copiedState, { mode: 0o700 });
    copyFileSync(idFile, path.join(copiedState, 'instance-id'));
    two = await startBootfarm(lab, `${lab.id}-srv2`, instanceConfig(B, etcd.endpoints), copiedState);

    await waitUntil(async () => (await healthz(A)).identity !== undefined, 60_000, 'instance 1 degraded by the duplicate id', 500);
    await waitUntil(async () => (await healthz(B)).identity !== undefined, 60_000, 'instance 2 degraded by the duplicate id', 500);
    expect(await healthz(A)).toMatchObject({ status: 'degraded', identity: { healthy: false, reason: DUPLICATE } });
    expect(await healthz(B)).toMatchObject({ status: 'degraded', identity: { healthy: false, reason: DUPLICATE } });
    const line = await first.waitForLog((l) => l.level === 50 && l.otherAddress === B, 30_000, 'the duplicate-id error');
    const id = (await status(true)).match(/"id": "([0-9a-f-]{36})"/)?.[1];
    expect(line).toMatchObject({ id, idFile, otherAddress: B });
    expect(line.msg).toMatch(/^instance id published by another live instance/);

    await waitUntil(
      async () => (JSON.parse(await status(true)) as StatusReport).instances.some((i) => i.duplicateOf !== undefined),
      30_000,
      'status showing the duplicate',
      500,
    );
    expect(await status(false)).toMatch(/NO NEW ADDRESSES: id also published by .* \(10\.9\.0\.[12]\), another live instance/);

    await two.stop();
    rmSync(path.dirname(two.configFile), { recursive: true, force: true });
    two = undefined;
    await waitUntil(async () => (await healthz(A)).status === 'ok', 60_000, 'instance 1 ok again', 500);
  });

  it("a hostile record's text is escaped and bounded in `bootfarm status`, text and --json", async () => {
    const hostile = {
      id: '00000000-0000-4000-8000-0000000000ff',
      hostname: 'evil\u001b]0;owned\u0007\u001b[2J\rforged-row\u202etxt.exe\u009b31m',
      address: '10.9.0.66\u001b[A',
      version: 'v'.repeat(5000),
      clock: Date.now(),
      startedAt: Date.now(),
      interfaces: ['eth0\r\n  10.9.0.99 fake-host'],
      segments: Array.from({ length: 1000 }, (_, i) => `10.${i}.0.0/24`),
      images: [{ image: 'img\u001b[31m', current: 'v1\u0008\u0008', versions: ['v1'] }],
      skew: { stopped: false, worstPeer: 'peer\u001b[0m' },
    };
    const key = `${PREFIX}/instances/${hostile.id}`;
    await etcd.ctl(['put', key, JSON.stringify(hostile)]);
    try {
      const text = await status(false);
      expect(text.replaceAll('\n', '')).not.toMatch(RAW_CONTROL);
      expect(text).toContain('evil\\x1b]0;owned\\x07\\x1b[2J\\x0dforged-row\\u202etxt.exe\\x9b31m');
      expect(text).toContain('eth0\\x0d\\x0a  10.9.0.99 fake-host');
      expect(text).toContain(`${'v'.repeat(200)}... (4800 more characters)`);
      expect(text).toContain('10.63.0.0/24, ... (936 more)');
      for (const l of text.split('\n')) expect(l.length).toBeLessThan(4000);

      const report = JSON.parse(await status(true)) as StatusReport;
      const row = report.instances.find((i) => i.id === hostile.id);
      expect(row?.hostname).toBe('evil\\x1b]0;owned\\x07\\x1b[2J\\x0dforged-row\\u202etxt.exe\\x9b31m');
      expect(row?.address).toBe('10.9.0.66\\x1b[A');
      expect(row?.segments).toHaveLength(65);
      expect(row?.images[0]).toEqual({ image: 'img\\x1b[31m', current: 'v1\\x08\\x08', versions: ['v1'] });
      expect(row?.worstPeer).toBe('peer\\x1b[0m');
      expect(JSON.stringify(report)).not.toMatch(RAW_CONTROL);
    } finally {
      await etcd.ctl(['del', key]);
    }
  });
});
