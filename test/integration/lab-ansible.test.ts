// A lab node boots from the bootfarm that the Ansible role deployed (issue 14): the
// role's test target (test/lib/ansible-target.ts, a Debian container with systemd as
// PID 1) is what `bootfarm lab run --server attach:<container>` puts on the lab's
// bridge (server/lab/lab-attach.ts). The lab writes its configuration as an
// inventory and waits; ansible-playbook deploys with it (the test adds only what
// this offline target needs); the lab's amd64 SeaBIOS node then powers on, boots
// from the systemd unit's bootfarm and joins the lab's fake Kubernetes API.
// The lab image is the shared cache's: its amd64 files are copied into a directory
// bind-mounted at the role's images.dir (the role copies bootfarm_images_src file by
// file through docker exec, too slow for a 150 MB root).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, runOk } from '../../server/lab/proc.js';
import { packTarball } from '../lib/package.js';
import { startSystemdContainer } from '../lib/systemd-container.js';
import { copyNpmCache, NPM_CACHE, offlineTargetVars, playbook, targetImage } from '../lib/ansible-target.js';
import { buildLabImage, IMAGES, startLab } from '../lib/lab-run.js';

const NODE_MAC = '52:54:00:b0:00:01';

interface JournalEntry {
  MESSAGE: string;
  _PID: string;
  _SYSTEMD_UNIT?: string;
}

describe('lab: a node boots from the bootfarm the Ansible role deployed', () => {
  const name = `bootfarm-lab-ansible-${process.pid}`;
  let work: string;
  let tarballDir: string | undefined;
  let tarball: string;

  beforeAll(async () => {
    buildLabImage();
    work = mkdtempSync('/var/tmp/bootfarm-lab-ansible-');
    tarball = await packTarball();
    tarballDir = path.dirname(tarball);
    // The lab image's current amd64 version, as `bootfarm image build` publishes it (a copy:
    // the role and systemd chown what they own below /var/lib/bootfarm, never the shared cache).
    const version = readlinkSync(path.join(IMAGES, 'lab', 'current'));
    cpSync(path.join(IMAGES, 'lab', version, 'amd64'), path.join(work, 'images', 'lab', version, 'amd64'), { recursive: true });
    symlinkSync(version, path.join(work, 'images', 'lab', 'current'));
    const npmCache = await copyNpmCache(path.join(work, 'npm-cache'));
    await startSystemdContainer(name, await targetImage(), [
      '-v',
      `${npmCache}:${NPM_CACHE}`,
      '-v',
      `${path.join(work, 'images')}:/var/lib/bootfarm/images`,
    ]);
  }, 1_800_000);
  afterAll(async () => {
    await run('docker', ['rm', '-f', name]);
    if (work) rmSync(work, { recursive: true, force: true });
    if (tarballDir) rmSync(tarballDir, { recursive: true, force: true });
  });

  it('ansible-playbook deploys with the inventory the lab wrote; amd64-bios boots from the unit and joins', async () => {
    const live = startLab(['--server', `attach:${name}`, '--nodes', 'amd64-bios', '--work-dir', path.join(work, 'lab')]);
    const [, inventory] = await live.waitForLine(/deploy it with ansible-playbook -i (\S+)/, 600_000);
    const vars = path.join(work, 'offline-vars.json');
    writeFileSync(vars, JSON.stringify(offlineTargetVars(tarball)));
    mkdirSync(path.join(work, 'ansible-tmp'));
    const deployed = await playbook({
      inventory: inventory as string,
      host: name,
      tmpDir: path.join(work, 'ansible-tmp'),
      extraVars: vars,
    });
    expect(deployed.recap, deployed.output).toMatchObject({ failed: 0, unreachable: 0 });
    const mainPid = (await runOk('docker', ['exec', name, 'systemctl', 'show', '-p', 'MainPID', '--value', 'bootfarm'])).trim();

    const { code, json, stderr } = await live.done;
    const node = json.results[0];
    expect(node?.failure ?? '', stderr.slice(-3000)).toBe('');
    expect(code).toBe(0);
    expect(node).toMatchObject({ hostname: 'lab-amd64-bios', ok: true, lastStep: 'joined' });
    expect(json.cluster.map((c) => c.name)).toEqual(['lab-amd64-bios']);

    // Served by the unit's process: its DHCP answer, its kernel over HTTP (QEMU's NIC
    // ROM is iPXE: nothing over TFTP), its root over NBD and the join configuration, in
    // the journal of bootfarm.service, from the PID systemd started.
    const journal = (await runOk('docker', ['exec', name, 'journalctl', '-u', 'bootfarm', '-o', 'json', '--no-pager'], 60_000))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as JournalEntry)
      .filter((e) => e._PID === mainPid && e._SYSTEMD_UNIT === 'bootfarm.service')
      .flatMap((e) =>
        e.MESSAGE.startsWith('{') ? [JSON.parse(e.MESSAGE) as { msg: string; mac?: string; path?: string; node?: string }] : [],
      );
    const seen = journal.map((l) => `${l.msg} ${l.path ?? l.node ?? l.mac ?? ''}`).join('\n');
    expect(
      journal.some((l) => /^dhcp (discover|request) -> /.test(l.msg) && l.mac === NODE_MAC),
      seen,
    ).toBe(true);
    expect(
      journal.some((l) => l.msg === 'http file sent' && /\/amd64\/vmlinuz$/.test(l.path ?? '')),
      seen,
    ).toBe(true);
    expect(
      journal.some((l) => l.msg === 'nbd root attached' && l.node === 'lab-amd64-bios'),
      seen,
    ).toBe(true);
    expect(
      journal.some((l) => l.msg === 'join configuration served' && l.node === 'lab-amd64-bios'),
      seen,
    ).toBe(true);
    expect(await runOk('docker', ['exec', name, 'systemctl', 'show', '-p', 'MainPID', '--value', 'bootfarm'])).toBe(`${mainPid}\n`);
  }, 2_400_000);
});
