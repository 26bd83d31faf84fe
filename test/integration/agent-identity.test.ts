// Who gets a node's phone-home secret and join token in proxy mode, with real
// peers: stock dnsmasq is the site's DHCP server, busybox udhcpc is the node,
// an attacker namespace forges DHCP REQUESTs with the node's MAC and option 50 =
// its own address (test/lib/dhcp-attacker.ts claim-address), then asks the
// agent routes as curl. The fake Kubernetes API receives the minted tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import type { Background } from '../../server/lab/proc.js';
import { waitUntil } from '../lib/wait.js';
import type { FakeSecret } from '../../server/lab/fake-kube-api.js';
import { startSiteDnsmasq } from '../lib/site-dnsmasq.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const VICTIM_MAC = '52:54:00:00:00:01';
const PINNED_MAC = '52:54:00:00:00:02';
const URL_BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'api-token-for-identity-tests-01';

describe('proxy mode: a forged REQUEST does not hand out a node\'s secret or token', () => {
  let lab: NetLab;
  let srv: LabHost;
  let victim: LabHost;
  let nearAttacker: LabHost;
  let farAttacker: LabHost;
  let kubeApi: Background;
  let kubeDir: string;
  let server: BootfarmProcess;
  let victimAddress = '';
  let victimSecret = '';

  const curl = async (host: LabHost, url: string, extra: string[] = []) => {
    const r = await lab.exec(host.ns, 'curl', ['-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}', ...extra, url]);
    const lines = r.stdout.trimEnd().split('\n');
    const status = Number(lines.pop());
    return { status, body: lines.join('\n') };
  };
  const shellVar = (text: string, name: string) => new RegExp(`^${name}='([^']*)'$`, 'm').exec(text)?.[1];
  const secrets = (): FakeSecret[] => (JSON.parse(readFileSync(path.join(kubeDir, 'state.json'), 'utf8')) as { secrets: FakeSecret[] }).secrets;
  const metric = async (pattern: RegExp): Promise<number> => Number(pattern.exec((await curl(srv, `${URL_BASE}/metrics`)).body)?.[1] ?? 0);
  const claim = async (from: LabHost, mac: string, address: string): Promise<void> => {
    const bg = lab.spawn(from.ns, process.execPath, nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-attacker.ts'), ['claim-address', '10.9.0.1', '3', '1', '68', mac, address]), 'attacker-claim');
    const done = JSON.parse(await bg.waitFor((l) => l.startsWith('{"scenario"'), 30_000, 'the forged REQUESTs sent')) as { sent: number; sendErrors: number };
    expect(done).toMatchObject({ sent: 3, sendErrors: 0 });
  };
  /** Asks for the node's configuration, then for its join with whatever secret that gave: neither may answer. */
  const expectNothingFor = async (from: LabHost, mac: string): Promise<void> => {
    const config = await curl(from, `${URL_BASE}/agent/v1/${mac}/config`);
    expect(config.status).toBe(403);
    expect(config.body).not.toContain('BOOTFARM_SECRET');
    const stolen = shellVar(config.body, 'BOOTFARM_SECRET') ?? victimSecret;
    const join = await curl(from, `${URL_BASE}/agent/v1/${mac}/join`, ['-H', `Authorization: Bearer ${stolen}`]);
    expect(join.status).toBe(403);
    expect(join.body).not.toContain('JoinConfiguration');
  };

  beforeAll(async () => {
    lab = await NetLab.create('ai');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    victim = await lab.addHost('node', { mac: VICTIM_MAC });
    nearAttacker = await lab.addHost('near', { address: '10.9.0.40/24', mac: '52:54:00:00:00:66' });
    // Off the served network, on the same segment: routes both ways so the HTTP answer reaches it.
    farAttacker = await lab.addHost('far', { address: '10.77.0.5/24', mac: '52:54:00:00:00:67' });
    // A route for the limited broadcast the forged REQUESTs go to.
    for (const host of [nearAttacker, farAttacker]) await lab.ip(host.ns, 'route', 'add', 'default', 'dev', 'eth0');
    await lab.ip(srv.ns, 'route', 'add', '10.77.0.0/24', 'dev', 'eth0');

    await startSiteDnsmasq(lab);

    kubeDir = mkdtempSync(path.join(tmpdir(), 'bootfarm-kube-'));
    kubeApi = lab.spawn(srv.ns, process.execPath, nodeArgs(path.join(REPO_ROOT, 'server/lab/fake-kube-api-main.ts'), ['--dir', kubeDir, '--host', '10.9.0.1', '--port', '6443']), 'fake-kube-api');
    const ready = JSON.parse(await kubeApi.waitFor((l) => l.includes('"ready":true'), 30_000, 'fake Kubernetes API ready')) as { kubeconfig: string; caCertFile: string };

    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      // No dhcp.subnets: the served network comes from eth0's 10.9.0.1/24.
      dhcp: { mode: 'proxy', interface: 'eth0' },
      tftp: { root: mkdtempSync(path.join(tmpdir(), 'bootfarm-ai-tftp-')) },
      http: { port: 8080 },
      nodes: [
        { mac: VICTIM_MAC, hostname: 'node-1' },
        { mac: PINNED_MAC, hostname: 'node-2', ip: '10.9.0.12' },
      ],
      kubernetes: { apiServer: '10.9.0.1:6443', caCertFile: ready.caCertFile, kubeconfig: ready.kubeconfig, tokenTtl: '1h', version: 'v1.31' },
      api: { token: API_TOKEN },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await kubeApi?.stop('SIGTERM', 5000);
    await lab?.destroy();
  });

  it('an address off the served network is not recorded for the node: no secret for its sender', async () => {
    await claim(farAttacker, VICTIM_MAC, '10.77.0.5');
    await expectNothingFor(farAttacker, VICTIM_MAC);
    await server.waitForLog((l) => l.msg?.startsWith('dhcp request asserts an address') === true && l.claimed === '10.77.0.5', 10_000, 'the claim refused');
    expect(await metric(/bootfarm_dhcp_observed_address_refused_total\{reason="off-subnet"\} (\d+)/)).toBeGreaterThanOrEqual(3);
    expect(secrets()).toHaveLength(0);
  });

  it('the node, addressed by dnsmasq, gets its configuration', async () => {
    // As the booted node's OS asks (no PXE vendor class): only dnsmasq offers, bootfarm sees the REQUEST.
    const r = await lab.exec(victim.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    victimAddress = /LEASE event=bound ip=(\S+)/.exec(r.stderr)?.[1] ?? '';
    expect(victimAddress, r.stderr + r.stdout).toMatch(/^10\.9\.0\.(5\d|[6-9]\d)$/);
    const own = await curl(victim, `${URL_BASE}/agent/v1/${VICTIM_MAC}/config`);
    expect(own.status).toBe(200);
    victimSecret = shellVar(own.body, 'BOOTFARM_SECRET') ?? '';
    expect(victimSecret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await waitUntil(() => secrets().length === 1, 10_000, 'the node\'s bootstrap token Secret');
  });

  it('an address on the served network claimed after the node\'s boot opened does not move the boot: refused and recorded', async () => {
    await claim(nearAttacker, VICTIM_MAC, '10.9.0.40');
    await expectNothingFor(nearAttacker, VICTIM_MAC);
    expect(await metric(/bootfarm_agent_address_mismatch_total (\d+)/)).toBeGreaterThanOrEqual(2);
    const timeline = await curl(srv, `${URL_BASE}/api/v1/nodes/${VICTIM_MAC}/events`, ['-H', `Authorization: Bearer ${API_TOKEN}`]);
    const alarms = (JSON.parse(timeline.body) as { events: Array<{ type: string; detail?: Record<string, unknown> }> }).events.filter((e) => e.type === 'security.address-mismatch');
    expect(alarms[0]?.detail).toMatchObject({ boundTo: victimAddress, from: '10.9.0.40' });
  });

  it('the node still gets its configuration and, once, its join', async () => {
    const again = await curl(victim, `${URL_BASE}/agent/v1/${VICTIM_MAC}/config`);
    expect(again.status).toBe(200);
    expect(shellVar(again.body, 'BOOTFARM_SECRET')).toBe(victimSecret);
    const join = await curl(victim, `${URL_BASE}/agent/v1/${VICTIM_MAC}/join`, ['-H', `Authorization: Bearer ${victimSecret}`]);
    expect(join.status).toBe(200);
    const [minted] = secrets() as [FakeSecret];
    expect((parse(join.body) as { discovery: { bootstrapToken: { token: string } } }).discovery.bootstrapToken.token).toBe(`${minted.data['token-id']}.${minted.data['token-secret']}`);
  });

  it('a node with a configured address answers only there, whatever a REQUEST claims', async () => {
    await claim(nearAttacker, PINNED_MAC, '10.9.0.40');
    await expectNothingFor(nearAttacker, PINNED_MAC);
    expect(secrets()).toHaveLength(1);
  });
});
