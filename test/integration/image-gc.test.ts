// `bootfarm image gc` against a running bootfarm (server/image/gc.ts): a version
// is kept while it is current, while a connection reads it, and while it is a
// machine's last root attachment, across a restart of bootfarm too; it goes once
// that machine attached another version. The clients are libnbd's (nbdinfo, the
// Python binding) in a test namespace; gc is the CLI as operators run it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const URI = 'nbd://10.9.0.1:10809';

interface GcJson {
  dryRun: boolean;
  decisions: Array<{ image: string; version: string; keep: boolean; reasons: string[] }>;
}

describe('bootfarm image gc', () => {
  let lab: NetLab;
  let srv: LabHost;
  let node: LabHost;
  let server: BootfarmProcess;
  let work: string;
  const images = () => path.join(work, 'images');
  const config = () => ({
    server: { address: '10.9.0.1' },
    nbd: { port: 10809 },
    images: { dir: images() },
    nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' }],
  });

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-gc-'));
    // v0 oldest, v1 newer, v2 current.
    for (const [i, v] of ['v0', 'v1', 'v2'].entries()) {
      const dir = path.join(images(), 'base', v, 'amd64');
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'root.squashfs'), randomBytes(1024 * 1024));
      writeFileSync(path.join(dir, 'vmlinuz'), `kernel ${v}`);
      const t = new Date(Date.now() - (3 - i) * 3600_000);
      for (const f of ['root.squashfs', 'vmlinuz']) utimesSync(path.join(dir, f), t, t);
    }
    symlinkSync('v2', path.join(images(), 'base/current'));
    lab = await NetLab.create('gc');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    node = await lab.addHost('node', { address: '10.9.0.2/24' });
    server = await startBootfarm(lab, srv.ns, config());
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  const gc = async (...args: string[]): Promise<GcJson> => {
    const r = await run(
      process.execPath,
      nodeArgs(CLI, ['image', 'gc', '--images-dir', images(), '--state-dir', server.stateDir, '--json', ...args]),
      60_000,
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as GcJson;
  };
  const decision = (out: GcJson, version: string) => out.decisions.find((d) => d.version === version);

  it("keeps a version a connection reads now and a machine's last attachment; removes the rest only without --dry-run", async () => {
    // The node mounted v1 (bootfarm.export=base/v1/amd64) and holds the connection.
    const go = path.join(work, 'hold-go');
    const hold = lab.spawn(
      node.ns,
      '/usr/bin/python3',
      [path.join(REPO_ROOT, 'test/lib/nbd-hold.py'), `${URI}/base/v1/amd64`, '0', '4096', go],
      'nbd-hold',
    );
    await hold.waitFor((l) => l === 'READY', 30_000, 'the node to attach v1');

    const dry = await gc('--keep', '0', '--dry-run');
    expect(dry.dryRun).toBe(true);
    expect(decision(dry, 'v2')).toMatchObject({ keep: true, reasons: ['current'] });
    expect(decision(dry, 'v1')?.keep).toBe(true);
    expect(decision(dry, 'v1')?.reasons).toEqual([expect.stringMatching(/^held by node-1 \(attached /), 'open now (base/v1/amd64)']);
    expect(decision(dry, 'v0')).toMatchObject({ keep: false, reasons: [] });
    expect(existsSync(path.join(images(), 'base/v0'))).toBe(true);

    // --keep 1 keeps the newest version besides current (v1 here), not v0.
    expect(decision(await gc('--dry-run'), 'v0')?.keep).toBe(false);

    writeFileSync(go, '');
    await hold.exited;
    const done = await gc('--keep', '0');
    expect(done.decisions.filter((d) => !d.keep).map((d) => d.version)).toEqual(['v0']);
    expect(existsSync(path.join(images(), 'base/v0'))).toBe(false);
    // With the connection closed, v1 is still node-1's root: it may reconnect at any time.
    expect(decision(done, 'v1')?.reasons).toEqual([expect.stringMatching(/^held by node-1 /)]);
    expect(existsSync(path.join(images(), 'base/v1/amd64/root.squashfs'))).toBe(true);
  });

  it('a missing images directory or an unknown image is one clear line, exit 2, nothing removed', async () => {
    const missing = await run(
      process.execPath,
      nodeArgs(CLI, ['image', 'gc', '--images-dir', path.join(work, 'nowhere'), '--state-dir', server.stateDir]),
      60_000,
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`bootfarm: ${path.join(work, 'nowhere')}: no such images directory`);
    const unknown = await run(
      process.execPath,
      nodeArgs(CLI, ['image', 'gc', '--images-dir', images(), '--state-dir', server.stateDir, '--image', 'nope']),
      60_000,
    );
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toBe(`bootfarm: --image nope: no such published image under ${images()}`);
    expect(existsSync(path.join(images(), 'base/v1'))).toBe(true);
  });

  it("a machine's attachment survives a restart of bootfarm; once it attached another version, its old one goes", async () => {
    const stateDir = server.stateDir;
    await server.stop();
    // Down: gc does nothing (a node waiting to reconnect holds a version only bootfarm's records know).
    const down = await run(
      process.execPath,
      nodeArgs(CLI, ['image', 'gc', '--images-dir', images(), '--state-dir', stateDir, '--keep', '0']),
      60_000,
    );
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/^bootfarm: no bootfarm is serving with this state directory/);
    expect(existsSync(path.join(images(), 'base/v1'))).toBe(true);

    server = await startBootfarm(lab, srv.ns, config(), stateDir);
    expect(decision(await gc('--keep', '0', '--dry-run'), 'v1')?.reasons).toEqual([expect.stringMatching(/^held by node-1 /)]);
    // The node reboots into the current version (its boot script names v2).
    const info = await lab.exec(node.ns, 'nbdinfo', [`${URI}/base/v2/amd64`]);
    expect(info.code, info.stderr).toBe(0);
    await server.waitForLog((l) => l.msg === 'nbd root attached' && l.export === 'base/v2/amd64', 10_000, 'the attach of v2');
    const after = await gc('--keep', '0');
    expect(after.decisions.map((d) => [d.version, d.keep])).toEqual([
      ['v1', false],
      ['v2', true],
    ]);
    expect(existsSync(path.join(images(), 'base/v1'))).toBe(false);
    // What nodes boot is untouched.
    const list = await lab.exec(node.ns, 'nbdinfo', ['--list', '--json', URI]);
    expect((JSON.parse(list.stdout) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name'])).toEqual([
      'base/amd64',
      'base/v2/amd64',
    ]);
  }, 120_000);
});
