// 100,000 random, truncated and mutated datagrams at a running bootfarm, over the
// wire from a test namespace; afterwards a real client still gets a lease, the
// process is alive, and the log of dropped packets stayed bounded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

describe('DHCP fuzzing over the wire', () => {
  let lab: NetLab;
  let server: BootfarmProcess;

  beforeAll(async () => {
    lab = await NetLab.create('fz');
    await lab.addHost('srv', { address: '10.9.0.1/24' });
    server = await startBootfarm(lab, `${lab.id}-srv`, {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.120'], leaseSeconds: 600 }] },
      nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', ip: '10.9.0.11' }],
      // Unknown MACs in the corpus take the boot-default path, the one with the most code behind it.
      unknownNodes: 'boot-default',
    });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('survives 100,000 hostile packets and keeps answering real clients', async () => {
    const fuzzHost = await lab.addHost('fuzz', { address: '10.9.0.250/24' });
    // Linux sends 255.255.255.255 only along a route: give the fuzzing host one.
    await lab.ip(fuzzHost.ns, 'route', 'add', 'default', 'dev', 'eth0');
    const fuzzer = lab.spawn(
      fuzzHost.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-fuzzer.ts'), ['10.9.0.1', '100000', '20261122']),
      'fuzzer',
    );
    const summary = JSON.parse(await fuzzer.waitFor((l) => l.includes('fuzzSent'), 240_000, 'the fuzzer to finish')) as {
      fuzzSent: number;
      sendErrors: number;
    };
    expect(summary).toEqual({ fuzzSent: 100_000, sendErrors: 0 });
    expect(server.bg.child.exitCode).toBeNull();

    const dropped = server.logs().filter((l) => l.msg === 'dhcp packet dropped' || l.msg === 'dhcp options ignored');
    expect(dropped.length).toBeGreaterThan(0);
    // Rate-limited: at most 10 lines a minute for the whole run.
    expect(dropped.length).toBeLessThanOrEqual(40);
    expect(server.logs().filter((l) => l.msg === 'dhcp request failed; no reply sent')).toEqual([]);

    // Offers held for fuzzed MACs must not lock a real client out of the 21-address pool.
    const client = await lab.addHost('cli', { mac: '52:54:00:00:00:01' });
    const other = await lab.addHost('cli2');
    const script = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
    for (const host of [client, other]) {
      const r = await lab.exec(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-s', script, '-t', '5', '-T', '1'], 60_000);
      expect(r.stderr).toMatch(/LEASE event=bound ip=10\.9\.0\.1\d\d?/);
    }
  }, 300_000);
});
