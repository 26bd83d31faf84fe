// Leases shared through etcd when etcd fails (docs/design.md "Shared state in
// etcd"): a real three-member cluster in this test's namespaces, two bootfarm
// instances in full DHCP mode on one segment, busybox udhcpc clients, and a wire
// observer that judges every broadcast OFFER and ACK. One member killed changes
// nothing; two killed (no quorum) leave renewals only, for what their leases have
// left; one instance cut off from etcd by nftables in its own namespace gives no
// new address while the other does; each comes back when etcd does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import type { Background } from '../../server/lab/proc.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { etcdEntries, startEtcd, type LabEtcdCluster } from '../lib/etcd.js';
import type { ObservedReply } from '../lib/dhcp-wire-observer.js';
import { parseClaim } from '../../server/store/lease-claims.js';
import { waitUntil } from '../lib/wait.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const PREFIX = '/bf-outage';
const LEASE_SECONDS = 600;
const MEMBERS = ['10.9.0.5', '10.9.0.6', '10.9.0.7'];
const [A, B] = ['10.9.0.1', '10.9.0.2'];

function instanceConfig(address: string, endpoints: string[]) {
  return {
    server: { address },
    http: { port: 8080 },
    dhcp: {
      mode: 'full',
      interface: 'eth0',
      subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.119'], router: '10.9.0.1', leaseSeconds: LEASE_SECONDS }],
    },
    store: { backend: 'etcd', etcd: { endpoints, prefix: PREFIX, claimTimeoutMs: 500 } },
  };
}

const leaseLine = (l: string) => l.startsWith('LEASE ');
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];

describe('bootfarm instances sharing leases when etcd fails or is cut off', () => {
  let lab: NetLab;
  let etcd: LabEtcdCluster;
  let observer: Background;
  let observerHost: LabHost;
  const servers = new Map<string, BootfarmProcess>();
  const clients: Background[] = [];
  let clientCount = 0;

  beforeAll(async () => {
    lab = await NetLab.create('eo');
    const members: LabHost[] = [];
    for (const [i, address] of MEMBERS.entries()) members.push(await lab.addHost(`etcd${i}`, { address: `${address}/24` }));
    etcd = await startEtcd(lab, members);
    observerHost = await lab.addHost('obs', { address: '10.9.0.9/24' });
    observer = lab.spawn(observerHost.ns, process.execPath, nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-wire-observer.ts'), []));
    await observer.waitFor((l) => l.includes('"ready":true'), 30_000, 'the wire observer');
    for (const [name, address] of [
      ['srv1', A],
      ['srv2', B],
    ] as const) {
      await lab.addHost(name, { address: `${address}/24` });
      servers.set(address, await startBootfarm(lab, `${lab.id}-${name}`, instanceConfig(address, etcd.endpoints)));
    }
  });
  afterAll(async () => {
    for (const c of clients) await c.stop('SIGTERM', 2000);
    for (const s of servers.values()) {
      await s.stop();
      rmSync(path.dirname(s.configFile), { recursive: true, force: true });
    }
    await observer?.stop();
    await etcd?.stop();
    await lab?.destroy();
  });

  const server = (address: string) => servers.get(address) as BootfarmProcess;
  /** A new client on the segment; `once`: udhcpc -q (one lease, then exit; -n: exit 1 without one), else it stays to renew. */
  const newClient = async (once: boolean) => {
    const host = await lab.addHost(`c${clientCount++}`);
    const args = ['udhcpc', '-i', 'eth0', '-f', '-s', SCRIPT, '-t', '3', '-T', '1', ...(once ? ['-q', '-n'] : [])];
    const bg = lab.spawn(host.ns, 'busybox', args, `udhcpc@${host.ns}`);
    clients.push(bg);
    return { host, bg };
  };
  /** What an instance says of its lease store, asked over HTTP from the observer's namespace. */
  const storeHealth = async (address: string) => {
    const get = (p: string) => lab.exec(observerHost.ns, 'curl', ['-sS', '--max-time', '5', `http://${address}:8080${p}`]);
    const metrics = (await get('/metrics')).stdout;
    const gauge = metrics.match(/^bootfarm_lease_store_healthy (\d+)$/m)?.[1];
    return {
      gauge,
      healthz: JSON.parse((await get('/healthz')).stdout) as {
        status: string;
        leaseStore?: { reason?: string };
        clock?: { reason?: string };
      },
    };
  };
  const waitHealth = (address: string, gauge: '0' | '1') =>
    waitUntil(async () => (await storeHealth(address)).gauge === gauge, 60_000, `${address}: bootfarm_lease_store_healthy ${gauge}`, 500);
  /** Until it may give new addresses: etcd answers and its clock-skew verdict is fresh (/healthz ok, gauge 1). */
  const waitReady = (address: string) =>
    waitUntil(
      async () => {
        const { gauge, healthz } = await storeHealth(address);
        return gauge === '1' && healthz.status === 'ok';
      },
      60_000,
      `${address}: lease store healthy and /healthz ok`,
      500,
    );
  const observed = () =>
    observer.lines
      .filter((l) => l.startsWith('{"type"'))
      .map((l) => JSON.parse(l) as ObservedReply)
      .filter((r) => r.type === 'OFFER' || r.type === 'ACK');

  it('one of three etcd members killed: addresses are given and claimed as before', async () => {
    await etcd.kill(2);
    const { host, bg } = await newClient(true);
    const lease = await bg.waitFor(leaseLine, 30_000, 'a lease with one member down');
    expect(field(lease, 'lease')).toBe(String(LEASE_SECONDS));
    const ip = field(lease, 'ip') as string;
    const claim = (await etcdEntries(etcd, `${PREFIX}/leases/`)).find((e) => e.key.endsWith(`/${ip}`));
    expect(parseClaim(claim?.value ?? '')?.mac).toBe(host.mac);
    for (const address of [A, B]) expect(await storeHealth(address)).toEqual({ gauge: '1', healthz: { status: 'ok' } });
    await etcd.restart(2);
  });

  it('two of three killed: a held address is renewed for what its lease has left, no new one is given, and it resumes with quorum', async () => {
    const holder = await newClient(false);
    const bound = await holder.bg.waitFor(leaseLine, 30_000, 'a lease before the outage');
    const [ip, from] = [field(bound, 'ip') as string, field(bound, 'server') as string];

    await etcd.kill(1);
    await etcd.kill(2);
    for (const address of [A, B]) await waitHealth(address, '0');
    const { healthz } = await storeHealth(A);
    expect(healthz.status).toBe('degraded');
    // A fixed reason on /healthz (anyone on the segment reads it); etcd's error, with its endpoints, is in the log.
    expect(healthz.leaseStore?.reason).toBe('lease store unreachable');

    // SIGUSR1: udhcpc renews now, unicast to the instance that gave the lease.
    const since = holder.bg.lines.length;
    holder.bg.child.kill('SIGUSR1');
    const renewed = await holder.bg.waitFor((l) => leaseLine(l) && l.includes('event=renew'), 30_000, 'the renewal ACK', since);
    expect(field(renewed, 'ip')).toBe(ip);
    expect(field(renewed, 'server')).toBe(from);
    const seconds = Number(field(renewed, 'lease'));
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(LEASE_SECONDS);

    const refused = await newClient(true);
    expect(await refused.bg.exited).not.toBe(0);
    expect(refused.bg.lines.filter(leaseLine)).toEqual([]);
    expect(observed().filter((r) => r.mac === refused.host.mac)).toEqual([]);
    for (const address of [A, B])
      expect(
        server(address)
          .logs()
          .some((l) => l.msg === 'dhcp: no new address while the lease store (etcd) cannot be reached' && l.mac === refused.host.mac),
      ).toBe(true);

    await etcd.restart(1);
    for (const address of [A, B]) await waitReady(address);
    const after = await newClient(true);
    await after.bg.waitFor(leaseLine, 30_000, 'a lease once quorum is back');
    await etcd.restart(2);
  });

  it('one instance cut off from etcd by nftables gives no new address while the other does; it resumes when the partition heals', async () => {
    const ns = `${lab.id}-srv1`;
    const nft = async (...args: string[]) => {
      const r = await lab.exec(ns, 'nft', args);
      expect(r.code, r.stderr).toBe(0);
    };
    // Only instance 1's own traffic to etcd is dropped: it stays on the segment and answers DHCP.
    await nft('add', 'table', 'inet', 'etcdcut');
    await nft('add', 'chain', 'inet', 'etcdcut', 'out', '{ type filter hook output priority 0 ; }');
    await nft('add', 'rule', 'inet', 'etcdcut', 'out', 'ip', 'daddr', `{ ${MEMBERS.join(', ')} }`, 'tcp', 'dport', '2379', 'drop');
    await waitHealth(A, '0');
    expect(await storeHealth(B)).toEqual({ gauge: '1', healthz: { status: 'ok' } });

    const served = await newClient(true);
    const lease = await served.bg.waitFor(leaseLine, 30_000, 'a lease from the instance still on etcd');
    expect(field(lease, 'server')).toBe(B);
    expect(observed().filter((r) => r.mac === served.host.mac && r.server === A)).toEqual([]);

    // Held until instance 1's clock-skew verdict is stale too (its registry could
    // not refresh): coming back must bring both the store and the verdict back.
    await waitUntil(async () => (await storeHealth(A)).healthz.clock !== undefined, 60_000, `${A}: /healthz clock degraded`, 500);
    await nft('delete', 'table', 'inet', 'etcdcut');
    await waitReady(A);
    // Instance 2 paused: the next lease can only come from instance 1.
    server(B).bg.child.kill('SIGSTOP');
    try {
      const resumed = await newClient(true);
      const again = await resumed.bg.waitFor(leaseLine, 30_000, 'a lease from the healed instance');
      expect(field(again, 'server')).toBe(A);
    } finally {
      server(B).bg.child.kill('SIGCONT');
    }
  });

  it('through all of it, no address was ACKed to two clients, and etcd names the client of every ACK', async () => {
    const acks = observed().filter((r) => r.type === 'ACK');
    expect(acks.length).toBeGreaterThanOrEqual(4);
    // Every lease is 600 s, longer than this test: any two ACKs of one address overlap.
    const holders = new Map<string, Set<string>>();
    for (const ack of acks) holders.set(ack.yiaddr, (holders.get(ack.yiaddr) ?? new Set()).add(ack.mac));
    expect([...holders].filter(([, macs]) => macs.size > 1)).toEqual([]);
    const claims = new Map((await etcdEntries(etcd, `${PREFIX}/leases/`)).map((e) => [e.key.split('/').pop(), parseClaim(e.value)?.mac]));
    for (const [ip, macs] of holders) expect(claims.get(ip)).toBe([...macs][0]);
  });
});
