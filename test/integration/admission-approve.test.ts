// kubernetes.admission: approve with real peers: busybox udhcpc takes the node's
// lease, curl plays its firmware and agent (test/lib/agent-client.ts), the
// operator approves with the real CLI (`bootfarm node approve`), and the fake
// Kubernetes API (HTTPS, checks each request as the API server would) shows
// when a bootstrap token exists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import type { Background } from '../../server/lab/proc.js';
import { waitUntil } from '../lib/wait.js';
import type { FakeSecret } from '../../server/lab/fake-kube-api.js';
import { AgentClient } from '../lib/agent-client.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const NODE_MAC = '52:54:00:00:00:01';
const OTHER_MAC = '52:54:00:00:00:02';
const BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'api-token-for-approval-tests-01';

describe('kubernetes.admission: approve: a boot gets its join token only once an operator approved it', () => {
  let lab: NetLab;
  let srv: LabHost;
  let node: LabHost;
  let other: LabHost;
  let kubeApi: Background;
  let kubeDir: string;
  let server: BootfarmProcess;
  let agent: AgentClient;
  let config: Record<string, unknown>;
  let secret = '';
  let otherSecret = '';

  const secrets = (): FakeSecret[] =>
    (JSON.parse(readFileSync(path.join(kubeDir, 'state.json'), 'utf8')) as { secrets: FakeSecret[] }).secrets;
  const cli = (...args: string[]) =>
    lab.exec(srv.ns, process.execPath, nodeArgs(CLI, ['node', ...args, '--server', BASE, '--token', API_TOKEN]));
  const lease = async (host: LabHost) => {
    const r = await lab.exec(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1']);
    expect(r.stderr).toContain('LEASE event=bound');
  };

  beforeAll(async () => {
    lab = await NetLab.create('ap');
    agent = new AgentClient(lab, BASE);
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    node = await lab.addHost('node', { mac: NODE_MAC });
    other = await lab.addHost('other', { mac: OTHER_MAC });
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
    config = {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: mkdtempSync(path.join(tmpdir(), 'bootfarm-ap-tftp-')) },
      http: { port: 8080 },
      nodes: [
        { mac: NODE_MAC, hostname: 'node-1' },
        { mac: OTHER_MAC, hostname: 'node-2' },
      ],
      kubernetes: {
        apiServer: '10.9.0.1:6443',
        caCertFile: ready.caCertFile,
        kubeconfig: ready.kubeconfig,
        tokenTtl: '1h',
        version: 'v1.31',
        admission: 'approve',
      },
      api: { token: API_TOKEN },
    };
    server = await startBootfarm(lab, srv.ns, config);
    await lease(node);
    await lease(other);
  });

  afterAll(async () => {
    await server?.stop();
    await kubeApi?.stop('SIGTERM', 5000);
    await lab?.destroy();
  });

  it('a booting node waits: its join answers 423 with the reason, no token exists, node list shows it pending', async () => {
    const booted = await agent.boot(node, NODE_MAC);
    secret = booted.secret;
    expect(booted.config.body).toContain("BOOTFARM_ADMISSION='approve'");
    otherSecret = (await agent.boot(other, OTHER_MAC)).secret;
    for (let i = 0; i < 2; i++) {
      const join = await agent.join(node, NODE_MAC, secret);
      expect(join.status).toBe(423);
      expect(join.body).toContain('bootfarm node approve node-1');
      expect(join.body).not.toContain('JoinConfiguration');
    }
    expect(secrets()).toHaveLength(0);
    const list = await cli('list');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/52:54:00:00:00:01\s+node-1\s.*booting \(approval pending\)/);
    const events = JSON.parse(
      (await agent.curl(srv, `${BASE}/api/v1/nodes/${NODE_MAC}/events`, ['-H', `Authorization: Bearer ${API_TOKEN}`])).body,
    ) as { events: Array<{ type: string }> };
    expect(events.events.map((e) => e.type)).toContain('boot.pending-admission');
  });

  it('approval survives a restart; approved through the CLI, the node gets its token and joins; the unapproved one still gets nothing', async () => {
    // Approved before a restart: the approval is kept in the state.
    const approved = await cli('approve', 'node-1');
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain('approved the boot of node-1 (52:54:00:00:00:01)');
    await server.stop();
    server = await startBootfarm(lab, srv.ns, config, server.stateDir);
    const join = await agent.join(node, NODE_MAC, secret);
    expect(join.status).toBe(200);
    await waitUntil(() => secrets().length === 1, 10_000, "the approved node's token");
    const [minted] = secrets() as [FakeSecret];
    expect((parse(join.body) as { discovery: { bootstrapToken: { token: string } } }).discovery.bootstrapToken.token).toBe(
      `${minted.data['token-id']}.${minted.data['token-secret']}`,
    );
    expect(minted.data.description).toContain('node-1');
    // node-2 was never approved.
    const unapproved = await agent.join(other, OTHER_MAC, otherSecret);
    expect(unapproved.status).toBe(423);
    expect(secrets()).toHaveLength(1);
  });

  it('approving a node with no boot in flight is refused with the reason', async () => {
    await agent.curl(node, `${BASE}/agent/v1/${NODE_MAC}/report`, [
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-H',
      `Authorization: Bearer ${secret}`,
      '--data',
      '{"step":"join","status":"ok"}',
    ]);
    const r = await cli('approve', NODE_MAC);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('node-1 has no boot waiting for approval (its last boot is joined)');
  });
});
