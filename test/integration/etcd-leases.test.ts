// Leases shared through etcd (store.backend: etcd, docs/design.md "Shared state
// in etcd"): a real three-member etcd cluster in this test's namespaces, two
// bootfarm instances in full DHCP mode on one segment, busybox udhcpc clients
// (more than there are addresses), and a wire observer that judges every ACK.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { etcdEntries, startEtcd, type EtcdCluster } from '../lib/etcd.js';
import type { ObservedReply } from '../lib/dhcp-wire-observer.js';
import { parseClaim } from '../../server/store/lease-claims.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const PREFIX = '/bf-test';
const RANGE: [string, string] = ['10.9.0.100', '10.9.0.104'];
const RANGE_SIZE = 5;

function instanceConfig(address: string, endpoints: string[]) {
  return {
    server: { address },
    dhcp: {
      mode: 'full',
      interface: 'eth0',
      subnets: [{ cidr: '10.9.0.0/24', range: RANGE, router: '10.9.0.1', leaseSeconds: 600 }],
    },
    store: { backend: 'etcd', etcd: { endpoints, prefix: PREFIX } },
  };
}

const leaseLine = (l: string) => l.startsWith('LEASE ');
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];

describe('two bootfarm instances sharing leases in etcd', () => {
  let lab: NetLab;
  let etcd: EtcdCluster;
  let members: LabHost[];

  beforeAll(async () => {
    lab = await NetLab.create('et');
    members = [];
    for (const [i, address] of ['10.9.0.5', '10.9.0.6', '10.9.0.7'].entries())
      members.push(await lab.addHost(`etcd${i}`, { address: `${address}/24` }));
    etcd = await startEtcd(lab, members);
  });
  afterAll(async () => {
    await etcd?.stop();
    await lab?.destroy();
  });

  it('two claimers racing for the same addresses: exactly one wins each, and etcd names the winner', async () => {
    const r = await lab.exec(
      (members[0] as LabHost).ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/etcd-claim-race.ts'), [etcd.endpoints.join(','), '/race', '40']),
    );
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as Array<{ ip: string; a: boolean; b: boolean }>;
    expect(results).toHaveLength(40);
    for (const { ip, a, b } of results) expect({ ip, winners: Number(a) + Number(b) }).toEqual({ ip, winners: 1 });
    const stored = new Map((await etcdEntries(etcd, '/race/leases/')).map((e) => [e.key.split('/').pop(), parseClaim(e.value)?.key]));
    for (const { ip, a } of results) expect(stored.get(ip)).toBe(a ? 'client-a' : 'client-b');
  });

  it('no address is ACKed to two clients, with more clients than addresses, and etcd agrees with the ACKs', async () => {
    await lab.addHost('srv1', { address: '10.9.0.1/24' });
    await lab.addHost('srv2', { address: '10.9.0.2/24' });
    const observerHost = await lab.addHost('obs', { address: '10.9.0.9/24' });
    const observer = lab.spawn(observerHost.ns, process.execPath, nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-wire-observer.ts'), []));
    await observer.waitFor((l) => l.includes('"ready":true'), 30_000, 'the wire observer');

    const clients: LabHost[] = [];
    for (let i = 0; i < 8; i++) clients.push(await lab.addHost(`c${i}`));
    const udhcpc = (host: LabHost) =>
      lab.spawn(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-s', SCRIPT, '-t', '6', '-T', '1'], `udhcpc@${host.ns}`);

    // Instance 1 alone serves the first two clients; instance 2 starts afterwards
    // with an empty state directory, so all it knows of those leases is in etcd.
    const servers: BootfarmProcess[] = [await startBootfarm(lab, `${lab.id}-srv1`, instanceConfig('10.9.0.1', etcd.endpoints))];
    const early = clients.slice(0, 2).map(udhcpc);
    await Promise.all(early.map((c) => c.waitFor(leaseLine, 30_000, 'an early lease')));
    const second = await startBootfarm(lab, `${lab.id}-srv2`, instanceConfig('10.9.0.2', etcd.endpoints));
    servers.push(second);
    // Instance 1 paused: the third client's lease can only come from instance 2,
    // which must not give it either address instance 1 gave.
    const first = servers[0] as BootfarmProcess;
    first.bg.child.kill('SIGSTOP');
    const third = udhcpc(clients[2] as LabHost);
    await third.waitFor(leaseLine, 30_000, 'a lease from instance 2');
    first.bg.child.kill('SIGCONT');
    // Then the rest at once: five clients for the two addresses left, both instances answering.
    const storm = [third, ...clients.slice(3).map(udhcpc)];
    await Promise.all(storm.map((c) => c.exited));

    const leases = [...early, ...storm].flatMap((c) => c.lines.filter(leaseLine).map((l) => field(l, 'ip') as string));
    const acks = observer.lines
      .filter((l) => l.startsWith('{"type"'))
      .map((l) => JSON.parse(l) as ObservedReply)
      .filter((r) => r.type === 'ACK');
    // Every lease is 600 s, longer than this test: any two ACKs of one address overlap.
    const holders = new Map<string, Set<string>>();
    for (const ack of acks) holders.set(ack.yiaddr, (holders.get(ack.yiaddr) ?? new Set()).add(ack.mac));
    const shared = [...holders].filter(([, macs]) => macs.size > 1).map(([ip, macs]) => `${ip}: ${[...macs].join(', ')}`);
    expect(shared, 'addresses ACKed to two clients').toEqual([]);
    expect(new Set(leases).size, `leases ${leases.join(' ')}`).toBe(leases.length);
    expect(leases).toHaveLength(RANGE_SIZE);
    expect(holders.size).toBe(RANGE_SIZE);
    // Both instances gave leases (the third client's came from instance 2).
    expect(new Set(acks.map((a) => a.server))).toEqual(new Set(['10.9.0.1', '10.9.0.2']));

    // etcd holds one claim per ACKed address, naming the client it was ACKed to.
    const claims = new Map((await etcdEntries(etcd, `${PREFIX}/leases/`)).map((e) => [e.key, parseClaim(e.value)?.mac]));
    for (const [ip, macs] of holders) expect(claims.get(`${PREFIX}/leases/10.9.0.0_24/${ip}`)).toBe([...macs][0]);
    for (const s of servers) {
      await s.stop();
      rmSync(path.dirname(s.configFile), { recursive: true, force: true });
    }
  });
});
