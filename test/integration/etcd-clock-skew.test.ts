// Clock skew between instances sharing etcd (docs/design.md "Shared state in
// etcd", clocks): a three-member etcd in this test's namespaces, two bootfarm
// instances in full DHCP mode on one segment, instance 2 run under faketime 90 s
// ahead (libfaketime wraps clock_gettime, which Node's Date.now reads: the
// registry value it publishes, and `bootfarm status`, show the 90 s). Instance 2
// gives no new address to a udhcpc client while instance 1 does; restarted
// without faketime (same state directory, so the same instance id) it allocates
// again; a client holding a lease from it then gets no answer to its renewal once
// it runs 90 s ahead again (no ACK from the binding, no NAK). `bootfarm status
// --json` shows both instances, the skew and etcd's members.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import type { Background } from '../../server/lab/proc.js';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { startEtcd, type LabEtcdCluster } from '../lib/etcd.js';
import type { StatusReport } from '../../server/cli/status.js';
import { waitUntil } from '../lib/wait.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const PREFIX = '/bf-skew';
const MEMBERS = ['10.9.0.5', '10.9.0.6', '10.9.0.7'];
const [A, B] = ['10.9.0.1', '10.9.0.2'];
/**
 * Instance 2's clock, 90 s ahead: libfaketime preloaded (package faketime) as
 * the faketime command sets it up, but through env, which execs node: the
 * faketime command forks and waits, so a SIGTERM to it would not reach the
 * server. ($LIB is expanded by the dynamic loader: the multiarch directory.)
 * Monotonic clocks are left alone so timers keep their real lengths.
 */
const AHEAD = ['env', 'LD_PRELOAD=/usr/$LIB/faketime/libfaketime.so.1', 'FAKETIME=+90s', 'FAKETIME_DONT_FAKE_MONOTONIC=1'];

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

const leaseLine = (l: string) => l.startsWith('LEASE ');
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];
const REFUSED = 'dhcp: no answer for a dynamic address while this clock is stopped by skew (a healthy instance answers)';

describe('instances sharing etcd with one clock 90 s ahead', () => {
  let lab: NetLab;
  let etcd: LabEtcdCluster;
  let cliHost: LabHost;
  const servers = new Map<string, BootfarmProcess>();
  const clients: Background[] = [];
  /** Configuration directories of instances restarted since: removed in afterAll. */
  const retired: string[] = [];
  let clientCount = 0;
  let statusConfig: string;

  beforeAll(async () => {
    lab = await NetLab.create('ck');
    const members: LabHost[] = [];
    for (const [i, address] of MEMBERS.entries()) members.push(await lab.addHost(`etcd${i}`, { address: `${address}/24` }));
    etcd = await startEtcd(lab, members);
    cliHost = await lab.addHost('cli', { address: '10.9.0.9/24' });
    await lab.addHost('srv1', { address: `${A}/24` });
    await lab.addHost('srv2', { address: `${B}/24` });
    servers.set(A, await startBootfarm(lab, `${lab.id}-srv1`, instanceConfig(A, etcd.endpoints)));
    servers.set(B, await startBootfarm(lab, `${lab.id}-srv2`, instanceConfig(B, etcd.endpoints), undefined, AHEAD));
    statusConfig = servers.get(A)?.configFile as string;
  });
  afterAll(async () => {
    for (const c of clients) await c.stop('SIGTERM', 2000);
    for (const s of servers.values()) {
      await s.stop();
      rmSync(path.dirname(s.configFile), { recursive: true, force: true });
    }
    for (const dir of retired) rmSync(dir, { recursive: true, force: true });
    await etcd?.stop();
    await lab?.destroy();
  });

  const server = (address: string) => servers.get(address) as BootfarmProcess;
  /** `stay`: udhcpc keeps its lease and renews on SIGUSR1, rather than quitting once bound. */
  const newClient = async (stay = false) => {
    const host = await lab.addHost(`c${clientCount++}`);
    const args = ['udhcpc', '-i', 'eth0', '-f', '-s', SCRIPT, '-t', '3', '-T', '1', ...(stay ? [] : ['-q']), '-n'];
    const bg = lab.spawn(host.ns, 'busybox', args, `udhcpc@${host.ns}`);
    clients.push(bg);
    return { host, bg };
  };
  const get = async (address: string, p: string) =>
    (await lab.exec(cliHost.ns, 'curl', ['-sS', '--max-time', '5', `http://${address}:8080${p}`])).stdout;
  const gauge = async (address: string, name: string) => (await get(address, '/metrics')).match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1];
  const healthz = async (address: string) => JSON.parse(await get(address, '/healthz')) as { status: string; clock?: { reason?: string } };
  const status = async () => {
    const r = await lab.exec(cliHost.ns, process.execPath, nodeArgs(CLI, ['status', '--config', statusConfig, '--json']));
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as StatusReport;
  };
  /** Instance `paused` is SIGSTOPped while `body` runs, so only the other one can answer. */
  const alone = async <T>(paused: string, body: () => Promise<T>): Promise<T> => {
    server(paused).bg.child.kill('SIGSTOP');
    try {
      return await body();
    } finally {
      server(paused).bg.child.kill('SIGCONT');
    }
  };

  it("faketime moves the instance's Date.now: `bootfarm status --json` shows both instances, instance 2 about 90 s ahead and stopped", async () => {
    let report: StatusReport | undefined;
    await waitUntil(
      async () => {
        report = await status();
        return report.instances.length === 2 && report.instances.every((i) => i.etcdSkewMs !== undefined);
      },
      30_000,
      'both instances in status with a skew measured',
      1000,
    );
    const [one, two] = (report as StatusReport).instances;
    expect([one?.address, two?.address]).toEqual([A, B]);
    // From the CLI's host (real clock): instance 2's clock is 90 s ahead, to within the registry's reading age.
    expect(two?.skewFromHereMs.lo).toBeGreaterThan(85_000);
    expect(two?.skewFromHereMs.lo).toBeLessThan(95_000);
    expect(two?.stoppedBySkew).toBe(true);
    expect(two?.etcdSkewMs).toBeGreaterThan(85_000);
    expect(one?.skewFromHereMs.possible).toBeLessThan(30_000);
    expect(one?.stoppedBySkew).toBe(false);
    expect(one?.worstPeer).toBe(two?.id);
    expect(one?.segments).toEqual(['10.9.0.0/24']);
    expect(one?.interfaces).toEqual(['eth0']);
    const members = (report as StatusReport).etcd.members;
    expect(members).toHaveLength(3);
    expect(members.filter((m) => m.leader)).toHaveLength(1);
    for (const m of members) expect(Number(m.raftIndex)).toBeGreaterThan(0);
  });

  it('instance 2 reports the skew on /metrics and /healthz; instance 1 stays ok', async () => {
    await waitUntil(async () => (await gauge(B, 'bootfarm_clock_skew_allocation_stopped')) === '1', 30_000, 'instance 2 stopped', 500);
    expect(Number(await gauge(B, 'bootfarm_clock_skew_seconds'))).toBeGreaterThan(60);
    expect(await healthz(B)).toMatchObject({ status: 'degraded', clock: { reason: 'clock skew beyond limit' } });
    expect(await gauge(A, 'bootfarm_clock_skew_allocation_stopped')).toBe('0');
    expect(Number(await gauge(A, 'bootfarm_clock_skew_seconds'))).toBeGreaterThan(60);
    expect(await healthz(A)).toEqual({ status: 'ok' });
    // etcd answers both: only the clock is wrong.
    expect(await gauge(B, 'bootfarm_lease_store_healthy')).toBe('1');
  });

  it('instance 2 gives no new address; instance 1 does', async () => {
    const refused = await alone(A, async () => {
      const c = await newClient();
      expect(await c.bg.exited).not.toBe(0);
      return c;
    });
    expect(refused.bg.lines.filter(leaseLine)).toEqual([]);
    expect(
      server(B)
        .logs()
        .some((l) => l.msg === REFUSED && l.mac === refused.host.mac),
    ).toBe(true);

    const served = await newClient();
    const lease = await served.bg.waitFor(leaseLine, 30_000, 'a lease from instance 1');
    expect(field(lease, 'server')).toBe(A);
  });

  it('instance 2 restarted without faketime allocates again, as the same instance', async () => {
    const before = (await status()).instances.find((i) => i.address === B)?.id;
    const old = server(B);
    await old.stop();
    servers.set(B, await startBootfarm(lab, `${lab.id}-srv2`, instanceConfig(B, etcd.endpoints), old.stateDir));
    // Removed at the end: the restarted instance's state directory lies inside it.
    retired.push(path.dirname(old.configFile));
    expect(await gauge(B, 'bootfarm_clock_skew_allocation_stopped')).toBe('0');
    expect(await healthz(B)).toEqual({ status: 'ok' });

    const lease = await alone(A, async () => {
      const c = await newClient();
      return c.bg.waitFor(leaseLine, 30_000, 'a lease from the restarted instance 2');
    });
    expect(field(lease, 'server')).toBe(B);
    const after = (await status()).instances.find((i) => i.address === B);
    expect(after?.id).toBe(before);
    expect(after?.stoppedBySkew).toBe(false);
  });

  it('a client holding a lease from instance 2 gets neither ACK nor NAK from it once its clock is 90 s ahead again', async () => {
    const holder = await alone(A, async () => {
      const c = await newClient(true);
      await c.bg.waitFor(leaseLine, 30_000, 'a lease from instance 2');
      return c;
    });
    const lease = holder.bg.lines.find(leaseLine) as string;
    expect(field(lease, 'server')).toBe(B);
    const ip = field(lease, 'ip');
    const old = server(B);
    await old.stop();
    servers.set(B, await startBootfarm(lab, `${lab.id}-srv2`, instanceConfig(B, etcd.endpoints), old.stateDir, AHEAD));
    // Removed at the end: the restarted instance's state directory lies inside it.
    retired.push(path.dirname(old.configFile));
    expect(await gauge(B, 'bootfarm_clock_skew_allocation_stopped')).toBe('1');

    // busybox udhcpc renews on SIGUSR1: a unicast REQUEST to instance 2 from the bound address.
    holder.bg.child.kill('SIGUSR1');
    await waitUntil(
      () =>
        server(B)
          .logs()
          .some((l) => l.msg === REFUSED && l.mac === holder.host.mac && l.type === 'REQUEST' && l.ip === ip),
      30_000,
      'instance 2 leaving the renewal unanswered',
      200,
    );
    // Every packet of the client's (the unicast renewal, the broadcast ones after it)
    // left unanswered; nothing of this client's was ACKed, NAKed or offered.
    const outcomes = server(B)
      .logs()
      .filter((l) => l.mac === holder.host.mac && typeof l.outcome === 'string');
    const renewals = outcomes.filter((l) => l.type === 'REQUEST' && l.ip === ip);
    expect(renewals.length).toBeGreaterThan(0);
    expect(renewals.every((l) => l.outcome === 'clock-skew-stopped')).toBe(true);
    expect(outcomes.filter((l) => /^(ack|nak|offer)/.test(String(l.outcome)))).toEqual([]);
    expect(Number(await gauge(B, 'bootfarm_dhcp_clock_skew_silent_total'))).toBeGreaterThan(0);
    expect(
      holder.bg.lines
        .filter(leaseLine)
        .slice(1)
        .filter((l) => field(l, 'server') === B),
    ).toEqual([]);
  });
});

describe('bootfarm status with nothing to read', () => {
  let dir: string;
  // Made in beforeAll, not at collection: a run that filters these tests out would leave it behind.
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-status-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const statusOf = async (config: Record<string, unknown>) => {
    const file = path.join(dir, `${Object.keys(config).join('-')}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify({ server: { address: '127.0.0.1', stateDir: path.join(dir, 'state') }, ...config }));
    return run(process.execPath, nodeArgs(CLI, ['status', '--config', file, '--json']));
  };

  it('unreachable etcd: one line naming the endpoints, exit 2', async () => {
    const r = await statusOf({ store: { backend: 'etcd', etcd: { endpoints: ['http://127.0.0.1:1'], prefix: '/x' } } });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^bootfarm: status: etcd at http:\/\/127\.0\.0\.1:1 did not answer \(.+\)\n$/);
  });

  it('a configuration without etcd: one line, exit 2', async () => {
    const r = await statusOf({});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^bootfarm: status: .* has store\.backend file; status reads instances from etcd \(store\.backend: etcd\)\n$/);
  });
});
