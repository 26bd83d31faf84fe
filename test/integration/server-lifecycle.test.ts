// The bootfarm process: clean SIGTERM, leases kept across kill -9 and restart,
// and one clear message (exit 2) for the setups that cannot work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm } from '../lib/bootfarm.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const config = {
  server: { address: '10.9.0.1' },
  dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
};
const field = (line: string, name: string) => line.match(new RegExp(`${name}=(\\S*)`))?.[1];

describe('bootfarm process lifecycle', () => {
  let lab: NetLab;
  let srvNs: string;

  beforeAll(async () => {
    lab = await NetLab.create('lc');
    srvNs = (await lab.addHost('srv', { address: '10.9.0.1/24' })).ns;
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('keeps leases across kill -9: a new client asking for the address gets another, the client renews it', async () => {
    const first = await startBootfarm(lab, srvNs, config);
    const a = await lab.addHost('a');
    const client = lab.spawn(a.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-f', '-s', SCRIPT, '-t', '4', '-T', '1'], 'udhcpc-a');
    const ip = field(await client.waitFor((l) => l.startsWith('LEASE '), 30_000, 'a lease'), 'ip');

    first.bg.child.kill('SIGKILL');
    await first.bg.exited;
    const second = await startBootfarm(lab, srvNs, config, first.stateDir);
    expect(second.logs().find((l) => l.msg === 'state loaded')).toMatchObject({ leases: 1 });

    // Before the owner says anything: a new machine asking for exactly that address
    // (option 50) gets another. Only the lease read back from the state directory
    // holds it; a restarted pool that had lost it would grant it.
    const b = await lab.addHost('b');
    const other = await lab.exec(
      b.ns,
      'busybox',
      ['udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-s', SCRIPT, '-t', '4', '-T', '1', '-r', ip as string],
      30_000,
    );
    const otherIp = field(other.stderr.split('\n').find((l) => l.startsWith('LEASE ')) ?? '', 'ip');
    expect(otherIp).toMatch(/^10\.9\.0\.1\d\d$/);
    expect(otherIp).not.toBe(ip);

    const since = client.lines.length;
    client.child.kill('SIGUSR1');
    const renewed = await client.waitFor((l) => l.startsWith('LEASE event=renew'), 30_000, 'the renewal', since);
    expect(field(renewed, 'ip')).toBe(ip);

    // SIGTERM: stops cleanly with exit 0.
    expect(await second.stop()).toBe(0);
    // Its last line can still be in the pipe when the exit is seen: wait for it, then check it is the last.
    await second.waitForLog((l) => l.msg === 'stopped', 5_000, 'the stopped line');
    expect(second.logs().at(-1)?.msg).toBe('stopped');
    await client.stop();
  });

  it('refuses to start beside another DHCP server on the same port', async () => {
    const running = await startBootfarm(lab, srvNs, config);
    const clash = await lab.exec(srvNs, process.execPath, nodeArgs(CLI, ['serve', '--config', running.configFile]), 30_000);
    expect(clash.code).toBe(2);
    expect(clash.stderr.trim()).toBe('bootfarm: cannot bind 0.0.0.0:67: another DHCP server is listening there');
    expect(await running.stop()).toBe(0);
  });

  it('names a missing interface and an address that is not on it', async () => {
    const proc = await startBootfarm(lab, srvNs, { ...config, dhcp: { ...config.dhcp, mode: 'off' } });
    await proc.stop();
    const file = proc.configFile;
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(file, readFileSync(file, 'utf8').replace('mode: off', 'mode: full').replace('interface: eth0', 'interface: br9'));
    const missing = await lab.exec(srvNs, process.execPath, nodeArgs(CLI, ['serve', '--config', file]), 30_000);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('bootfarm: dhcp.interface br9 does not exist on this host (have: lo, eth0)');

    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('interface: br9', 'interface: eth0').replace('address: 10.9.0.1', 'address: 10.9.0.7'),
    );
    const wrong = await lab.exec(srvNs, process.execPath, nodeArgs(CLI, ['serve', '--config', file]), 30_000);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim()).toBe('bootfarm: server.address 10.9.0.7 is not on dhcp.interface eth0 (its IPv4 addresses: 10.9.0.1)');
  });

  it('names a missing NBD backend binary', async () => {
    const { mkdtempSync, symlinkSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-nobin-'));
    // A PATH holding node alone: no nbdkit, no nbd-server.
    symlinkSync(process.execPath, path.join(dir, 'node'));
    for (const backend of ['nbdkit', 'nbd-server']) {
      const file = path.join(dir, `${backend}.yaml`);
      writeFileSync(
        file,
        `server: { address: 127.0.0.1, stateDir: ${dir}/state }\nnbd: { port: 10898, host: 127.0.0.1, backend: ${backend} }\nimages: { dir: ${dir}/images }\n`,
      );
      const r = await lab.exec(
        srvNs,
        'env',
        [`PATH=${dir}`, path.join(dir, 'node'), ...nodeArgs(CLI, ['serve', '--config', file])],
        30_000,
      );
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`bootfarm: nbd.backend ${backend}: the ${backend} binary is not installed (apt-get install ${backend})`);
    }
  });
});
