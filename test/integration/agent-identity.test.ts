// Who gets a node's boot nonce, phone-home secret and join token in proxy mode,
// with real peers: stock dnsmasq is the site's DHCP server, busybox udhcpc is
// the node and curl its firmware and agent (test/lib/agent-client.ts); an
// attacker namespace forges DHCP REQUESTs with the node's MAC and option 50 = its
// own address (test/lib/dhcp-attacker.ts claim-address), then asks for the boot
// script and the agent routes, replays what it sniffed. The fake Kubernetes API
// receives the minted tokens and their deletion.
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
import { AgentClient } from '../lib/agent-client.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const VICTIM_MAC = '52:54:00:00:00:01';
const PINNED_MAC = '52:54:00:00:00:02';
const URL_BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'api-token-for-identity-tests-01';

describe("proxy mode: a forged REQUEST or a stolen credential does not hand out a node's secret or token", () => {
  let lab: NetLab;
  let srv: LabHost;
  let victim: LabHost;
  let nearAttacker: LabHost;
  let farAttacker: LabHost;
  let kubeApi: Background;
  let kubeDir: string;
  let server: BootfarmProcess;
  let agent: AgentClient;
  let victimAddress = '';
  let victimSecret = '';
  let victimNonce = '';

  const secrets = (): FakeSecret[] =>
    (JSON.parse(readFileSync(path.join(kubeDir, 'state.json'), 'utf8')) as { secrets: FakeSecret[] }).secrets;
  const metric = async (pattern: RegExp): Promise<number> =>
    Number(pattern.exec((await agent.curl(srv, `${URL_BASE}/metrics`)).body)?.[1] ?? 0);
  const events = async (mac: string): Promise<Array<{ type: string; detail?: Record<string, unknown> }>> =>
    (
      JSON.parse((await agent.curl(srv, `${URL_BASE}/api/v1/nodes/${mac}/events`, ['-H', `Authorization: Bearer ${API_TOKEN}`])).body) as {
        events: Array<{ type: string; detail?: Record<string, unknown> }>;
      }
    ).events;
  const claim = async (from: LabHost, mac: string, address: string): Promise<void> => {
    const bg = lab.spawn(
      from.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'test/lib/dhcp-attacker.ts'), ['claim-address', '10.9.0.1', '3', '1', '68', mac, address]),
      'attacker-claim',
    );
    const done = JSON.parse(await bg.waitFor((l) => l.startsWith('{"scenario"'), 30_000, 'the forged REQUESTs sent')) as {
      sent: number;
      sendErrors: number;
    };
    expect(done).toMatchObject({ sent: 3, sendErrors: 0 });
  };
  /** Asks for the node's boot script and configuration without any credential: neither may answer. */
  const expectNothingFor = async (from: LabHost, mac: string): Promise<void> => {
    const script = await agent.bootScript(from, mac);
    expect(script.status).toBe(403);
    expect(script.nonce).toBeUndefined();
    const config = await agent.config(from, mac);
    expect(config.status).toBe(403);
    expect(config.body).not.toContain('BOOTFARM_SECRET');
    const join = await agent.join(from, mac, 'z'.repeat(32));
    expect(join.status).toBe(403);
    expect(join.body).not.toContain('JoinConfiguration');
  };
  /** The node boots as in the lab: DHCP from dnsmasq (bootfarm sees the REQUEST), boot script, configuration. */
  const victimBoots = async (): Promise<void> => {
    const r = await lab.exec(victim.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    victimAddress = /LEASE event=bound ip=(\S+)/.exec(r.stderr)?.[1] ?? '';
    expect(victimAddress, r.stderr + r.stdout).toMatch(/^10\.9\.0\.(5\d|[6-9]\d)$/);
    const booted = await agent.boot(victim, VICTIM_MAC);
    victimSecret = booted.secret;
    victimNonce = booted.nonce;
  };
  /** The node's current boot was revoked for `reason`: alarm on its timeline, its token deleted. */
  const expectRevoked = async (reason: string): Promise<void> => {
    await waitUntil(() => secrets().length === 0, 10_000, "the revoked boot's token deleted");
    const timeline = await events(VICTIM_MAC);
    expect(timeline.map((e) => e.type)).toContain(`security.${reason}`);
    expect(timeline.at(-1)?.type === 'token.revoked' || timeline.some((e) => e.type === 'revoked')).toBe(true);
    expect(await metric(new RegExp(`bootfarm_agent_credential_refused_total\\{reason="${reason}"\\} (\\d+)`))).toBeGreaterThanOrEqual(1);
    // No join for the boot's secret from anywhere (410, or 403 where a forged REQUEST moved the node's address).
    expect([403, 410]).toContain((await agent.join(victim, VICTIM_MAC, victimSecret)).status);
  };
  /** The node's next boot works: a fresh nonce and secret, and its join. */
  const victimStillJoins = async (): Promise<void> => {
    const before = { nonce: victimNonce, secret: victimSecret };
    await victimBoots();
    expect(victimNonce).not.toBe(before.nonce);
    expect(victimSecret).not.toBe(before.secret);
    await waitUntil(() => secrets().length === 1, 10_000, "the new boot's token");
    const join = await agent.join(victim, VICTIM_MAC, victimSecret);
    expect(join.status).toBe(200);
    const [minted] = secrets() as [FakeSecret];
    expect((parse(join.body) as { discovery: { bootstrapToken: { token: string } } }).discovery.bootstrapToken.token).toBe(
      `${minted.data['token-id']}.${minted.data['token-secret']}`,
    );
  };

  beforeAll(async () => {
    lab = await NetLab.create('ai');
    agent = new AgentClient(lab, URL_BASE);
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
    kubeApi = lab.spawn(
      srv.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'server/lab/fake-kube-api-main.ts'), ['--dir', kubeDir, '--host', '10.9.0.1', '--port', '6443']),
      'fake-kube-api',
    );
    const ready = JSON.parse(await kubeApi.waitFor((l) => l.includes('"ready":true'), 30_000, 'fake Kubernetes API ready')) as {
      kubeconfig: string;
      caCertFile: string;
    };

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
      kubernetes: {
        apiServer: '10.9.0.1:6443',
        caCertFile: ready.caCertFile,
        kubeconfig: ready.kubeconfig,
        tokenTtl: '1h',
        version: 'v1.31',
      },
      api: { token: API_TOKEN },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await kubeApi?.stop('SIGTERM', 5000);
    await lab?.destroy();
  });

  it('an address off the served network is not recorded for the node: no boot script, no secret for its sender', async () => {
    await claim(farAttacker, VICTIM_MAC, '10.77.0.5');
    await expectNothingFor(farAttacker, VICTIM_MAC);
    await server.waitForLog(
      (l) => l.msg?.startsWith('dhcp request asserts an address') === true && l.claimed === '10.77.0.5',
      10_000,
      'the claim refused',
    );
    expect(await metric(/bootfarm_dhcp_observed_address_refused_total\{reason="off-subnet"\} (\d+)/)).toBeGreaterThanOrEqual(3);
    expect(secrets()).toHaveLength(0);
  });

  it('the node, addressed by dnsmasq, gets its boot script with a nonce, and its configuration for the nonce', async () => {
    await victimBoots();
    expect(victimNonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(victimSecret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await waitUntil(() => secrets().length === 1, 10_000, "the node's bootstrap token Secret");
  });

  it("an address on the served network claimed during the node's boot does not move the boot: script and routes refused, recorded", async () => {
    await claim(nearAttacker, VICTIM_MAC, '10.9.0.40');
    await expectNothingFor(nearAttacker, VICTIM_MAC);
    expect(await metric(/bootfarm_agent_address_mismatch_total (\d+)/)).toBeGreaterThanOrEqual(2);
    const alarms = (await events(VICTIM_MAC)).filter(
      (e) => e.type === 'security.address-mismatch' || e.type === 'security.from-another-address',
    );
    expect(alarms[0]?.detail).toMatchObject({ boundTo: victimAddress, from: '10.9.0.40' });
    // Asking without a credential ends nothing: the node's boot goes on.
    expect(secrets()).toHaveLength(1);
    expect((await agent.config(victim, VICTIM_MAC, { secret: victimSecret })).status).toBe(200);
  });

  it("the node's secret presented from another address revokes the boot: no join, token deleted, alarm; the node's next boot joins", async () => {
    const stolen = await agent.join(nearAttacker, VICTIM_MAC, victimSecret);
    expect(stolen.status).toBe(403);
    expect(stolen.body).not.toContain('JoinConfiguration');
    await expectRevoked('from-another-address');
    await victimStillJoins();
  });

  it("a sniffed nonce replayed after the node used it (even from the node's own address) revokes the boot; the node's next boot joins", async () => {
    // From another address: refused and revoked as a stolen credential.
    const elsewhere = await agent.config(nearAttacker, VICTIM_MAC, { nonce: victimNonce });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body).not.toContain('BOOTFARM_SECRET');
    await expectRevoked('from-another-address');
    await victimStillJoins();
    // From the node's address (an attacker that took it over): a second use.
    const replay = await agent.config(victim, VICTIM_MAC, { nonce: victimNonce });
    expect(replay.status).toBe(401);
    expect(replay.body).not.toContain('BOOTFARM_SECRET');
    await expectRevoked('nonce-replay');
    await victimStillJoins();
  });

  it("a wrong nonce from the node's address revokes the boot before any secret is handed out", async () => {
    await lab.exec(victim.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    const script = await agent.bootScript(victim, VICTIM_MAC);
    expect(script.status).toBe(200);
    const wrong = await agent.config(victim, VICTIM_MAC, { nonce: 'x'.repeat(32) });
    expect(wrong.status).toBe(401);
    // The script's own nonce is worth nothing now.
    const late = await agent.config(victim, VICTIM_MAC, { nonce: script.nonce as string });
    expect(late.status).toBe(401);
    expect(late.body).not.toContain('BOOTFARM_SECRET');
    expect((await events(VICTIM_MAC)).map((e) => e.type)).toContain('security.nonce-mismatch');
    await victimStillJoins();
  });

  it("a nonce replayed after the node's boot ended gets nothing and is recorded, from another address or the node's own", async () => {
    const done = await agent.curl(victim, `${URL_BASE}/agent/v1/${VICTIM_MAC}/report`, [
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-H',
      `Authorization: Bearer ${victimSecret}`,
      '--data',
      '{"step":"join","status":"ok"}',
    ]);
    expect(done.status).toBe(204);
    const before = (await events(VICTIM_MAC)).length;
    for (const from of [nearAttacker, victim]) {
      const replay = await agent.config(from, VICTIM_MAC, { nonce: victimNonce });
      expect([401, 403]).toContain(replay.status);
      expect(replay.body).not.toContain('BOOTFARM_SECRET');
    }
    const alarms = (await events(VICTIM_MAC)).slice(before).map((e) => e.type);
    expect(alarms).toEqual(expect.arrayContaining(['security.from-another-address', 'security.nonce-replay']));
  });

  it('a node with a configured address answers only there, whatever a REQUEST claims', async () => {
    await claim(nearAttacker, PINNED_MAC, '10.9.0.40');
    await expectNothingFor(nearAttacker, PINNED_MAC);
  });
});
