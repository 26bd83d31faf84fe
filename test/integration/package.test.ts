// The installable package: `npm pack`, `npm install -g` into an empty prefix, and
// the installed `bootfarm` (not the checkout) reports its version, checks the
// shipped example, refuses an old Node in one line, and serves in a namespace,
// rendering a node's iPXE script from the templates installed beside dist/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { NetLab } from '../../server/lab/netlab.js';
import { run, runOk } from '../../server/lab/proc.js';
import { BootfarmProcess } from '../lib/bootfarm.js';
import { installTarball, packTarball, type InstalledPackage } from '../lib/package.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('the npm package', () => {
  let pkg: InstalledPackage;
  let lab: NetLab | undefined;

  beforeAll(async () => {
    pkg = await installTarball(await packTarball());
    process.stderr.write(`package: npm install -g of ${path.basename(pkg.tarball)} took ${pkg.installSeconds.toFixed(1)} s\n`);
  }, 660_000);
  afterAll(async () => {
    await lab?.destroy();
    if (pkg) {
      rmSync(pkg.prefix, { recursive: true, force: true });
      rmSync(path.dirname(pkg.tarball), { recursive: true, force: true });
    }
  });

  it('holds the build, the templates and the image build context, and no sources or tests', async () => {
    const listing = (await runOk('tar', ['-tzf', pkg.tarball])).split('\n').filter(Boolean);
    expect(listing).toContain('package/dist/server/cli/bin.js');
    expect(listing).toContain('package/templates/ipxe.hbs');
    expect(listing).toContain('package/imagebuild/Dockerfile');
    expect(listing).toContain('package/packaging/systemd/bootfarm.service');
    // The dashboard's page, script and styles are served from the sources' folder (server/http/dashboard.ts).
    expect(listing).toContain('package/server/http/dashboard/page.html');
    const stray = (f: string) =>
      f.endsWith('.ts') ||
      f.startsWith('package/test/') ||
      (f.startsWith('package/server/') && !f.startsWith('package/server/http/dashboard/'));
    expect(listing.filter(stray)).toEqual([]);
  });

  it('bootfarm --version prints the package version', async () => {
    const r = await run(pkg.bin, ['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('an older Node than engines.node gets one line and exit 1', async () => {
    // Node reports itself as 20.18.0 from a preload: the check reads process.versions.node.
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-oldnode-'));
    const preload = path.join(dir, 'old-node.mjs');
    writeFileSync(preload, "Object.defineProperty(process.versions, 'node', { value: '20.18.0' });\n");
    const r = await run(process.execPath, ['--import', preload, pkg.bin, '--version']);
    rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'bootfarm: needs Node >=20.19 (package.json engines.node); this is Node v20.18.0: install a newer Node (https://nodejs.org) and run bootfarm with it\n',
    );
  });

  it('bootfarm config check passes on the shipped example', async () => {
    const r = await run(pkg.bin, ['config', 'check', path.join(pkg.root, 'examples/bootfarm.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok (dhcp full, subnets: 10.9.0.0/24, 2 nodes, ');
  });

  it('bootfarm serve runs from the prefix until ready, serves a node its iPXE script, and stops on SIGTERM', async () => {
    lab = await NetLab.create('pkg');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    // node-1's own address: a node's generated files are served to it alone (docs/security.md).
    const client = await lab.addHost('cli', { address: '10.9.0.11/24', mac: '52:54:00:00:00:01' });
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pkg-'));
    mkdirSync(path.join(dir, 'tftpboot'));
    const file = path.join(dir, 'bootfarm.yaml');
    writeFileSync(
      file,
      stringify({
        server: { address: '10.9.0.1', stateDir: './state' },
        dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'] }] },
        tftp: { root: './tftpboot' },
        http: { port: 8080 },
        images: { dir: './images' },
        nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.11' }],
      }),
    );
    const proc = new BootfarmProcess(lab.spawn(srv.ns, pkg.bin, ['serve', '--config', file], 'bootfarm'), file, path.join(dir, 'state'));
    await Promise.race([
      proc.waitForLog((l) => l.msg === 'bootfarm ready', 30_000, 'bootfarm ready'),
      proc.bg.exited.then((code) => {
        throw new Error(`bootfarm exited (${code}) before ready:\n${proc.bg.lines.join('\n')}`);
      }),
    ]);
    const script = await lab.exec(client.ns, 'curl', ['-sS', '--fail', 'http://10.9.0.1:8080/boot/52-54-00-00-00-01.ipxe']);
    expect(script.stderr).toBe('');
    expect(script.stdout).toMatch(/^#!ipxe\n/);
    expect(script.stdout).toContain('bootfarm.node=node-1');
    // The dashboard page, from the files installed beside dist/.
    const page = await lab.exec(client.ns, 'curl', ['-sS', '--fail', 'http://10.9.0.1:8080/']);
    expect(page.stdout).toContain('<html');
    expect(await proc.stop()).toBe(0);
    // The process has exited; its last line may still be in the pipe.
    await proc.waitForLog((l) => l.msg === 'stopped', 5_000, 'the stopped line');
    expect(proc.logs().at(-1)?.msg).toBe('stopped');
    rmSync(dir, { recursive: true, force: true });
  });
});
