// The Kubernetes join path end to end with real peers: busybox udhcpc takes the
// node's lease, curl plays the node agent from the node's namespace (and from
// another address), and the fake Kubernetes API (HTTPS, checks every request as
// the API server would) receives the bootstrap token Secrets bootfarm mints
// through @kubernetes/client-node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import type { Background } from '../../server/lab/proc.js';
import { waitUntil } from '../lib/wait.js';
import { AgentClient, shellVar } from '../lib/agent-client.js';
import { caCertHash } from '../../server/config/load.js';
import type { FakeNode, FakeRequestRecord, FakeSecret } from '../../server/lab/fake-kube-api.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const NODE_MAC = '52:54:00:00:00:01';
const URL_BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'api-token-for-join-tests-0123';
/** API reads need the token (api.protectReads is on by default). */
const API_READ = ['-H', `Authorization: Bearer ${API_TOKEN}`];

interface FakeState {
  secrets: FakeSecret[];
  nodes: FakeNode[];
}

describe('per-node bootstrap tokens and the join configuration', () => {
  let lab: NetLab;
  let srv: LabHost;
  let node: LabHost;
  let stranger: LabHost;
  let unknown: LabHost;
  let kubeApi: Background;
  let kubeDir: string;
  let kubeconfig: string;
  let caCertFile: string;
  let server: BootfarmProcess;
  const tokensSeen: string[] = [];
  /** Boot nonces and phone-home secrets handed out: never in a log line or a state file. */
  const credentialsSeen: string[] = [];
  let agent: AgentClient;

  const state = (): FakeState => JSON.parse(readFileSync(path.join(kubeDir, 'state.json'), 'utf8')) as FakeState;
  const kubeRequests = (): FakeRequestRecord[] =>
    kubeApi.lines.filter((l) => l.startsWith('{"record"')).map((l) => (JSON.parse(l) as { record: FakeRequestRecord }).record);
  const curl = (host: LabHost, url: string, extra: string[] = []) => agent.curl(host, url, extra);
  /** The node boots: its boot script, then its configuration for the script's nonce. */
  /** The node's timeline; empty when the API did not answer with one (polled by waitUntil). */
  const timeline = async (): Promise<Array<{ type: string; detail?: { why?: string; tokenId?: string } }>> => {
    const r = await curl(srv, `${URL_BASE}/api/v1/nodes/${NODE_MAC}/events`, API_READ);
    try {
      return (JSON.parse(r.body) as { events: Array<{ type: string; detail?: { why?: string; tokenId?: string } }> }).events;
    } catch {
      return [];
    }
  };

  const boot = async () => {
    const booted = await agent.boot(node, NODE_MAC);
    credentialsSeen.push(booted.nonce, booted.secret);
    return booted;
  };

  const config = (ttl: string) => ({
    server: { address: '10.9.0.1' },
    dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
    tftp: { root: mkdtempSync(path.join(tmpdir(), 'bootfarm-join-tftp-')) },
    http: { port: 8080 },
    profiles: [{ name: 'worker', match: { arch: 'amd64' }, labels: { rack: 'r1' }, taints: ['dedicated=batch:NoSchedule'] }],
    nodes: [
      { mac: NODE_MAC, hostname: 'node-1' },
      { mac: '52:54:00:00:00:02', hostname: 'node-2', ip: '10.9.0.12' },
    ],
    kubernetes: { apiServer: '10.9.0.1:6443', caCertFile, kubeconfig, tokenTtl: ttl, version: 'v1.31' },
    api: { token: API_TOKEN },
  });

  beforeAll(async () => {
    lab = await NetLab.create('jn');
    agent = new AgentClient(lab, URL_BASE);
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    node = await lab.addHost('node', { mac: NODE_MAC });
    stranger = await lab.addHost('other', { address: '10.9.0.50/24', mac: '52:54:00:00:00:99' });
    unknown = await lab.addHost('unk', { mac: '52:54:00:00:00:77' });
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
    kubeconfig = ready.kubeconfig;
    caCertFile = ready.caCertFile;
    server = await startBootfarm(lab, srv.ns, config('1h'));
    // The node and the unknown machine take leases as a booting machine does.
    for (const host of [node, unknown]) {
      const r = await lab.exec(host.ns, 'busybox', [
        'udhcpc',
        '-i',
        'eth0',
        '-n',
        '-q',
        '-s',
        SCRIPT,
        '-t',
        '5',
        '-T',
        '1',
        '-V',
        'PXEClient:Arch:00000:UNDI:002001',
      ]);
      expect(r.stderr).toContain('LEASE event=bound');
    }
  });

  afterAll(async () => {
    await server?.stop();
    await kubeApi?.stop('SIGTERM', 5000);
    await lab?.destroy();
  });

  let secret = '';
  let tokenId = '';

  it('mints one token for the node when its agent fetches its configuration with its boot nonce, and hands neither to another address', async () => {
    const other = await curl(stranger, `${URL_BASE}/agent/v1/${NODE_MAC}/config`);
    expect(other.status).toBe(403);
    const otherScript = await agent.bootScript(stranger, NODE_MAC);
    expect(otherScript.status).toBe(403);
    expect(otherScript.nonce).toBeUndefined();
    expect(state().secrets).toHaveLength(0);

    const script = await agent.bootScript(node, NODE_MAC);
    expect(script.status).toBe(200);
    expect(script.nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const nonce = script.nonce as string;
    credentialsSeen.push(nonce);
    // Fetched again before the agent used it (a retry): the same nonce.
    expect((await agent.bootScript(node, NODE_MAC)).nonce).toBe(nonce);
    // No nonce, no configuration; nothing minted yet.
    const bare = await agent.config(node, NODE_MAC);
    expect(bare.status).toBe(401);
    expect(bare.body).toContain('nonce');
    expect(state().secrets).toHaveLength(0);

    const own = await agent.config(node, NODE_MAC, { nonce });
    expect(own.status).toBe(200);
    secret = shellVar(own.body, 'BOOTFARM_SECRET') ?? '';
    credentialsSeen.push(secret);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(shellVar(own.body, 'BOOTFARM_JOIN')).toBe('true');
    expect(shellVar(own.body, 'HOSTNAME')).toBe('node-1');

    await waitUntil(() => state().secrets.length === 1, 10_000, 'the bootstrap token Secret');
    const [created] = state().secrets as [FakeSecret];
    tokenId = created.data['token-id'] as string;
    tokensSeen.push(`${tokenId}.${created.data['token-secret']}`, created.data['token-secret'] as string);
    expect(created).toMatchObject({
      name: `bootstrap-token-${tokenId}`,
      type: 'bootstrap.kubernetes.io/token',
      labels: { 'app.kubernetes.io/managed-by': 'bootfarm' },
    });
    expect(created.data).toMatchObject({
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
      'auth-extra-groups': 'system:bootstrappers:kubeadm:default-node-token',
      description: 'bootfarm: join token for node node-1 (52:54:00:00:00:01)',
    });
    const ttl = Date.parse(created.data.expiration as string) - Date.now();
    expect(ttl).toBeGreaterThan(55 * 60_000);
    expect(ttl).toBeLessThanOrEqual(60 * 60_000);
    // A later fetch in the same boot presents the secret: the same session, no second token.
    const again = await agent.config(node, NODE_MAC, { secret });
    expect(again.status).toBe(200);
    expect(shellVar(again.body, 'BOOTFARM_SECRET')).toBe(secret);
    expect(state().secrets).toHaveLength(1);
  });

  it('serves the join configuration once, to the node, with its own secret', async () => {
    const joinUrl = `${URL_BASE}/agent/v1/${NODE_MAC}/join`;
    // (A stranger presenting the node's own secret revokes the boot: test/integration/agent-identity.test.ts.)
    expect((await curl(stranger, joinUrl, ['-H', `Authorization: Bearer ${'z'.repeat(32)}`])).status).toBe(403);
    expect((await curl(node, joinUrl)).status).toBe(401);
    expect((await curl(node, joinUrl, ['-H', `Authorization: Bearer ${'x'.repeat(32)}`])).status).toBe(401);

    const first = await curl(node, joinUrl, ['-H', `Authorization: Bearer ${secret}`]);
    expect(first.status).toBe(200);
    const doc = parse(first.body) as {
      apiVersion: string;
      kind: string;
      discovery: { bootstrapToken: { apiServerEndpoint: string; token: string; caCertHashes: string[] }; tlsBootstrapToken: string };
      nodeRegistration: { name: string; taints: unknown[]; kubeletExtraArgs: Array<{ name: string; value: string }> };
    };
    expect(doc.apiVersion).toBe('kubeadm.k8s.io/v1beta4');
    expect(doc.kind).toBe('JoinConfiguration');
    expect(doc.discovery.bootstrapToken.token).toBe(tokensSeen[0]);
    expect(doc.discovery.bootstrapToken.token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(doc.discovery.bootstrapToken.apiServerEndpoint).toBe('10.9.0.1:6443');
    expect(doc.discovery.bootstrapToken.caCertHashes).toEqual([caCertHash(readFileSync(caCertFile, 'utf8'))]);
    expect(doc.nodeRegistration.name).toBe('node-1');
    expect(doc.nodeRegistration.taints).toEqual([{ key: 'dedicated', value: 'batch', effect: 'NoSchedule' }]);
    expect(doc.nodeRegistration.kubeletExtraArgs).toEqual([{ name: 'node-labels', value: 'kubernetes.io/arch=amd64,rack=r1' }]);

    const second = await curl(node, joinUrl, ['-H', `Authorization: Bearer ${secret}`]);
    expect(second.status).toBe(410);
    expect(second.body).not.toContain(tokensSeen[1]);
  });

  it('deletes the token once the node reports it joined, and records the timeline', async () => {
    const reportUrl = `${URL_BASE}/agent/v1/${NODE_MAC}/report`;
    const post = (host: LabHost, body: string, auth = secret) =>
      curl(host, reportUrl, ['-X', 'POST', '-H', 'content-type: application/json', '-H', `Authorization: Bearer ${auth}`, '--data', body]);
    expect((await post(node, '{"step":"preinit","status":"ok","detail":"3 entries"}')).status).toBe(204);
    const bad = await post(node, '{"step":"Bad Step","status":"maybe"}');
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('body.step: expected a step name');
    expect(bad.body).toContain('body.status: expected ok or failed');
    expect((await post(stranger, '{"step":"join","status":"ok"}', 'z'.repeat(32))).status).toBe(403);
    expect((await post(node, '{"step":"join","status":"ok"}', 'y'.repeat(32))).status).toBe(401);
    expect((await post(node, '{"step":"join","status":"ok","detail":"kubeadm join: This node has joined the cluster"}')).status).toBe(204);

    await waitUntil(() => state().secrets.length === 0, 10_000, 'the token Secret deleted');
    const deletes = kubeRequests().filter((r) => r.method === 'DELETE');
    expect(deletes).toEqual([
      {
        method: 'DELETE',
        path: `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${tokenId}`,
        status: 200,
        object: `secret bootstrap-token-${tokenId}`,
      },
    ]);

    const timeline = await curl(srv, `${URL_BASE}/api/v1/nodes/${NODE_MAC}/events`, API_READ);
    const types = (JSON.parse(timeline.body) as { events: Array<{ type: string }> }).events.map((e) => e.type);
    for (const t of [
      'dhcp.offer',
      'dhcp.ack',
      'boot.session',
      'token.minted',
      'join.served',
      'agent.preinit',
      'agent.join',
      'joined',
      'token.revoked',
    ])
      expect(types).toContain(t);
    expect(types.indexOf('joined')).toBeGreaterThan(types.indexOf('join.served'));

    const metrics = (await curl(srv, `${URL_BASE}/metrics`)).body;
    expect(metrics).toMatch(/bootfarm_bootstrap_tokens_minted_total\{outcome="ok"\} 1/);
    expect(metrics).toMatch(/bootfarm_boot_duration_seconds_count\{outcome="joined"\} 1/);
    expect(metrics).toMatch(/bootfarm_boots_in_flight 0/);
  });

  it('mints nothing for a machine that is in no inventory', async () => {
    const r = await curl(unknown, `${URL_BASE}/agent/v1/52:54:00:00:00:77/config`);
    expect(r.status).toBe(404);
    expect(kubeRequests().filter((q) => q.method === 'POST')).toHaveLength(1);
    const discovered = JSON.parse((await curl(srv, `${URL_BASE}/api/v1/discovered`, API_READ)).body) as {
      machines: Array<{ mac: string; arch: string }>;
    };
    // udhcpc sent "PXEClient:Arch:00000": a BIOS PXE client, taken for amd64.
    expect(discovered.machines).toEqual([expect.objectContaining({ mac: '52:54:00:00:00:77', arch: 'amd64', firmware: 'bios' })]);
  });

  it('deletes a token left over from before a restart when it starts again', async () => {
    // A new boot of the node (DISCOVER, boot script), its agent fetches its configuration: a token is minted.
    const r = await lab.exec(node.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    expect(r.stderr).toContain('LEASE event=bound');
    await boot();
    await waitUntil(() => state().secrets.length === 1, 10_000, 'a token for the new boot');
    const [left] = state().secrets as [FakeSecret];
    tokensSeen.push(`${left.data['token-id']}.${left.data['token-secret']}`, left.data['token-secret'] as string);
    // bootfarm stops before the node joins: the Secret is still in the cluster.
    await server.stop();
    expect(state().secrets.map((s) => s.name)).toEqual([left.name]);
    server = await startBootfarm(lab, srv.ns, config('1h'), server.stateDir);
    await waitUntil(() => state().secrets.length === 0, 10_000, 'the leftover token deleted at start');
    expect(
      kubeRequests()
        .filter((q) => q.method === 'DELETE')
        .map((q) => q.path),
    ).toContain(`/api/v1/namespaces/kube-system/secrets/${left.name}`);
    // The event follows the DELETE (one state write later): wait for it rather than race it.
    await waitUntil(
      async () =>
        (await timeline()).some(
          (e) => e.type === 'token.revoked' && e.detail?.why === 'bootfarm restarted' && e.detail.tokenId === left.data['token-id'],
        ),
      5_000,
      'token.revoked (bootfarm restarted) on the timeline',
      500,
    );
  });

  it('keeps a token it handed out across a restart: the node joins with it, then it is deleted', async () => {
    // A new boot; the node fetched its join configuration and is joining when bootfarm restarts.
    const r = await lab.exec(node.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    expect(r.stderr).toContain('LEASE event=bound');
    const cfg = (await boot()).config;
    const auth = ['-H', `Authorization: Bearer ${shellVar(cfg.body, 'BOOTFARM_SECRET')}`];
    const join = await curl(node, `${URL_BASE}/agent/v1/${NODE_MAC}/join`, auth);
    expect(join.status).toBe(200);
    const [held] = state().secrets as [FakeSecret];
    tokensSeen.push(`${held.data['token-id']}.${held.data['token-secret']}`, held.data['token-secret'] as string);
    expect((parse(join.body) as { discovery: { bootstrapToken: { token: string } } }).discovery.bootstrapToken.token).toBe(
      `${held.data['token-id']}.${held.data['token-secret']}`,
    );
    await server.stop();
    server = await startBootfarm(lab, srv.ns, config('1h'), server.stateDir);
    // Started, swept once (the sweeper runs at start): the token the node holds is still in the cluster.
    await new Promise((done) => setTimeout(done, 2000));
    expect(state().secrets.map((s) => s.name)).toEqual([held.name]);
    // The node joined with it and says so: now it goes, by its id (bootfarm no longer knows its secret).
    const report = await curl(node, `${URL_BASE}/agent/v1/${NODE_MAC}/report`, [
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      ...auth,
      '--data',
      '{"step":"join","status":"ok"}',
    ]);
    expect(report.status).toBe(204);
    await waitUntil(() => state().secrets.length === 0, 10_000, 'the token deleted after the join');
    const revokedWhy = async () =>
      (await timeline()).filter((e) => e.type === 'token.revoked' && e.detail?.tokenId === held.data['token-id']).map((e) => e.detail?.why);
    await waitUntil(async () => (await revokedWhy()).length > 0, 5_000, 'token.revoked on the timeline', 500);
    expect(await revokedWhy()).toEqual(['joined']);
  });

  it('deletes a token whose TTL passed', async () => {
    await server.stop();
    server = await startBootfarm(lab, srv.ns, config('3s'), server.stateDir);
    // The node's earlier boot ended (joined): a DISCOVER starts a new boot.
    const r = await lab.exec(node.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    expect(r.stderr).toContain('LEASE event=bound');
    const cfg = (await boot()).config;
    expect(cfg.status).toBe(200);
    expect(shellVar(cfg.body, 'BOOTFARM_SECRET')).not.toBe(secret);
    await waitUntil(() => state().secrets.length === 1, 10_000, 'a token for the new boot');
    const [fresh] = state().secrets as [FakeSecret];
    tokensSeen.push(`${fresh.data['token-id']}.${fresh.data['token-secret']}`, fresh.data['token-secret'] as string);
    // Nobody reports: the sweeper deletes it once its 3 s are over.
    await waitUntil(() => state().secrets.length === 0, 15_000, 'the expired token deleted');
    // The event follows the DELETE (one state write later): wait for it rather than race it.
    await waitUntil(
      async () => (await timeline()).some((e) => e.type === 'token.revoked' && e.detail?.why === 'token TTL passed'),
      5_000,
      'token.revoked (token TTL passed) on the timeline',
      500,
    );
    const late = await curl(node, `${URL_BASE}/agent/v1/${NODE_MAC}/join`, [
      '-H',
      `Authorization: Bearer ${shellVar(cfg.body, 'BOOTFARM_SECRET')}`,
    ]);
    expect(late.status).toBe(410);
  });

  it('no token text in any response, log line, boot file or state file; no boot nonce or secret in a log line or state file', async () => {
    const responses = agent.responses;
    // Boot files another client can fetch, over HTTP and TFTP.
    for (const file of [`boot/${NODE_MAC.replace(/:/g, '-')}.ipxe`, `grub/grub.cfg-01-${NODE_MAC.replace(/:/g, '-')}`]) {
      await curl(stranger, `${URL_BASE}/${file}`);
      const t = await lab.exec(stranger.ns, 'curl', ['-sS', `tftp://10.9.0.1/${file}`]);
      responses.push(t.stdout);
    }
    responses.push((await curl(srv, `${URL_BASE}/api/v1/nodes`, API_READ)).body, (await curl(srv, `${URL_BASE}/metrics`)).body);
    const logs = server.bg.lines.join('\n');
    const stateFiles = readdirSync(server.stateDir)
      .filter((f) => statSync(path.join(server.stateDir, f)).isFile())
      .map((f) => readFileSync(path.join(server.stateDir, f), 'utf8'))
      .join('\n');
    expect(tokensSeen).toHaveLength(8);
    const join = responses.filter((r) => r.includes('kind: JoinConfiguration'));
    // The first boot's and the one fetched before the restart.
    expect(join).toHaveLength(2);
    const elsewhere = responses.filter((r) => !r.includes('kind: JoinConfiguration'));
    expect(elsewhere.length).toBeGreaterThan(10);
    for (const token of tokensSeen) {
      for (const text of [...elsewhere, logs, stateFiles]) expect(text.includes(token)).toBe(false);
    }
    expect(credentialsSeen).toHaveLength(8);
    for (const credential of credentialsSeen) {
      for (const [what, text] of [
        ['log', logs],
        ['state file', stateFiles],
      ] as const)
        expect(text.includes(credential), `${what} holds ${credential}`).toBe(false);
    }
  });

  it('joins with a static kubernetes.token: the same token to every node, no Secret created or deleted', async () => {
    const staticToken = 'abcdef.0123456789abcdef';
    await server.stop();
    const requestsBefore = kubeRequests().length;
    // The fake API's kubeconfig is left out: with a static token bootfarm never calls the API.
    const kubernetes = { ...config('1h').kubernetes, kubeconfig: undefined, token: staticToken };
    server = await startBootfarm(lab, srv.ns, { ...config('1h'), kubernetes }, server.stateDir);
    const r = await lab.exec(node.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    expect(r.stderr).toContain('LEASE event=bound');
    const cfg = (await boot()).config;
    expect(cfg.status).toBe(200);
    const join = await curl(node, `${URL_BASE}/agent/v1/${NODE_MAC}/join`, [
      '-H',
      `Authorization: Bearer ${shellVar(cfg.body, 'BOOTFARM_SECRET')}`,
    ]);
    expect(join.status).toBe(200);
    expect((parse(join.body) as { discovery: { bootstrapToken: { token: string } } }).discovery.bootstrapToken.token).toBe(staticToken);
    expect(server.logs().find((l) => l.msg === 'bootstrap token minted')).toMatchObject({
      expiresAt: 'set by the cluster',
      minter: 'static',
    });
    // Nothing was asked of the Kubernetes API.
    expect(kubeRequests()).toHaveLength(requestsBefore);
  });
  it("the node's kernel comes back from another address of its own before it spends its nonce (a lease for another client id): the boot follows it", async () => {
    // The firmware's DHCP (udhcpc sends a client id, as iPXE does) and the script.
    const first = await lab.exec(node.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    const firstAddress = /LEASE event=bound ip=(\S+)/.exec(first.stderr)?.[1];
    const script = await agent.bootScript(node, NODE_MAC);
    expect(script.status).toBe(200);
    // The kernel's DHCP sends no client id (Linux ip=dhcp): bootfarm keeps leases per client id, so another address.
    const second = await lab.exec(node.ns, 'busybox', ['udhcpc', '-C', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    const secondAddress = /LEASE event=bound ip=(\S+)/.exec(second.stderr)?.[1];
    expect(secondAddress).toMatch(/^10\.9\.0\.1[0-5]\d$/);
    expect(secondAddress).not.toBe(firstAddress);
    const config = await agent.config(node, NODE_MAC, { nonce: script.nonce as string });
    expect(config.status, config.body).toBe(200);
    const join = await agent.join(node, NODE_MAC, shellVar(config.body, 'BOOTFARM_SECRET'));
    expect(join.status).toBe(200);
    const events = JSON.parse((await curl(srv, `${URL_BASE}/api/v1/nodes/${NODE_MAC}/events`, API_READ)).body) as {
      events: Array<{ type: string; detail?: Record<string, unknown> }>;
    };
    expect(events.events.filter((e) => e.type === 'boot.nonce-spent').at(-1)?.detail).toMatchObject({
      address: secondAddress,
      scriptAddress: firstAddress,
    });
  });
});
