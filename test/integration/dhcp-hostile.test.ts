// An attacker on the boot segment against bootfarm's DHCP server (full mode),
// each attack a regression test of a hole that existed: source port 0 killed the
// process, forged REQUESTs bound addresses without a DISCOVER, DISCOVER+DECLINE
// emptied the pool, random MACs took every address, one MAC could flood. The
// attacker is test/lib/dhcp-attacker.ts (and test/lib/udp-forge.py for port 0)
// in its own namespace; after each attack a real client (busybox udhcpc) must
// still get an address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { BOOTREQUEST, encodePacket } from '../../server/dhcp/codec/packet.js';
import { MessageType, Opt } from '../../server/dhcp/codec/options.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const NODE_MAC = '52:54:00:00:00:01';
const METRICS = 'http://10.9.0.1:8080/metrics';
const PI_MAC = 'dc:a6:32:00:00:0a';

interface AttackResult {
  scenario: string;
  sent: number;
  sendErrors: number;
  offers: number;
  acks: number;
  naks: number;
}
interface LeaseView {
  ip: string;
  mac: string;
  state: string;
}

const config = (limits: Record<string, number>) => ({
  server: { address: '10.9.0.1' },
  dhcp: {
    mode: 'full',
    interface: 'eth0',
    subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.119'], leaseSeconds: 600 }],
    limits,
  },
  http: { port: 8080 },
  nodes: [
    { mac: NODE_MAC, hostname: 'node-1' },
    { mac: PI_MAC, hostname: 'pi-1', piSerial: '1234abcd', piModel: 4, ip: '10.9.0.50' },
  ],
  unknownNodes: 'discover',
  // The lease table is read anonymously from the server's namespace; reads are protected by default.
  api: { protectReads: false },
});

/** A PXE REQUEST from the inventory node, as the boot-server port (4011) expects. */
function bootServerRequest(): string {
  const options = new Map<number, Buffer>([
    [Opt.MESSAGE_TYPE, Buffer.of(MessageType.REQUEST)],
    [Opt.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00007:UNDI:003016', 'latin1')],
    [Opt.CLIENT_ARCH, Buffer.of(0, 7)],
  ]);
  return encodePacket({
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x1234,
    secs: 0,
    flags: 0,
    ciaddr: '10.9.0.250',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: Buffer.from(NODE_MAC.replace(/:/g, ''), 'hex'),
    sname: '',
    file: '',
    options,
  }).buffer.toString('hex');
}

describe('DHCP against an attacker on the segment', () => {
  let lab: NetLab;
  let srv: LabHost;
  let attacker: LabHost;
  let server: BootfarmProcess;
  let clients = 0;
  let startRssKiB = 0;

  const attack = async (scenario: string, count: number, sourcePort = 68, seed = 1): Promise<AttackResult> => {
    const bg = lab.spawn(
      attacker.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-attacker.ts'), [scenario, '10.9.0.1', String(count), String(seed), String(sourcePort)]),
      `attacker-${scenario}`,
    );
    return JSON.parse(await bg.waitFor((l) => l.startsWith('{"scenario"'), 240_000, `the ${scenario} attack to end`)) as AttackResult;
  };
  const metric = async (pattern: RegExp): Promise<number> => {
    const r = await lab.exec(srv.ns, 'curl', ['-sS', METRICS]);
    const m = pattern.exec(r.stdout);
    return m ? Number(m[1]) : 0;
  };
  const leases = async (): Promise<LeaseView[]> => {
    const r = await lab.exec(srv.ns, 'curl', ['-sS', 'http://10.9.0.1:8080/api/v1/leases']);
    return (JSON.parse(r.stdout) as { leases: LeaseView[] }).leases;
  };
  /** A real client on a fresh host takes an address; resolves with it. */
  const realClient = async (mac?: string): Promise<string> => {
    const host = await lab.addHost(`c${clients++}`, mac ? { mac } : {});
    const r = await lab.exec(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '6', '-T', '1'], 60_000);
    const ip = /LEASE event=bound ip=(\S+)/.exec(r.stderr)?.[1];
    if (!ip) {
      const recent = server
        .logs()
        .filter((l) => l.msg?.startsWith('dhcp'))
        .slice(-15)
        .map((l) => JSON.stringify(l));
      throw new Error(`udhcpc got no lease:\n${r.stderr}\nbootfarm's last DHCP lines:\n${recent.join('\n')}`);
    }
    return ip;
  };
  const alive = () => expect(server.bg.child.exitCode).toBeNull();

  beforeAll(async () => {
    lab = await NetLab.create('dh');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    attacker = await lab.addHost('atk', { address: '10.9.0.250/24' });
    // Linux sends 255.255.255.255 only along a route.
    await lab.ip(attacker.ns, 'route', 'add', 'default', 'dev', 'eth0');
    // Global budget off here (its own test below): each attack meets the per-MAC budget and the pool caps.
    server = await startBootfarm(
      lab,
      srv.ns,
      config({
        unknownClientBurst: 5,
        unknownClientPerMinute: 6,
        unknownGlobalBurst: 0,
        unknownLeasePercent: 50,
        maxQuarantinedPercent: 10,
      }),
    );
    startRssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.bg.pid}/status`, 'utf8'))?.[1]);
  });
  afterAll(async () => {
    await server?.stop();
    await lab?.destroy();
  });

  it('drops a datagram from source port 0 (to the boot-server port and to 67) and keeps serving', async () => {
    const payload = bootServerRequest();
    for (const port of ['4011', '67']) {
      const r = await lab.exec(attacker.ns, 'python3', [
        path.join(REPO_ROOT, 'test/lib/udp-forge.py'),
        '10.9.0.250',
        '0',
        '10.9.0.1',
        port,
        '5',
        payload,
      ]);
      expect(r.stdout).toContain('"sent": 5');
    }
    await server.waitForLog((l) => l.msg === 'dhcp reply not sent' && l.reason === 'port-0', 10_000, 'the unsendable reply logged');
    alive();
    expect(await metric(/bootfarm_dhcp_replies_unsendable_total\{reason="port-0"\} (\d+)/)).toBeGreaterThanOrEqual(5);
    expect(await realClient(NODE_MAC)).toMatch(/^10\.9\.0\.1\d\d$/);
  });

  it('binds nothing for 101 forged SELECTING REQUESTs with no OFFER before them', async () => {
    const before = (await leases()).filter((l) => l.state === 'bound').length;
    const result = await attack('forge-request', 101);
    expect(result.sent).toBe(101);
    expect(result.acks).toBe(0);
    expect(result.naks).toBe(101);
    alive();
    expect((await leases()).filter((l) => l.state === 'bound')).toHaveLength(before);
    expect(await realClient()).toMatch(/^10\.9\.0\.1\d\d$/);
  });

  it('binds nothing for forged RENEWING REQUESTs naming addresses the senders never held', async () => {
    const before = await leases();
    const result = await attack('forge-renew', 50);
    expect(result.sent).toBe(50);
    expect(result.acks).toBe(0);
    expect(await leases()).toEqual(before);
  });

  it('quarantines at most maxQuarantinedPercent of the pool for DISCOVER+DECLINE from forged MACs', async () => {
    const result = await attack('discover-decline', 30);
    expect(result.offers).toBeGreaterThanOrEqual(20);
    const declined = (await leases()).filter((l) => l.state === 'declined');
    // 10% of 20 addresses.
    expect(declined.length).toBe(2);
    expect(await metric(/bootfarm_dhcp_declines_ignored_total\{reason="quarantine-full"\} (\d+)/)).toBeGreaterThanOrEqual(10);
    expect(await realClient()).toMatch(/^10\.9\.0\.1\d\d$/);
  });

  it('lets machines in no inventory hold at most unknownLeasePercent of the pool; an inventory node still gets an address', async () => {
    const result = await attack('dora', 30);
    expect(result.acks).toBeGreaterThan(0);
    const unknownBound = (await leases()).filter((l) => l.state === 'bound' && l.mac !== NODE_MAC);
    // 50% of 20 addresses.
    expect(unknownBound.length).toBe(10);
    expect(await metric(/bootfarm_dhcp_unknown_lease_cap_total (\d+)/)).toBeGreaterThan(0);
    expect(await realClient(NODE_MAC)).toMatch(/^10\.9\.0\.1\d\d$/);
  });

  it('drops what one MAC sends over its budget, counts it, and logs it at a bounded rate', async () => {
    const logLines = server.bg.lines.length;
    const result = await attack('one-mac', 100);
    expect(result.sent).toBe(100);
    // A burst of 5 and one more per 10 s: nothing like 100 replies.
    expect(result.offers).toBeLessThanOrEqual(6);
    expect(await metric(/bootfarm_dhcp_rate_limited_total\{scope="client"\} (\d+)/)).toBeGreaterThanOrEqual(94);
    const dropped = server.logs().filter((l) => l.msg?.startsWith('dhcp request dropped: this unknown machine'));
    expect(dropped.length).toBeGreaterThan(0);
    expect(server.bg.lines.slice(logLines).filter((l) => l.includes('dhcp request dropped')).length).toBeLessThanOrEqual(10);
  });

  it('survives a stateful fuzz of 100,000 DISCOVER/REQUEST/DECLINE/RELEASE/INFORM from random and victim MACs and source ports 0, 1, 68, 69, 65535', async () => {
    const ports = [1, 68, 69, 65535];
    let sent = 0;
    for (const [i, port] of ports.entries()) {
      const r = await attack('mix', 25_000, port, 100 + i);
      expect(r.sendErrors).toBe(0);
      sent += r.sent;
    }
    const forged = await lab.exec(attacker.ns, 'python3', [
      path.join(REPO_ROOT, 'test/lib/udp-forge.py'),
      '10.9.0.250',
      '0',
      '10.9.0.1',
      '4011',
      '2000',
      bootServerRequest(),
    ]);
    expect(forged.stdout).toContain('"sent": 2000');
    sent += 2000;
    expect(sent).toBeGreaterThanOrEqual(100_000);
    alive();
    expect(server.logs().filter((l) => l.msg?.startsWith('unhandled') || l.msg?.startsWith('uncaught'))).toEqual([]);
    expect(await realClient(NODE_MAC)).toMatch(/^10\.9\.0\.1\d\d$/);
    // Peak resident memory of the server over the whole file: bounded.
    const status = readFileSync(`/proc/${server.bg.pid}/status`, 'utf8');
    const peakKiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    process.stdout.write(
      `dhcp-hostile: ${sent} packets, server RSS ${(startRssKiB / 1024).toFixed(0)} MiB when ready, peak ${(peakKiB / 1024).toFixed(0)} MiB\n`,
    );
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB).toBeLessThan(400 * 1024);
  }, 600_000);

  it('a Pi serial named from another MAC is not that node: no reservation, no budget bypass', async () => {
    const result = await attack('pi-serial', 20, 68, 9);
    expect(result.sent).toBe(20);
    expect(await metric(/bootfarm_dhcp_identity_mismatch_total (\d+)/)).toBeGreaterThanOrEqual(20);
    // The Pi's reserved address was offered to nobody else, let alone bound to another MAC.
    expect((await leases()).filter((l) => l.ip === '10.9.0.50' && l.mac !== PI_MAC)).toEqual([]);
    expect(server.logs().filter((l) => l.ip === '10.9.0.50' && l.mac !== PI_MAC && l.msg?.startsWith('dhcp'))).toEqual([]);
    expect(await realClient(PI_MAC)).toBe('10.9.0.50');
  });

  it('a budget for all unknown machines together: random MACs are cut off, inventory nodes are not', async () => {
    await server.stop();
    server = await startBootfarm(
      lab,
      srv.ns,
      config({ unknownClientBurst: 5, unknownGlobalBurst: 20, unknownGlobalPerSecond: 1, unknownLeasePercent: 100 }),
      server.stateDir,
    );
    const result = await attack('discover-decline', 60, 68, 7);
    expect(result.offers).toBeLessThan(40);
    expect(await metric(/bootfarm_dhcp_rate_limited_total\{scope="global"\} (\d+)/)).toBeGreaterThan(0);
    expect(await realClient(NODE_MAC)).toMatch(/^10\.9\.0\.1\d\d$/);
  });
});
