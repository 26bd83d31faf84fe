// packaging/systemd/bootfarm.service under a real systemd as PID 1: a Docker
// container (Debian from debootstrap, this host's Node, Debian's systemd) holding
// the npm package as `npm install -g` lays it out. start -> active and "bootfarm
// ready" as the unprivileged user bootfarm on ports 67 and 69; reload -> the
// configuration is re-read; kill -9 -> systemd starts a new process; stop -> a
// clean exit. The image is cached by the hash of everything that goes into it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Background, run, runOk } from '../../server/lab/proc.js';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { installTarball, packTarball } from '../lib/package.js';
import { cachedImage, NODE_BASE, startSystemdContainer } from '../lib/systemd-container.js';

const UNIT = path.join(REPO_ROOT, 'packaging/systemd/bootfarm.service');
const SYSUSERS = path.join(REPO_ROOT, 'packaging/systemd/bootfarm.sysusers');

// DHCP on the loopback (a container with no network): port 67 and TFTP's 69 are
// what CAP_NET_BIND_SERVICE is for.
const CONFIG = `server: { address: 127.0.0.1, stateDir: /var/lib/bootfarm }
dhcp: { mode: full, interface: lo, subnets: [{ cidr: 127.0.0.0/8, range: [127.0.0.100, 127.0.0.200] }] }
tftp: { port: 69, root: /var/lib/bootfarm/tftpboot }
http: { port: 8080 }
nbd: { port: 10809 }
images: { dir: /var/lib/bootfarm/images }
`;

const DOCKERFILE = `FROM ${NODE_BASE}
# nodejs: Debian's own Node 18 at /usr/bin/node (this host's newer Node is /usr/local/bin/node, first on PATH),
# for the engine check on a real old Node.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv nodejs \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# The package as npm install -g --prefix /usr/local lays it out (installed on the host: no registry in the build).
COPY prefix/ /usr/local/
COPY bootfarm.service /etc/systemd/system/bootfarm.service
COPY bootfarm.sysusers /usr/lib/sysusers.d/bootfarm.conf
COPY bootfarm.yaml /etc/bootfarm/bootfarm.yaml
RUN systemd-sysusers && chgrp bootfarm /etc/bootfarm && chmod 0750 /etc/bootfarm && bootfarm --version
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
`;

/** Builds (or reuses) the test image; its tag names the hash of the tarball, unit, configuration and base. */
async function systemdImage(tarball: string): Promise<string> {
  return cachedImage({
    repo: 'bootfarm/systemd-test',
    dockerfile: DOCKERFILE,
    inputs: [CONFIG, readFileSync(tarball), readFileSync(UNIT), readFileSync(SYSUSERS)],
    fill: async (ctx) => {
      const pkg = await installTarball(tarball);
      try {
        cpSync(pkg.prefix, path.join(ctx, 'prefix'), { recursive: true, verbatimSymlinks: true });
      } finally {
        rmSync(pkg.prefix, { recursive: true, force: true });
      }
      cpSync(UNIT, path.join(ctx, 'bootfarm.service'));
      cpSync(SYSUSERS, path.join(ctx, 'bootfarm.sysusers'));
      writeFileSync(path.join(ctx, 'bootfarm.yaml'), CONFIG);
    },
  });
}

describe('the systemd unit under systemd as PID 1', () => {
  const name = `bootfarm-systemd-${process.pid}`;
  let journal: Background;
  let tarballDir: string | undefined;

  const exec = (...args: string[]) => run('docker', ['exec', name, ...args]);
  const show = async (prop: string) =>
    (await runOk('docker', ['exec', name, 'systemctl', 'show', '-p', prop, '--value', 'bootfarm'])).trim();
  const ready = (since: number) =>
    journal.waitFor((l) => l.includes('"msg":"bootfarm ready"'), 60_000, 'bootfarm ready in the journal', since);

  beforeAll(async () => {
    const tarball = await packTarball();
    tarballDir = path.dirname(tarball);
    const image = await systemdImage(tarball);
    await startSystemdContainer(name, image);
    journal = Background.start('docker', ['exec', name, 'journalctl', '-u', 'bootfarm', '-f', '-o', 'cat', '--no-pager'], 'journal');
  }, 900_000);
  afterAll(async () => {
    await journal?.stop('SIGTERM', 3000);
    await run('docker', ['rm', '-f', name]);
    if (tarballDir) rmSync(tarballDir, { recursive: true, force: true });
  });

  it('start: active, ready, running as the user bootfarm with CAP_NET_BIND_SERVICE alone', async () => {
    const since = journal.lines.length;
    await runOk('docker', ['exec', name, 'systemctl', 'start', 'bootfarm']);
    await ready(since);
    expect(journal.lines.slice(since).join('\n')).toContain('"port":67');
    expect(await show('ActiveState')).toBe('active');
    const pid = await show('MainPID');
    expect((await exec('stat', '-c', '%U', `/proc/${pid}`)).stdout.trim()).toBe('bootfarm');
    const status = (await exec('cat', `/proc/${pid}/status`)).stdout;
    // Bit 10: CAP_NET_BIND_SERVICE.
    expect(status).toMatch(/^CapEff:\s+0+400$/m);
  });

  it('reload: SIGHUP re-reads the configuration (a node added to the file)', async () => {
    await runOk('docker', [
      'exec',
      name,
      'sh',
      '-c',
      'printf \'nodes:\\n  - { mac: "52:54:00:00:00:01", hostname: node-1, arch: amd64 }\\n\' >> /etc/bootfarm/bootfarm.yaml',
    ]);
    const since = journal.lines.length;
    const pid = await show('MainPID');
    await runOk('docker', ['exec', name, 'systemctl', 'reload', 'bootfarm']);
    const line = await journal.waitFor((l) => l.includes('"msg":"configuration reloaded"'), 30_000, 'the reload in the journal', since);
    expect(JSON.parse(line)).toMatchObject({ trigger: 'SIGHUP', nodes: { added: 1, changed: 0, removed: 0 } });
    expect(await show('MainPID')).toBe(pid);
  });

  it('kill -9 of the main process: systemd starts a new one', async () => {
    const pid = await show('MainPID');
    const since = journal.lines.length;
    await runOk('docker', ['exec', name, 'sh', '-c', `kill -9 ${pid}`]);
    await ready(since);
    expect(await show('ActiveState')).toBe('active');
    expect(await show('MainPID')).not.toBe(pid);
    expect(await show('NRestarts')).toBe('1');
  });

  it("the installed bootfarm on Debian's Node 18: one line naming the Node it needs, exit 1", async () => {
    const r = await exec('/usr/bin/node', '/usr/local/lib/node_modules/bootfarm/dist/server/cli/bin.js', '--version');
    expect(r.stderr).toMatch(
      /^bootfarm: needs Node >=20\.19 \(package\.json engines\.node\); this is Node v18\.\d+\.\d+: install a newer Node \(https:\/\/nodejs\.org\) and run bootfarm with it\n$/,
    );
    expect(r.code).toBe(1);
  });

  it('stop: inactive after a clean exit', async () => {
    await runOk('docker', ['exec', name, 'systemctl', 'stop', 'bootfarm']);
    expect(await show('ActiveState')).toBe('inactive');
    expect(await show('Result')).toBe('success');
    expect(await show('ExecMainStatus')).toBe('0');
    await journal.waitFor((l) => l.includes('"msg":"stopped"'), 30_000, 'bootfarm stopped');
  });
});
