// The Ansible role (ansible/roles/bootfarm) run by Debian's ansible-playbook, with
// the example playbook ansible/playbook.yml, against a real target: a Debian
// container with systemd as PID 1 and Node (test/lib/systemd-container.ts), reached
// with the docker connection plugin Debian's ansible ships (community.docker.docker:
// `docker exec` as root, no sshd or keys to set up in the target). The target has
// no network: its Debian packages are in the image (the role's apt task finds them),
// and npm installs the package's dependencies offline from a copy of this host's
// npm cache (bootfarm_npm_install_args). The nodes come from the inventory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Background, run, runOk } from '../../server/lab/proc.js';
import { packTarball } from '../lib/package.js';
import { startSystemdContainer } from '../lib/systemd-container.js';
import { ANSIBLE_DIR, copyNpmCache, NPM_CACHE, offlineTargetVars, playbook as runPlaybook, targetImage } from '../lib/ansible-target.js';

describe('the Ansible role bootfarm against a systemd container', () => {
  const name = `bootfarm-ansible-${process.pid}`;
  let work: string;
  let tarballDir: string | undefined;
  let journal: Background | undefined;

  const exec = (...args: string[]) => run('docker', ['exec', name, ...args]);
  const show = async (prop: string) =>
    (await runOk('docker', ['exec', name, 'systemctl', 'show', '-p', prop, '--value', 'bootfarm'])).trim();

  /** The inventory: the container as the bootfarm server, and `nodes` as the group bootfarm_nodes. */
  function writeInventory(tarball: string, nodes: Record<string, Record<string, unknown>>): string {
    const file = path.join(work, 'inventory.yml');
    const server = {
      ansible_connection: 'community.docker.docker',
      // docker exec runs as root already; the playbook's become would look for sudo.
      ansible_become: false,
      ...offlineTargetVars(tarball),
      bootfarm_server_address: '127.0.0.1',
      bootfarm_dhcp_mode: 'full',
      bootfarm_dhcp_interface: 'lo',
      bootfarm_dhcp_subnets: [{ cidr: '127.0.0.0/8', range: ['127.0.0.100', '127.0.0.200'] }],
      bootfarm_profiles: [{ name: 'worker', match: { arch: 'amd64' }, labels: { role: 'worker' } }],
      bootfarm_images_src: path.join(work, 'images'),
      // API reads need the token (bootfarm node list finds it in the file).
      bootfarm_config_extra: { api: { token: 'ansible-test-token-0123456789abcdef' } },
    };
    const inventory = { all: { children: { bootfarm_servers: { hosts: { [name]: server } }, bootfarm_nodes: { hosts: nodes } } } };
    // JSON, which is YAML: every string quoted, as a MAC must be (YAML 1.1 reads 52:54:00:00:00:01 as a number).
    writeFileSync(file, JSON.stringify(inventory, null, 2));
    return file;
  }

  const playbook = (inventory: string) => runPlaybook({ inventory, host: name, tmpDir: path.join(work, 'ansible-tmp') });

  const NODES = {
    'node-1': { bootfarm_mac: '52:54:00:00:00:01', bootfarm_arch: 'amd64', bootfarm_profile: 'worker' },
    'pi-1': { bootfarm_mac: 'DC:A6:32:01:02:03', bootfarm_arch: 'arm64', bootfarm_pi_serial: '1234abcd', bootfarm_pi_model: 4 },
  };
  let tarball: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-ansible-'));
    // A published image as `bootfarm image build` lays them out; its bytes do not matter here.
    mkdirSync(path.join(work, 'images/demo/1/amd64'), { recursive: true });
    writeFileSync(path.join(work, 'images/demo/1/amd64/vmlinuz'), 'not a kernel\n');
    tarball = await packTarball();
    tarballDir = path.dirname(tarball);
    const image = await targetImage();
    const npmCache = await copyNpmCache(path.join(work, 'npm-cache'));
    await startSystemdContainer(name, image, ['-v', `${npmCache}:${NPM_CACHE}`]);
  }, 900_000);
  afterAll(async () => {
    await journal?.stop('SIGTERM', 3000);
    await run('docker', ['rm', '-f', name]);
    if (work) rmSync(work, { recursive: true, force: true });
    if (tarballDir) rmSync(tarballDir, { recursive: true, force: true });
  });

  it('ansible-lint passes the role and the example playbook', async () => {
    const r = await run(
      'env',
      ['-C', ANSIBLE_DIR, 'ansible-lint', '--offline', '--nocolor', 'playbook.yml', 'roles/bootfarm', 'inventory/example.yml'],
      300_000,
    );
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/violation|error/i);
    expect(r.code).toBe(0);
  }, 300_000);

  it('a first run deploys bootfarm: the service active, the configuration valid, the inventory nodes served', async () => {
    const first = await playbook(writeInventory(tarball, NODES));
    expect(first.recap, first.output).toMatchObject({ failed: 0, unreachable: 0 });
    expect(first.recap.changed).toBeGreaterThan(0);

    expect(await show('ActiveState')).toBe('active');
    expect(await show('User')).toBe('bootfarm');
    const check = await exec('bootfarm', 'config', 'check', '/etc/bootfarm/bootfarm.yaml');
    expect(check.code, check.stderr).toBe(0);
    const stat = (await runOk('docker', ['exec', name, 'stat', '-c', '%U:%G %a', '/etc/bootfarm/bootfarm.yaml'])).trim();
    expect(stat).toBe('root:bootfarm 640');

    // The nodes as the running server knows them, through its API.
    const list = await exec('bootfarm', 'node', 'list', '--config', '/etc/bootfarm/bootfarm.yaml');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/52:54:00:00:00:01\s+node-1\s+amd64\s+\S+\s+worker\s/);
    expect(list.stdout).toMatch(/dc:a6:32:01:02:03\s+pi-1/);
    const pi = await exec('bootfarm', 'render', '--config', '/etc/bootfarm/bootfarm.yaml', '--node', 'pi-1', 'config.txt');
    expect(pi.code, pi.stderr).toBe(0);

    // Bootloaders from Debian's ipxe, and the copied image, readable by bootfarm.
    const files = await runOk('docker', [
      'exec',
      name,
      'stat',
      '-c',
      '%U %n',
      '/var/lib/bootfarm/tftpboot/undionly.kpxe',
      '/var/lib/bootfarm/images/demo/1/amd64/vmlinuz',
    ]);
    expect(files.trim().split('\n')).toEqual([
      'bootfarm /var/lib/bootfarm/tftpboot/undionly.kpxe',
      'bootfarm /var/lib/bootfarm/images/demo/1/amd64/vmlinuz',
    ]);
  }, 900_000);

  it('a second run with the same inventory changes nothing', async () => {
    const pid = await show('MainPID');
    const second = await playbook(writeInventory(tarball, NODES));
    expect(second.recap, second.output).toMatchObject({ failed: 0, unreachable: 0, changed: 0 });
    expect(await show('MainPID')).toBe(pid);
  }, 900_000);

  it('a node added to the inventory: the file is rewritten and bootfarm reloads it in place (same PID)', async () => {
    journal = Background.start(
      'docker',
      ['exec', name, 'journalctl', '-u', 'bootfarm', '-f', '-n', '0', '-o', 'cat', '--no-pager'],
      'journal',
    );
    const pid = await show('MainPID');
    const since = journal.lines.length;
    const third = await playbook(
      writeInventory(tarball, { ...NODES, 'node-2': { bootfarm_mac: '52:54:00:00:00:02', bootfarm_arch: 'amd64' } }),
    );
    expect(third.recap, third.output).toMatchObject({ failed: 0, unreachable: 0 });
    expect(third.output).toMatch(/RUNNING HANDLER \[bootfarm : Reload bootfarm\]/);
    const line = await journal.waitFor((l) => l.includes('"msg":"configuration reloaded"'), 60_000, 'the reload in the journal', since);
    expect(JSON.parse(line)).toMatchObject({ trigger: 'SIGHUP', nodes: { added: 1, changed: 0, removed: 0 } });
    expect(await show('MainPID')).toBe(pid);
    expect(await show('ActiveState')).toBe('active');
    const list = await runOk('docker', ['exec', name, 'bootfarm', 'node', 'list', '--config', '/etc/bootfarm/bootfarm.yaml']);
    expect(list).toMatch(/52:54:00:00:00:02\s+node-2/);
  }, 900_000);

  it('an unquoted MAC in an inventory (a number to YAML 1.1) stops the play before the target is touched', async () => {
    const file = writeInventory(tarball, NODES);
    writeFileSync(file, readFileSync(file, 'utf8').replace('"52:54:00:00:00:01"', '52:54:00:00:00:01'));
    const before = await runOk('docker', ['exec', name, 'cat', '/etc/bootfarm/bootfarm.yaml']);
    const bad = await playbook(file);
    expect(bad.recap.failed).toBe(1);
    expect(bad.recap.changed).toBe(0);
    expect(bad.output).toMatch(/node node-1 \(group bootfarm_nodes\) needs bootfarm_mac, and bootfarm_mac and\s+bootfarm_pi_serial quoted/);
    expect(await runOk('docker', ['exec', name, 'cat', '/etc/bootfarm/bootfarm.yaml'])).toBe(before);
  }, 900_000);

  it('an invalid inventory is refused by bootfarm config check and the running file is kept', async () => {
    const before = await runOk('docker', ['exec', name, 'cat', '/etc/bootfarm/bootfarm.yaml']);
    const bad = await playbook(
      writeInventory(tarball, { ...NODES, 'pi-2': { bootfarm_mac: '52:54:00:00:00:03', bootfarm_pi_serial: 'xyz' } }),
    );
    expect(bad.recap.failed).toBe(1);
    expect(bad.output).toMatch(/piSerial: expected the Pi serial as 8 hex digits/);
    expect(await runOk('docker', ['exec', name, 'cat', '/etc/bootfarm/bootfarm.yaml'])).toBe(before);
    expect(await show('ActiveState')).toBe('active');
  }, 900_000);
});
