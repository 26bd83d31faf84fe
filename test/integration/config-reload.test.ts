// Live configuration reload with real peers: 50 tftp-hpa clients fetch a 4 MiB
// file while SIGHUP adds a node and changes a profile's lts entries; nodes fetch
// their boot script with curl from their own address (the template override in
// boot.templatesDir prints the node's lts variables into it). A broken file is
// refused with file:line:key over SIGHUP and over `bootfarm reload`, and the
// running configuration keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';

const SERVER = '10.9.0.1';
const STORM = 50;
const NODE_A = { mac: '52:54:00:00:00:0a', hostname: 'node-a', ip: '10.9.0.30' };
const NODE_B = { mac: '52:54:00:00:00:0b', hostname: 'node-b', ip: '10.9.0.31' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('configuration reload (SIGHUP, bootfarm reload)', () => {
  let lab: NetLab;
  let srv: LabHost;
  let storm: LabHost;
  let hostA: LabHost;
  let hostB: LabHost;
  let work: string;
  let server: BootfarmProcess;
  let big: Buffer;
  let base: Record<string, unknown>;
  let templates: string;
  const IPXE = '#!ipxe\n{{#each lts.vars}}#lts {{key}}={{value}}\n{{/each}}kernel {{image.kernelUrl}} {{kernelArgs}}\nboot\n';

  /** The running server's configuration with `change` applied, written where it reads it. */
  const writeConfig = (change: Record<string, unknown>): string => {
    const text = stringify({ ...base, ...change, server: { address: SERVER, stateDir: server.stateDir }, log: { level: 'debug' } });
    writeFileSync(server.configFile, text);
    return text;
  };
  const curl = async (host: LabHost, url: string) => {
    const r = await lab.exec(host.ns, 'curl', ['-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}', url]);
    const lines = r.stdout.trimEnd().split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  };
  /** The lts lines of the node's boot script, fetched as the node (from its address). */
  const ltsOf = async (host: LabHost, mac: string) => {
    const r = await curl(host, `http://${SERVER}:8080/boot/${mac.replace(/:/g, '-')}.ipxe`);
    return { status: r.status, lts: r.body.split('\n').filter((l) => l.startsWith('#lts ')), body: r.body };
  };
  const metric = async (pattern: RegExp): Promise<number> =>
    Number(pattern.exec((await curl(srv, `http://${SERVER}:8080/metrics`)).body)?.[1] ?? 0);
  const reloadCli = () => lab.exec(srv.ns, process.execPath, nodeArgs(CLI, ['reload', '--config', server.configFile]), 60_000);

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-reload-'));
    const root = path.join(work, 'root');
    templates = path.join(work, 'templates');
    mkdirSync(root);
    mkdirSync(templates);
    big = randomBytes(4 * 1024 * 1024);
    writeFileSync(path.join(root, 'big.bin'), big);
    // The stock iPXE script plus one "#lts KEY=value" line per variable: what the node would get.
    writeFileSync(path.join(templates, 'ipxe.hbs'), IPXE);
    lab = await NetLab.create('rl');
    srv = await lab.addHost('srv', { address: `${SERVER}/24` });
    storm = await lab.addHost('storm', { address: '10.9.0.2/24' });
    hostA = await lab.addHost('a', { address: `${NODE_A.ip}/24`, mac: NODE_A.mac });
    hostB = await lab.addHost('b', { address: `${NODE_B.ip}/24`, mac: NODE_B.mac });
    base = {
      // 50 transfers from one address: the storm host is one client.
      tftp: { root, maxTransfersPerClient: 64 },
      http: { port: 8080 },
      boot: { templatesDir: templates },
      profiles: [{ name: 'lab', match: { macPrefix: '52:54:00' }, lts: { SCREEN_07: 'xterm', LDM_THEME: 'old' } }],
      nodes: [NODE_A],
    };
    server = await startBootfarm(lab, srv.ns, { ...base, server: { address: SERVER } });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('SIGHUP during a 50-client TFTP storm adds a node and changes a profile; no transfer fails', async () => {
    expect((await ltsOf(hostA, NODE_A.mac)).lts).toEqual(['#lts HOSTNAME=node-a', '#lts LDM_THEME=old', '#lts SCREEN_07=xterm']);
    expect((await ltsOf(hostB, NODE_B.mac)).status).toBe(404);

    const out = path.join(work, 'storm');
    mkdirSync(out);
    const script = `i=0; while [ $i -lt ${STORM} ]; do (tftp -m binary ${SERVER} -c get big.bin ${out}/$i.bin; echo "rc $i $?") & i=$((i+1)); done; wait; echo storm-done`;
    const clients = lab.spawn(storm.ns, 'sh', ['-c', script], 'tftp-storm');
    await waitUntil(async () => (await metric(/^bootfarm_tftp_transfers_in_flight (\d+)/m)) >= STORM * 0.8, 60_000, 'the storm in flight');

    writeConfig({
      profiles: [{ name: 'lab', match: { macPrefix: '52:54:00' }, lts: { SCREEN_07: 'ldm', LDM_LANGUAGE: 'de_DE.UTF-8' } }],
      nodes: [NODE_A, NODE_B],
    });
    const since = server.bg.lines.length;
    server.bg.child.kill('SIGHUP');
    const reloaded = await server.waitForLog((l) => l.msg === 'configuration reloaded', 30_000, 'the reload', since);
    expect(reloaded).toMatchObject({ trigger: 'SIGHUP', nodes: { added: 1, removed: 0, changed: 0 } });
    // The reload landed in the storm, not after it.
    expect(await metric(/^bootfarm_tftp_transfers_in_flight (\d+)/m)).toBeGreaterThan(0);

    await clients.waitFor((l) => l === 'storm-done', 240_000, 'the storm to end');
    const codes = clients.lines.filter((l) => l.startsWith('rc '));
    expect(codes).toHaveLength(STORM);
    expect(codes.filter((l) => !l.endsWith(' 0'))).toEqual([]);
    for (let i = 0; i < STORM; i++) expect(sha(readFileSync(path.join(out, `${i}.bin`))), `client ${i}`).toBe(sha(big));
    expect(await metric(/^bootfarm_tftp_transfers_total\{outcome="complete"\} (\d+)/m)).toBe(STORM);
    expect(await metric(/^bootfarm_config_reloads_total\{outcome="applied"\} (\d+)/m)).toBe(1);

    // The next boot of each node: the added node is served, the changed profile's node has the new entries.
    expect(await ltsOf(hostB, NODE_B.mac)).toMatchObject({
      status: 200,
      lts: ['#lts HOSTNAME=node-b', '#lts LDM_LANGUAGE=de_DE.UTF-8', '#lts SCREEN_07=ldm'],
    });
    expect((await ltsOf(hostA, NODE_A.mac)).lts).toEqual(['#lts HOSTNAME=node-a', '#lts LDM_LANGUAGE=de_DE.UTF-8', '#lts SCREEN_07=ldm']);
  }, 360_000);

  it('refuses a broken file on SIGHUP and on `bootfarm reload` with file:line:key; the running configuration keeps serving', async () => {
    const text = writeConfig({ unknownNodes: 'sometimes', nodes: [NODE_A] });
    const line = text.split('\n').findIndex((l) => l.startsWith('unknownNodes:')) + 1;
    const where = `${server.configFile}:${line}:15: unknownNodes:`;

    const since = server.bg.lines.length;
    server.bg.child.kill('SIGHUP');
    const refused = await server.waitForLog((l) => l.msg.startsWith('configuration reload refused'), 30_000, 'the refusal', since);
    expect(refused.level).toBe(50);
    expect(refused.problems).toEqual([expect.stringContaining(where)]);

    const cli = await reloadCli();
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('reload refused; the running configuration keeps serving');
    expect(cli.stderr).toContain(where);
    expect(await metric(/^bootfarm_config_reloads_total\{outcome="refused"\} (\d+)/m)).toBe(2);

    // Still the previous configuration: node B (which the broken file drops) is served as before.
    expect(await ltsOf(hostB, NODE_B.mac)).toMatchObject({
      status: 200,
      lts: ['#lts HOSTNAME=node-b', '#lts LDM_LANGUAGE=de_DE.UTF-8', '#lts SCREEN_07=ldm'],
    });
  });

  it('`bootfarm reload` applies a fixed file and names the keys that wait for a restart', async () => {
    writeConfig({
      http: { port: 8081 },
      profiles: [{ name: 'lab', match: { macPrefix: '52:54:00' }, lts: { SCREEN_07: 'sway' } }],
      nodes: [NODE_A],
    });
    // A template that does not compile is refused like a broken file.
    const ipxe = path.join(templates, 'ipxe.hbs');
    writeFileSync(ipxe, `${IPXE}{{#each lts.vars}\n`);
    const broken = await reloadCli();
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain(`template ${ipxe}: Parse error`);
    // A template changed in boot.templatesDir is read again on reload.
    writeFileSync(ipxe, `${IPXE}#template-v2\n`);
    const cli = await reloadCli();
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout.trim()).toBe(`${server.configFile}: reloaded (nodes: 0 added, 1 removed, 0 changed; 1 profiles)`);
    expect(cli.stderr.trim()).toBe('bootfarm: changed but kept until a restart: http.port');
    const warned = await server.waitForLog(
      (l) => l.msg.startsWith('configuration reload: these keys changed'),
      30_000,
      'the restart warning',
    );
    expect(warned.keys).toEqual(['http.port']);

    // Served on the running port, with the new entries and template; the removed node is gone.
    const a = await ltsOf(hostA, NODE_A.mac);
    expect(a.lts).toEqual(['#lts HOSTNAME=node-a', '#lts SCREEN_07=sway']);
    expect(a.body.trimEnd().endsWith('#template-v2')).toBe(true);
    expect((await ltsOf(hostB, NODE_B.mac)).status).toBe(404);
    expect(await server.stop()).toBe(0);

    // With no server running, the command says so.
    const none = await reloadCli();
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toBe(
      `bootfarm: no bootfarm is serving with this state directory (nothing answers on ${server.stateDir}/control.sock)`,
    );
  });
});
