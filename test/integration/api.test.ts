// The HTTP API and the `bootfarm node` verbs over it: OpenAPI document valid,
// unauthenticated changes (and, by default, reads) refused, schema errors naming the field, nodes added,
// changed, removed and kept across a restart, a discovered machine enrolled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const CLI = path.join(REPO_ROOT, 'dist/server/cli/main.js');
const BASE = 'http://10.9.0.1:8080';
const TOKEN = 'api-token-for-tests-0123456789';

describe('HTTP API and node CLI', () => {
  let lab: NetLab;
  let srv: LabHost;
  let machine: LabHost;
  let server: BootfarmProcess;
  const config = {
    server: { address: '10.9.0.1' },
    dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'] }] },
    http: { port: 8080 },
    api: { token: TOKEN },
    profiles: [{ name: 'worker', labels: { role: 'worker' } }],
    nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1' }],
  };

  const http = async (method: string, url: string, body?: unknown, token?: string) => {
    const args = ['-sS', '-X', method, '-o', '-', '-w', '\n%{http_code}', ...(token ? ['-H', `Authorization: Bearer ${token}`] : [])];
    if (body !== undefined) args.push('-H', 'content-type: application/json', '--data', JSON.stringify(body));
    const r = await lab.exec(srv.ns, 'curl', [...args, `${BASE}${url}`]);
    const lines = r.stdout.trimEnd().split('\n');
    const status = Number(lines.pop());
    const text = lines.join('\n');
    return { status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  const cli = (...args: string[]) => lab.exec(srv.ns, process.execPath, [CLI, 'node', ...args, '--server', BASE]);

  beforeAll(async () => {
    lab = await NetLab.create('ap');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    machine = await lab.addHost('m', { mac: '52:54:00:00:00:42' });
    server = await startBootfarm(lab, srv.ns, config);
  });
  afterAll(async () => {
    await server?.stop();
    await lab?.destroy();
  });

  it('publishes a valid OpenAPI document listing every API and agent route', async () => {
    const { status, json } = await http('GET', '/openapi.json');
    expect(status).toBe(200);
    const result = await new Validator().validate(json as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(Object.keys((json as { paths: object }).paths).sort()).toEqual([
      '/agent/v1/{mac}/config',
      '/agent/v1/{mac}/join',
      '/agent/v1/{mac}/report',
      '/api/v1/discovered',
      '/api/v1/discovered/{mac}/enrol',
      '/api/v1/events/stream',
      '/api/v1/leases',
      '/api/v1/nodes',
      '/api/v1/nodes/{mac}',
      '/api/v1/nodes/{mac}/approve',
      '/api/v1/nodes/{mac}/events',
      '/api/v1/profiles',
      '/healthz',
      '/metrics',
    ]);
  });

  it('refuses changes and, by default (api.protectReads), reads without the bearer token', async () => {
    const node = { mac: '52:54:00:00:00:05', hostname: 'api-1' };
    const none = await http('POST', '/api/v1/nodes', node);
    expect(none.status).toBe(401);
    expect(none.json?.message).toBe('changes need Authorization: Bearer <api token>');
    expect((await http('POST', '/api/v1/nodes', node, 'wrong-token-0123456789')).status).toBe(401);
    expect((await http('DELETE', '/api/v1/nodes/52:54:00:00:00:01')).status).toBe(401);
    const anonymousRead = await http('GET', '/api/v1/nodes');
    expect(anonymousRead.status).toBe(401);
    expect(anonymousRead.json?.message).toBe('reads need Authorization: Bearer <api token>');
    expect(JSON.stringify(anonymousRead.json)).not.toContain('52:54:00:00:00:01');
    expect((await http('GET', '/api/v1/leases')).status).toBe(401);
    expect((await http('GET', '/api/v1/nodes/52:54:00:00:00:01/events')).status).toBe(401);
    expect((await http('GET', '/api/v1/nodes', undefined, TOKEN)).status).toBe(200);
  });

  it('answers schema problems with 400 naming each field', async () => {
    const r = await http(
      'POST',
      '/api/v1/nodes',
      { mac: 'not-a-mac', hostname: 'bad_name', color: 'red', labels: { 'bad key!': 'x' } },
      TOKEN,
    );
    expect(r.status).toBe(400);
    expect(r.json?.problems).toEqual(
      expect.arrayContaining([
        'body.mac: expected a MAC address like "52:54:00:00:00:01" (quoted), got "not-a-mac"',
        'body.hostname: expected a host name: letters, digits and inner hyphens, at most 63, got "bad_name"',
        'body.color: unknown field; expected one of mac, hostname, arch, ip, piSerial, piModel, piBoot, profile, image, lts, labels, taints, join, kernelArgs, secureBoot, tpm',
        'body.labels.bad key!: invalid key; expected a label name like rack or example.com/rack',
      ]),
    );
    const path404 = await http('GET', '/api/v1/nodes/zz:zz', undefined, TOKEN);
    expect(path404.status).toBe(400);
    expect(path404.json?.problems).toEqual(['params.mac: expected a MAC address like "52:54:00:00:00:01" (quoted), got "zz:zz"']);
  });

  it("adds, shows, changes and removes nodes; the configuration file's nodes are read-only", async () => {
    const created = await http(
      'POST',
      '/api/v1/nodes',
      { mac: '52-54-00-00-00-05', hostname: 'api-1', profile: 'worker', ip: '10.9.0.20' },
      TOKEN,
    );
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      mac: '52:54:00:00:00:05',
      hostname: 'api-1',
      arch: 'amd64',
      profiles: ['worker'],
      labels: { role: 'worker' },
      origin: 'api',
    });
    expect((await http('POST', '/api/v1/nodes', { mac: '52:54:00:00:00:06', hostname: 'API-1' }, TOKEN)).json?.message).toBe(
      'hostname API-1 is taken by 52:54:00:00:00:05',
    );
    expect(
      (await http('POST', '/api/v1/nodes', { mac: '52:54:00:00:00:06', hostname: 'api-2', profile: 'nope' }, TOKEN)).json?.message,
    ).toBe('profile: expected one of worker, got "nope"');
    const changed = await http(
      'PUT',
      '/api/v1/nodes/52:54:00:00:00:05',
      { mac: '52:54:00:00:00:05', hostname: 'api-1', arch: 'arm64' },
      TOKEN,
    );
    expect(changed.status).toBe(200);
    expect(changed.json).toMatchObject({ arch: 'arm64', profiles: [] });
    const readOnly = await http('PUT', '/api/v1/nodes/52:54:00:00:00:01', { mac: '52:54:00:00:00:01', hostname: 'renamed' }, TOKEN);
    expect(readOnly.status).toBe(409);
    expect(String(readOnly.json?.message)).toMatch(/^node 52:54:00:00:00:01 is defined in .*bootfarm\.yaml; change it there$/);
    expect((await http('DELETE', '/api/v1/nodes/52:54:00:00:00:09', undefined, TOKEN)).status).toBe(404);

    // Kept across a restart (the store's journal), then removed.
    await server.stop();
    server = await startBootfarm(lab, srv.ns, config, server.stateDir);
    expect((await http('GET', '/api/v1/nodes/52:54:00:00:00:05', undefined, TOKEN)).json).toMatchObject({
      hostname: 'api-1',
      arch: 'arm64',
      origin: 'api',
    });
    expect((await http('DELETE', '/api/v1/nodes/52:54:00:00:00:05', undefined, TOKEN)).status).toBe(204);
    expect((await http('GET', '/api/v1/nodes/52:54:00:00:00:05', undefined, TOKEN)).status).toBe(404);
  });

  it('bootfarm node add | list | show | enrol | rm', async () => {
    const denied = await cli('add', '52:54:00:00:00:07', '--hostname', 'cli-1');
    expect(denied.code).toBe(2);
    expect(denied.stderr).toContain('HTTP 401');

    const added = await cli(
      'add',
      '52:54:00:00:00:07',
      '--hostname',
      'cli-1',
      '--label',
      'rack=r9',
      '--profile',
      'worker',
      '--token',
      TOKEN,
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe('added cli-1 (52:54:00:00:00:07), image bootfarm, profiles worker\n');

    // A machine nobody enrolled asks to network-boot: it is discovered, then enrolled by MAC.
    const lease = await lab.exec(machine.ns, 'busybox', [
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
      'PXEClient:Arch:00007:UNDI:003016',
    ]);
    expect(lease.stderr).toContain('LEASE event=bound');
    const list = await cli('list', '--token', TOKEN);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^52:54:00:00:00:07 +cli-1 +amd64 +bootfarm +worker +api /m);
    expect(list.stdout).toMatch(/^DISCOVERED MAC .*\n52:54:00:00:00:42 +amd64 +uefi /m);

    const enrolled = await cli('enrol', '52:54:00:00:00:42', '--hostname', 'found-1', '--token', TOKEN);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toBe('enrolled found-1 (52:54:00:00:00:42), arch amd64, image bootfarm\n');
    expect((await http('GET', '/api/v1/discovered', undefined, TOKEN)).json).toEqual({ machines: [] });

    const shown = await cli('show', '52:54:00:00:00:42', '--token', TOKEN);
    expect(shown.code, shown.stderr).toBe(0);
    const detail = JSON.parse(shown.stdout) as { hostname: string; lease?: { ip: string }; events: unknown[] };
    expect(detail.hostname).toBe('found-1');
    expect(detail.lease?.ip).toMatch(/^10\.9\.0\.1\d\d$/);

    const removed = await cli('rm', '52:54:00:00:00:07', '--token', TOKEN);
    expect(removed.stdout).toBe('removed 52:54:00:00:00:07\n');
    const gone = await cli('show', '52:54:00:00:00:07', '--token', TOKEN);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toBe('bootfarm: GET /nodes/52:54:00:00:00:07: HTTP 404: no node with MAC 52:54:00:00:00:07\n');
  });
});
