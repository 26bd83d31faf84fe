// The node agent (imagebuild/agent) against a small bootfarm stand-in serving the
// agent endpoints of docs/node-contract.md §3. The agent runs on the host with
// its node paths (/etc, /proc/cmdline, /proc/mounts, /run/bootfarm) moved into a
// temp dir; kubeadm is a recording fake on PATH.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const AGENT = path.resolve('imagebuild/agent/agent');
const MAC = '52:54:00:12:34:56';
const SECRET = 's3cr3t-boot-secret';
const JOIN_YAML = 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n';

interface Report {
  step: string;
  status: string;
  detail: string;
  auth: string;
}

let dir: string;
let server: Server;
let port: number;
let reports: Report[];
let config: Record<string, string>;
let joinRequests: number;
/** The x-bootfarm-nonce header of each configuration fetch. */
let configFetches: string[];
/** How many more join requests bootfarm answers 423 (waiting for admission). */
let admissionPending: number;
let joinServed: boolean;
/** How many more requests (any endpoint) bootfarm answers 503, as a proxy in front of a restarting server would. */
let unavailable: number;
const NONCE = 'n0nce-from-the-kernel-command-line_0123456';

function quote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bf-agent-'));
  for (const d of ['etc', 'run', 'bin']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  writeFileSync(path.join(dir, 'etc/fstab'), '');
  writeFileSync(path.join(dir, 'hostname'), 'bootfarm\n');
  // What the initramfs leaves behind on a node booted from NBD.
  writeFileSync(path.join(dir, 'run/source'), 'nbd\n');
  writeFileSync(path.join(dir, 'run/export'), 'lab/amd64\n');
  writeFileSync(
    path.join(dir, 'mounts'),
    [
      '/dev/nbd0 /run/bootfarm/lower squashfs ro,relatime,errors=continue 0 0',
      'tmpfs /run/bootfarm/rw tmpfs rw,relatime,mode=755 0 0',
      'overlay / overlay rw,relatime,lowerdir=/run/bootfarm/lower,upperdir=/run/bootfarm/rw/upper,workdir=/run/bootfarm/rw/work 0 0',
      'tmpfs /var/lib/scratch tmpfs rw,relatime 0 0',
      '',
    ].join('\n'),
  );
  // A fake kubeadm: records its arguments, the config it was given and that file's mode.
  writeFileSync(
    path.join(dir, 'bin/kubeadm'),
    `#!/bin/sh\necho "$@" > ${dir}/kubeadm-args\ncp "$3" ${dir}/kubeadm-config\nstat -c %a "$3" > ${dir}/kubeadm-mode\necho "This node has joined the cluster"\n`,
  );
  chmodSync(path.join(dir, 'bin/kubeadm'), 0o755);
  reports = [];
  joinRequests = 0;
  configFetches = [];
  admissionPending = 0;
  joinServed = false;
  unavailable = 0;
  config = {
    HOSTNAME: 'node-7',
    PREINIT_01: `echo preinit-ran > ${dir}/preinit-proof`,
    PREINIT_02: `echo "second in order" >> ${dir}/order`,
    FSTAB_01: 'tmpfs /var/lib/scratch tmpfs defaults 0 0',
    RCFILE_01: `echo rc-1 >> ${dir}/order`,
    RCFILE_2: `echo rc-2 >> ${dir}/order`,
    RCFILE_10: `echo rc-10 >> ${dir}/order; echo "it's quoted"`,
    LTS_PREINIT_KEYS: 'PREINIT_01 PREINIT_02',
    LTS_FSTAB_KEYS: 'FSTAB_01',
    LTS_RCFILE_KEYS: 'RCFILE_01 RCFILE_2 RCFILE_10',
    SYSCTL_KEYS: '',
    BOOTFARM_BOOT_ID: 'boot-1',
    BOOTFARM_SECRET: SECRET,
    BOOTFARM_JOIN: 'true',
    BOOTFARM_NODE: 'node-7',
  };
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const base = `/agent/v1/${MAC}`;
      if (unavailable > 0) {
        unavailable--;
        res.writeHead(503);
        res.end();
        return;
      }
      if (req.method === 'GET' && req.url === `${base}/config`) {
        // As bootfarm: the boot's nonce once, and 401 for anything else.
        configFetches.push(String(req.headers['x-bootfarm-nonce']));
        if (req.headers['x-bootfarm-nonce'] !== NONCE || configFetches.length > 1) {
          res.writeHead(401);
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(
          Object.entries(config)
            .map(([k, v]) => `${k}=${quote(v)}\n`)
            .join(''),
        );
      } else if (req.method === 'GET' && req.url === `${base}/join`) {
        joinRequests++;
        if (req.headers.authorization !== `Bearer ${SECRET}`) {
          res.writeHead(401);
          res.end();
          return;
        }
        if (admissionPending > 0) {
          admissionPending--;
          res.writeHead(423, { 'content-type': 'application/json', 'retry-after': '5' });
          res.end(JSON.stringify({ error: 'AgentError', message: 'waiting for an operator: bootfarm node approve node-7' }));
          return;
        }
        if (joinServed) {
          res.writeHead(410);
          res.end();
          return;
        }
        joinServed = true;
        res.writeHead(200, { 'content-type': 'application/yaml' });
        res.end(JOIN_YAML);
      } else if (req.method === 'POST' && req.url === `${base}/report`) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<Report, 'auth'>;
        reports.push({ ...body, auth: req.headers.authorization ?? '' });
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  writeFileSync(
    path.join(dir, 'cmdline'),
    `ip=dhcp bootfarm.server=127.0.0.1 bootfarm.http=127.0.0.1:${port} bootfarm.nbd=127.0.0.1:10809 bootfarm.export=lab/amd64 bootfarm.node=node-7 bootfarm.mac=52-54-00-12-34-56 bootfarm.nonce=${NONCE}\n`,
  );
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function agent(phase: 'preinit' | 'boot', serverWait = '60') {
  return execa('sh', [AGENT, phase], {
    reject: false,
    all: true,
    env: {
      PATH: `${dir}/bin:${process.env.PATH ?? '/usr/bin:/bin'}`,
      BF_LIB: path.dirname(AGENT),
      BF_RUN: path.join(dir, 'run'),
      BF_CMDLINE: path.join(dir, 'cmdline'),
      BF_ETC: path.join(dir, 'etc'),
      BF_HOSTNAME_FILE: path.join(dir, 'hostname'),
      BF_MOUNTS: path.join(dir, 'mounts'),
      HOSTNAME: 'stale-from-environment',
      BF_ADMISSION_POLL: '1',
      BF_SERVER_POLL: '1',
      BF_SERVER_WAIT: serverWait,
    },
  });
}

describe('node agent', () => {
  it('preinit: hostname, PREINIT in order, FSTAB lines, each step reported with the boot secret', async () => {
    const r = await agent('preinit');
    expect(r.exitCode, r.all).toBe(0);
    expect(readFileSync(path.join(dir, 'hostname'), 'utf8')).toBe('node-7\n');
    expect(readFileSync(path.join(dir, 'etc/hostname'), 'utf8')).toBe('node-7\n');
    expect(readFileSync(path.join(dir, 'etc/hosts'), 'utf8')).toContain('127.0.1.1 node-7');
    expect(readFileSync(path.join(dir, 'preinit-proof'), 'utf8')).toBe('preinit-ran\n');
    expect(readFileSync(path.join(dir, 'etc/fstab'), 'utf8')).toBe('tmpfs /var/lib/scratch tmpfs defaults 0 0\n');
    expect(reports.map((x) => `${x.step}:${x.status}`)).toEqual(['preinit:ok', 'fstab:ok', 'sysctl:ok']);
    expect(reports.every((x) => x.auth === `Bearer ${SECRET}`)).toBe(true);
    expect(reports[0]?.detail).toContain('PREINIT_01: ok');
    expect(reports[2]?.detail).toBe('no SYSCTL entries');
    // The configuration (with the secret) is kept for the boot phase, readable by root only.
    expect(statSync(path.join(dir, 'run')).mode & 0o077).toBe(0);
  });

  it('waits while bootfarm answers 423 (admission pending), says so once, then joins', async () => {
    admissionPending = 2;
    config.BOOTFARM_ADMISSION = 'approve';
    const boot = await agent('boot');
    expect(boot.exitCode, boot.all).toBe(0);
    expect(joinRequests).toBe(3);
    expect(reports.filter((x) => x.step === 'admission')).toEqual([
      expect.objectContaining({ status: 'ok', detail: 'waiting for admission: waiting for an operator: bootfarm node approve node-7' }),
    ]);
    expect(reports.at(-1)).toMatchObject({ step: 'join', status: 'ok' });
  });

  it('waits out bootfarm being away (connections refused, then 503) and reports every step and joins once it is back', async () => {
    expect((await agent('preinit')).exitCode).toBe(0);
    const before = reports.length;
    // bootfarm goes away (a restart, an upgrade): nothing listens on its port for
    // longer than curl's own retries would wait, then it answers 503 twice.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const boot = agent('boot');
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    unavailable = 2;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const r = await boot;
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/bootfarm unreachable \(curl: \(7\) Failed to connect/);
    expect(reports.slice(before).map((x) => `${x.step}:${x.status}`)).toEqual(['rcfile:ok', 'booted:ok', 'join:ok']);
    expect(readFileSync(path.join(dir, 'kubeadm-config'), 'utf8')).toBe(JOIN_YAML);
  }, 60_000);

  it('gives up after BF_SERVER_WAIT when bootfarm stays away, saying how long it waited', async () => {
    expect((await agent('preinit')).exitCode).toBe(0);
    unavailable = 1_000;
    const r = await agent('boot', '3');
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/bootfarm unreachable for [3-9] s: HTTP 503/);
    expect(existsSync(path.join(dir, 'kubeadm-args'))).toBe(false);
  }, 60_000);

  it("presents the kernel command line's nonce once per boot: the boot phase reuses the configuration preinit fetched", async () => {
    expect((await agent('preinit')).exitCode).toBe(0);
    const boot = await agent('boot');
    expect(boot.exitCode, boot.all).toBe(0);
    expect(configFetches).toEqual([NONCE]);
    expect(readFileSync(path.join(dir, 'kubeadm-args'), 'utf8')).toMatch(/^join --config /);
  });

  it('boot: RCFILE in the given order, booted report with observations, then kubeadm join --config', async () => {
    expect((await agent('preinit')).exitCode).toBe(0);
    const r = await agent('boot');
    expect(r.exitCode, r.all).toBe(0);
    expect(readFileSync(path.join(dir, 'order'), 'utf8')).toBe('second in order\nrc-1\nrc-2\nrc-10\n');
    expect(reports.map((x) => `${x.step}:${x.status}`)).toEqual([
      'preinit:ok',
      'fstab:ok',
      'sysctl:ok',
      'rcfile:ok',
      'booted:ok',
      'join:ok',
    ]);
    const observed = JSON.parse(reports.find((x) => x.step === 'booted')?.detail ?? '{}') as Record<string, unknown>;
    expect(observed).toMatchObject({
      root: {
        fs: 'overlay',
        lower: { device: '/dev/nbd0', fs: 'squashfs', readOnly: true, source: 'nbd', export: 'lab/amd64' },
        upper: 'tmpfs',
      },
      hostname: 'node-7',
      preinit: { PREINIT_01: { ok: true }, PREINIT_02: { ok: true } },
      fstab: { FSTAB_01: { line: 'tmpfs /var/lib/scratch tmpfs defaults 0 0', inFstab: true, mounted: true } },
      rcfile: { RCFILE_01: { ok: true }, RCFILE_10: { ok: true, out: "it's quoted" } },
    });
    expect(readFileSync(path.join(dir, 'kubeadm-args'), 'utf8')).toMatch(/^join --config \S+join\.yaml$/m);
    expect(readFileSync(path.join(dir, 'kubeadm-config'), 'utf8')).toBe(JOIN_YAML);
    expect(readFileSync(path.join(dir, 'kubeadm-mode'), 'utf8').trim()).toBe('600');
    expect(reports.at(-1)?.detail).toContain('This node has joined the cluster');
  });

  it('reports a failing RCFILE entry with its exit status and output, and goes on', async () => {
    config.RCFILE_2 = 'echo broken-entry >&2; exit 3';
    await agent('preinit');
    const r = await agent('boot');
    expect(r.exitCode).toBe(0);
    const rc = reports.find((x) => x.step === 'rcfile');
    expect(rc?.status).toBe('failed');
    expect(rc?.detail).toMatch(/RCFILE_2: exit 3: broken-entry/);
    expect(rc?.detail).toContain('RCFILE_10: ok');
    const observed = JSON.parse(reports.find((x) => x.step === 'booted')?.detail ?? '{}') as { rcfile: Record<string, { ok: boolean }> };
    expect(observed.rcfile.RCFILE_2?.ok).toBe(false);
  });

  it('does not join when the node has join disabled', async () => {
    config.BOOTFARM_JOIN = 'false';
    await agent('preinit');
    expect((await agent('boot')).exitCode).toBe(0);
    expect(joinRequests).toBe(0);
    expect(existsSync(path.join(dir, 'kubeadm-args'))).toBe(false);
    expect(reports.map((x) => x.step)).not.toContain('join');
  });

  it("reports join failed with kubeadm's output when kubeadm fails", async () => {
    writeFileSync(path.join(dir, 'bin/kubeadm'), '#!/bin/sh\necho "error execution phase preflight: bad token" >&2\nexit 1\n');
    await agent('preinit');
    const r = await agent('boot');
    expect(r.exitCode).toBe(1);
    const join = reports.find((x) => x.step === 'join');
    expect(join?.status).toBe('failed');
    expect(join?.detail).toContain('error execution phase preflight: bad token');
  });

  it('preinit without a reachable server fails quietly (the node still boots)', async () => {
    writeFileSync(
      path.join(dir, 'cmdline'),
      'ip=dhcp bootfarm.export=lab/amd64 bootfarm.http=127.0.0.1:1 bootfarm.mac=52:54:00:12:34:56\n',
    );
    const r = await agent('preinit', '2');
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/bootfarm unreachable for [2-9] s: curl: \(7\)/);
    expect(r.all).toContain('cannot fetch http://127.0.0.1:1/agent/v1/52:54:00:12:34:56/config');
  }, 60_000);
});
