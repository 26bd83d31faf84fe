// Full DHCP mode against real clients (busybox udhcpc, ISC dhclient, ISC dhcrelay)
// in network namespaces this test creates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { startBootfarm, REPO_ROOT, type BootfarmProcess } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');

function baseConfig(range: [string, string], extra: Record<string, unknown> = {}) {
  return {
    server: { address: '10.9.0.1' },
    dhcp: {
      mode: 'full',
      interface: 'eth0',
      subnets: [{ cidr: '10.9.0.0/24', range, router: '10.9.0.1', dns: ['10.9.0.1'], domain: 'lab', leaseSeconds: 600 }],
      ...extra,
    },
    nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.11' }],
  };
}

async function addressOf(lab: NetLab, host: LabHost): Promise<string | undefined> {
  const info = JSON.parse(await lab.ip(host.ns, '-j', '-4', 'addr', 'show', 'eth0')) as Array<{ addr_info: Array<{ local: string }> }>;
  return info[0]?.addr_info[0]?.local;
}

function udhcpc(lab: NetLab, host: LabHost, extra: string[] = []) {
  return lab.spawn(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-s', SCRIPT, '-t', '4', '-T', '1', ...extra], `udhcpc@${host.ns}`);
}

const leaseLine = (l: string) => l.startsWith('LEASE ');
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];

describe('full DHCP mode with busybox udhcpc and ISC dhclient', () => {
  let lab: NetLab;
  let server: BootfarmProcess;

  beforeAll(async () => {
    lab = await NetLab.create('fu');
    await lab.addHost('srv', { address: '10.9.0.1/24' });
    server = await startBootfarm(lab, `${lab.id}-srv`, baseConfig(['10.9.0.100', '10.9.0.150']));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('udhcpc obtains, renews and releases a lease', async () => {
    const host = await lab.addHost('c1');
    const client = udhcpc(lab, host, ['-R']);
    const bound = await client.waitFor(leaseLine, 30_000, 'a lease');
    const ip = field(bound, 'ip');
    expect(field(bound, 'event')).toBe('bound');
    expect(ip).toMatch(/^10\.9\.0\.(1[0-4]\d|150)$/);
    expect(field(bound, 'server')).toBe('10.9.0.1');
    expect(field(bound, 'lease')).toBe('600');
    expect(await addressOf(lab, host)).toBe(ip);

    // SIGUSR1 makes udhcpc renew now: a unicast REQUEST with ciaddr (RENEWING).
    const beforeRenewal = server.bg.lines.length;
    client.child.kill('SIGUSR1');
    const renewed = await client.waitFor((l) => leaseLine(l) && l.includes('event=renew'), 30_000, 'the renewal');
    expect(field(renewed, 'ip')).toBe(ip);
    // The renewal was answered by bootfarm (not merely assumed by the client): its ACK is in the log after the signal.
    const ack = await server.waitForLog(
      (l) => l.type === 'REQUEST' && l.outcome === 'ack' && l.ip === ip && l.mac === host.mac,
      10_000,
      'the renewal ACK',
      beforeRenewal,
    );
    expect(ack.listener).toBe('dhcp');

    // -R: SIGTERM sends a RELEASE before exiting.
    await client.stop('SIGTERM');
    await server.bg.waitFor((l) => l.includes('"outcome":"released"') && l.includes(ip as string), 10_000, 'the release');
  });

  it('honours a reservation by MAC and gives a second client a different address', async () => {
    const reserved = await lab.addHost('c2', { mac: '52:54:00:00:00:01' });
    const other = await lab.addHost('c3');
    const a = udhcpc(lab, reserved, ['-q']);
    const b = udhcpc(lab, other, ['-q']);
    const [la, lb] = await Promise.all([a.waitFor(leaseLine, 30_000, 'a lease'), b.waitFor(leaseLine, 30_000, 'a lease')]);
    expect(field(la, 'ip')).toBe('10.9.0.11');
    expect(field(la, 'host')).toBe('node-1');
    expect(field(lb, 'ip')).not.toBe('10.9.0.11');
    expect(field(lb, 'ip')).toMatch(/^10\.9\.0\.1\d\d$/);
  });

  it('dhclient obtains a lease, reboots into the same one after bootfarm restarts, is NAKed for a wrong one, and releases', async () => {
    const host = await lab.addHost('c4');
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-dhclient-'));
    const leases = path.join(dir, 'dhclient.leases');
    const pid = path.join(dir, 'dhclient.pid');
    const args = ['-4', '-d', '-1', '-v', '-sf', SCRIPT, '-lf', leases, '-pf', pid, 'eth0'];

    const first = lab.spawn(host.ns, 'dhclient', args, 'dhclient');
    const bound = await first.waitFor((l) => l.includes('LEASE reason=BOUND'), 40_000, 'BOUND');
    const ip = field(bound, 'ip') as string;
    expect(ip).toMatch(/^10\.9\.0\.1\d\d$/);
    // dhclient writes its lease file after running the script: wait for it before stopping.
    await waitUntil(() => existsSync(leases) && readFileSync(leases, 'utf8').includes(`fixed-address ${ip};`), 10_000, 'the lease file');
    await first.stop('SIGTERM');

    // bootfarm is killed and restarted: from here on the lease exists only in its state directory.
    server.bg.child.kill('SIGKILL');
    await server.bg.exited;
    server = await startBootfarm(lab, `${lab.id}-srv`, baseConfig(['10.9.0.100', '10.9.0.150']), server.stateDir);
    // Another machine asking for exactly that address (option 50) gets a different one: only
    // the lease read back from the state directory holds it (a pool that lost it would grant it).
    const other = await lab.addHost('c5');
    const squatter = udhcpc(lab, other, ['-q', '-r', ip]);
    const squatterLease = await squatter.waitFor(leaseLine, 30_000, 'a lease for another machine');
    expect(field(squatterLease, 'ip')).toMatch(/^10\.9\.0\.1\d\d$/);
    expect(field(squatterLease, 'ip')).not.toBe(ip);

    // A restart with the lease file is INIT-REBOOT: REQUEST for the remembered address.
    const second = lab.spawn(host.ns, 'dhclient', args, 'dhclient');
    const reboot = await second.waitFor((l) => l.includes('LEASE reason='), 40_000, 'a lease after reboot');
    expect(field(reboot, 'ip')).toBe(ip);
    if (!reboot.includes('reason=REBOOT'))
      console.log(second.lines.join('\n'), server.bg.lines.filter((l) => l.includes(host.mac)).join('\n'));
    expect(reboot).toContain('reason=REBOOT');
    await second.stop('SIGTERM');

    // A remembered address from another network must be NAKed (RFC 2131 §4.3.2), after
    // which dhclient starts over and gets its address here.
    const lease = readFileSync(leases, 'utf8').replaceAll(ip, '192.168.7.7');
    writeFileSync(leases, lease);
    const third = lab.spawn(host.ns, 'dhclient', args, 'dhclient');
    await third.waitFor((l) => l.includes('DHCPNAK'), 40_000, 'DHCPNAK');
    const after = await third.waitFor((l) => l.includes('LEASE reason=BOUND'), 40_000, 'BOUND after NAK');
    expect(field(after, 'ip')).toBe(ip);
    await waitUntil(() => readFileSync(leases, 'utf8').includes(`fixed-address ${ip};`), 10_000, 'the new lease in the lease file');
    await third.stop('SIGTERM');
    await server.bg.waitFor((l) => l.includes('"outcome":"nak"') && l.includes('not on this network'), 5_000, 'the NAK in the log');

    // dhclient -r releases the lease it holds.
    const release = await lab.exec(host.ns, 'dhclient', ['-4', '-r', '-v', '-sf', SCRIPT, '-lf', leases, '-pf', pid, 'eth0'], 30_000);
    expect(release.stderr).toContain('DHCPRELEASE');
    await server.bg.waitFor((l) => l.includes('"outcome":"released"') && l.includes(ip), 10_000, 'the release');
  });
});

describe('DHCPDECLINE from a client that finds its address in use', () => {
  let lab: NetLab;
  let server: BootfarmProcess;

  beforeAll(async () => {
    lab = await NetLab.create('dc');
    await lab.addHost('srv', { address: '10.9.0.1/24' });
    server = await startBootfarm(lab, `${lab.id}-srv`, baseConfig(['10.9.0.100', '10.9.0.101']));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('quarantines the declined address and leases the client another one', async () => {
    // A machine bootfarm does not know about squats on the first pool address.
    await lab.addHost('squatter', { address: '10.9.0.100/24' });
    const host = await lab.addHost('c1');
    // -a: udhcpc ARP-probes the offered address and sends DECLINE when it is taken.
    const client = udhcpc(lab, host, ['-q', '-a', '-t', '6']);
    const lease = await client.waitFor(leaseLine, 60_000, 'a lease');
    expect(field(lease, 'ip')).toBe('10.9.0.101');
    const declined = await server.waitForLog((l) => l.type === 'DECLINE', 5_000, 'the DECLINE');
    expect(declined).toMatchObject({ outcome: 'declined', ip: '10.9.0.100' });
  });
});

describe('pool exhaustion', () => {
  let lab: NetLab;
  let server: BootfarmProcess;

  beforeAll(async () => {
    lab = await NetLab.create('ex');
    await lab.addHost('srv', { address: '10.9.0.1/24' });
    server = await startBootfarm(lab, `${lab.id}-srv`, baseConfig(['10.9.0.100', '10.9.0.101']));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('answers a client it has no address for with silence, logs it, and keeps serving the others', async () => {
    const hosts = [await lab.addHost('c1'), await lab.addHost('c2'), await lab.addHost('c3')];
    const first = udhcpc(lab, hosts[0] as LabHost);
    const second = udhcpc(lab, hosts[1] as LabHost, ['-q']);
    const ips = [
      field(await first.waitFor(leaseLine, 30_000, 'a lease'), 'ip'),
      field(await second.waitFor(leaseLine, 30_000, 'a lease'), 'ip'),
    ];
    expect(new Set(ips)).toEqual(new Set(['10.9.0.100', '10.9.0.101']));

    const third = udhcpc(lab, hosts[2] as LabHost, ['-n', '-t', '2']);
    expect(await third.exited).not.toBe(0);
    expect(third.lines.some(leaseLine)).toBe(false);
    await server.bg.waitFor((l) => l.includes('"outcome":"exhausted"'), 5_000, 'exhausted in the log');

    // The server is still answering: the first client renews.
    first.child.kill('SIGUSR1');
    const renewed = await first.waitFor((l) => leaseLine(l) && l.includes('event=renew'), 30_000, 'a renewal after exhaustion');
    expect(field(renewed, 'ip')).toBe(ips[0]);
  });
});

describe('relayed requests (giaddr) through ISC dhcrelay', () => {
  let lab: NetLab;

  beforeAll(async () => {
    lab = await NetLab.create('rl');
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('leases from the subnet of the relay and answers via the relay', async () => {
    // Segment A (bridge): bootfarm 10.9.0.1 and the relay's upstream side 10.9.0.2.
    // Segment B (point-to-point): the relay's downstream side 10.9.1.1 and a client.
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    const relay = await lab.addHost('rly', { address: '10.9.0.2/24' });
    const client = await lab.addHost('cli');
    // Move the client off the bridge onto its own link with the relay.
    await lab.ip(client.ns, 'link', 'set', 'eth0', 'down');
    await lab.link(relay, '10.9.1.1/24', client, '0.0.0.0/32', 'down0');
    await lab.ip(client.ns, 'addr', 'flush', 'dev', 'down0');
    await lab.ip(srv.ns, 'route', 'add', '10.9.1.0/24', 'via', '10.9.0.2');
    await lab.exec(relay.ns, 'sysctl', ['-w', 'net.ipv4.ip_forward=1']);

    const config = baseConfig(['10.9.0.100', '10.9.0.150']);
    config.dhcp.subnets.push({
      cidr: '10.9.1.0/24',
      range: ['10.9.1.50', '10.9.1.60'],
      router: '10.9.1.1',
      dns: ['10.9.0.1'],
      domain: 'lab',
      leaseSeconds: 600,
    });
    const server = await startBootfarm(lab, srv.ns, config);
    const dhcrelay = lab.spawn(relay.ns, 'dhcrelay', ['-4', '-d', '-id', 'down0', '-iu', 'eth0', '10.9.0.1'], 'dhcrelay');
    await dhcrelay.waitFor((l) => /Listening on|Sending on/.test(l), 10_000, 'dhcrelay ready');

    const c = lab.spawn(client.ns, 'busybox', ['udhcpc', '-i', 'down0', '-f', '-q', '-s', SCRIPT, '-t', '5', '-T', '2'], 'udhcpc-relayed');
    const lease = await c.waitFor(leaseLine, 40_000, 'a relayed lease');
    expect(field(lease, 'ip')).toMatch(/^10\.9\.1\.(5\d|60)$/);
    expect(field(lease, 'server')).toBe('10.9.0.1');
    const offer = await server.waitForLog((l) => l.type === 'DISCOVER' && l.outcome === 'offer', 5_000, 'the relayed offer');
    expect(String(offer.ip)).toMatch(/^10\.9\.1\./);
  });
});
