// Boot files end to end in a test namespace: bootloaders from Debian's ipxe
// package, per-node generated files, image files with HTTP Range, and a
// Raspberry Pi 4 bootloader (server/lab/pi-bootloader.ts speaks its exact DHCP and
// TFTP sequence) that must receive its own node's files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { run } from '../../server/lab/proc.js';
import { waitUntil } from '../lib/wait.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const PI_MAC = 'dc:a6:32:01:02:03';

interface PiReport {
  prefixUsed: boolean;
  files: Array<{ path: string; outcome: string; bytes: number; sha256: string | null }>;
}

describe('boot files over TFTP and HTTP', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let client: LabHost;
  let work: string;
  const image = new Map<string, Buffer>();

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-files-'));
    // A published image as the image builder lays it out: <name>/<version>/<arch>, current -> version.
    const put = (rel: string, data: Buffer) => {
      const file = path.join(work, 'images/base/v1', rel);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, data);
      image.set(rel, data);
    };
    put('amd64/vmlinuz', randomBytes(3 * 1024 * 1024 + 5));
    put('amd64/initrd.img', randomBytes(5 * 1024 * 1024 + 7));
    for (const f of ['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb', 'kernel8.img', 'initrd.img'])
      put(`arm64/rpi/${f}`, randomBytes(f === 'kernel8.img' ? 8 * 1024 * 1024 : 200 * 1024));
    symlinkSync('v1', path.join(work, 'images/base/current'));
    mkdirSync(path.join(work, 'tftpboot'));

    lab = await NetLab.create('bf');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    const config = {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: path.join(work, 'tftpboot') },
      http: { port: 8080 },
      images: { dir: path.join(work, 'images'), default: 'base' },
      boot: { kernelArgs: 'console=ttyS0' },
      nodes: [
        { mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' },
        { mac: PI_MAC, hostname: 'pi-1', arch: 'arm64', piSerial: '1234abcd', piModel: 4 },
      ],
    };
    // `bootfarm bootloaders` before serving, as an operator would.
    const { writeFileSync: w } = await import('node:fs');
    const { stringify } = await import('yaml');
    const cfgFile = path.join(work, 'pre.yaml');
    w(cfgFile, stringify({ ...config, server: { ...config.server, stateDir: path.join(work, 'state') } }));
    const installed = await run(process.execPath, nodeArgs(CLI, ['bootloaders', '--config', cfgFile]));
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain('undionly.kpxe <- /usr/lib/ipxe/undionly.kpxe');
    expect(installed.stdout).toMatch(/grub\/arm64-efi\/core\.efi <- .*grub-efi-arm64-bin_.*_arm64\.deb/);
    server = await startBootfarm(lab, srv.ns, config);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const inClient = (cmd: string, args: string[], timeoutMs = 60_000) => lab.exec(client.ns, cmd, args, timeoutMs);

  it("serves the iPXE binaries from Debian's package over TFTP, byte for byte", async () => {
    for (const file of ['undionly.kpxe', 'ipxe.efi', 'snponly.efi']) {
      const target = path.join(work, `got-${file}`);
      const r = await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', file, target]);
      expect(r.code, r.stderr).toBe(0);
      expect(sha(readFileSync(target))).toBe(sha(readFileSync(`/usr/lib/ipxe/${file}`)));
    }
  });

  it("serves GRUB's arm64 UEFI netboot image built from Debian's grub-efi-arm64-bin", async () => {
    const target = path.join(work, 'core.efi');
    expect((await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', 'grub/arm64-efi/core.efi', target])).code).toBe(0);
    const core = readFileSync(target);
    expect(core.subarray(0, 2).toString()).toBe('MZ');
    // PE/COFF machine type at the PE header: 0xAA64 is ARM64.
    const pe = core.readUInt32LE(0x3c);
    expect(core.subarray(pe, pe + 4).toString('latin1')).toBe('PE\0\0');
    expect(core.readUInt16LE(pe + 4)).toBe(0xaa64);
    expect(readFileSync(path.join(work, 'tftpboot/grub/arm64-efi/core.efi'))).toEqual(core);
  });

  it("renders the node's iPXE script, the same over HTTP and TFTP, with its root location and the boot's one-time nonce", async () => {
    const http = await inClient('curl', ['-sS', '-f', 'http://10.9.0.1:8080/boot/52-54-00-00-00-01.ipxe']);
    expect(http.code, http.stderr).toBe(0);
    const nonce = / bootfarm\.nonce=([A-Za-z0-9_-]{32}) /.exec(http.stdout)?.[1];
    expect(nonce, http.stdout).toBeDefined();
    // Kernel, initrd and boot in one line, retried (a restart of bootfarm mid-download would end the boot).
    expect(http.stdout.split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      'set bootfarm-tries:int32 0',
      ':bootfarm-fetch',
      'imgfree',
      `kernel http://10.9.0.1:8080/images/base/v1/amd64/vmlinuz initrd=initrd.img ip=dhcp bootfarm.server=10.9.0.1 bootfarm.http=10.9.0.1:8080 bootfarm.nbd=10.9.0.1:10809 bootfarm.export=base/v1/amd64 bootfarm.node=node-1 bootfarm.mac=52:54:00:00:00:01 bootfarm.nonce=${nonce} console=ttyS0 && initrd --name initrd.img http://10.9.0.1:8080/images/base/v1/amd64/initrd.img && boot ||`,
      'inc bootfarm-tries',
      'iseq ${bootfarm-tries} 40 && goto bootfarm-failed ||',
      'echo bootfarm: fetching the kernel and initrd failed, try ${bootfarm-tries} of 40, again in 3 s',
      'sleep 3 ||',
      'goto bootfarm-fetch',
      ':bootfarm-failed',
      'echo bootfarm: no kernel and initrd from 10.9.0.1 after 40 tries',
      '',
    ]);
    expect(http.stdout.split('\n').slice(0, 2)).toEqual(['#!ipxe', '# bootfarm: node-1 (52:54:00:00:00:01), image base/amd64']);
    // iPXE percent-encodes ':' in paths; both spellings name the same node.
    expect((await inClient('curl', ['-sS', '-f', 'http://10.9.0.1:8080/boot/52%3A54%3A00%3A00%3A00%3A01.ipxe'])).stdout).toBe(http.stdout);
    const target = path.join(work, 'script.ipxe');
    // (tftp-hpa reads 'a:b' arguments as host:file, so the hyphenated name is used here.)
    expect((await inClient('tftp', ['-m', 'binary', '10.9.0.1', '-c', 'get', 'boot/52-54-00-00-00-01.ipxe', target])).code).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe(http.stdout);
    const unknown = await inClient('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      'http://10.9.0.1:8080/boot/52-54-00-99-99-99.ipxe',
    ]);
    expect(unknown.stdout).toBe('404');
    // GRUB's per-MAC name and PXELINUX's render for the same node.
    const grub = await inClient('curl', ['-sS', '-f', 'http://10.9.0.1:8080/grub/grub.cfg-01-52-54-00-00-00-01']);
    expect(grub.stdout).toContain('linux (http,10.9.0.1:8080)/images/base/v1/amd64/vmlinuz ip=dhcp bootfarm.server=10.9.0.1');
    // Kernel, initrd and root of one version (the one `current` named when the script was rendered).
    expect(grub.stdout).toContain('initrd (http,10.9.0.1:8080)/images/base/v1/amd64/initrd.img');
    // GRUB's own parser accepts it (the retry loop is GRUB script: for, if, sleep).
    expect(grub.stdout).toMatch(/for try in 1 2 3 [\d ]+ 40; do\n\s+if linux /);
    const grubCfg = path.join(work, 'grub.cfg');
    writeFileSync(grubCfg, grub.stdout);
    const checked = await run('grub-script-check', [grubCfg]);
    expect(checked.code, checked.stderr).toBe(0);
    const pxelinux = await inClient('curl', ['-sS', '-f', 'http://10.9.0.1:8080/pxelinux.cfg/01-52-54-00-00-00-01']);
    expect(pxelinux.stdout).toContain('APPEND ip=dhcp bootfarm.server=10.9.0.1');
  });

  it('serves image files over HTTP with Range, HEAD and 416', async () => {
    const kernel = image.get('amd64/vmlinuz') as Buffer;
    const full = path.join(work, 'vmlinuz');
    expect((await inClient('curl', ['-sS', '-f', '-o', full, 'http://10.9.0.1:8080/images/base/amd64/vmlinuz'])).code).toBe(0);
    expect(sha(readFileSync(full))).toBe(sha(kernel));
    const part = path.join(work, 'vmlinuz.part');
    const ranged = await inClient('curl', [
      '-sS',
      '-f',
      '-r',
      '1000-70999',
      '-o',
      part,
      '-w',
      '%{http_code}',
      'http://10.9.0.1:8080/images/base/amd64/vmlinuz',
    ]);
    expect(ranged.stdout).toBe('206');
    expect(readFileSync(part)).toEqual(kernel.subarray(1000, 71000));
    const head = await inClient('curl', ['-sS', '-I', 'http://10.9.0.1:8080/images/base/amd64/initrd.img']);
    // Case-sensitive on purpose: GRUB's HTTP client only knows "Content-Length: ".
    expect(head.stdout).toMatch(/^Content-Length: 5242887\r?$/m);
    expect(head.stdout).toMatch(/accept-ranges: bytes/i);
    const bad = await inClient('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-r',
      '99999999-',
      '-w',
      '%{http_code}',
      'http://10.9.0.1:8080/images/base/amd64/vmlinuz',
    ]);
    expect(bad.stdout).toBe('416');
    for (const attempt of ['/images/base/amd64/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/images/..%2f..%2fetc/passwd']) {
      const r = await inClient('curl', ['-sS', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `http://10.9.0.1:8080${attempt}`]);
      expect(['403', '404'], attempt).toContain(r.stdout);
    }
  });

  it("a Raspberry Pi 4 bootloader gets its node's firmware, config.txt and cmdline.txt", async () => {
    const pi = await lab.addHost('pi', { mac: PI_MAC });
    const out = path.join(work, 'pi-out');
    const r = await lab.exec(
      pi.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'server/lab/pi-bootloader.ts'), [
        '--iface',
        'eth0',
        '--mac',
        PI_MAC,
        '--serial',
        '1234abcd',
        '--model',
        '4',
        '--out',
        out,
        '--dhcp-timeout',
        '30',
      ]),
      180_000,
    );
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(
      r.stdout
        .split('\n')
        .find((l) => l.startsWith('PI_BOOT_REPORT '))
        ?.slice(15) ?? '{}',
    ) as PiReport;
    expect(report.prefixUsed).toBe(true);
    const got = (name: string) => report.files.filter((f) => f.path === `1234abcd/${name}` && f.outcome === 'ok');
    for (const f of ['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb', 'kernel8.img', 'initrd.img']) {
      expect(got(f)[0]?.sha256, f).toBe(sha(image.get(`arm64/rpi/${f}`) as Buffer));
    }
    const configTxt = readFileSync(path.join(out, '1234abcd/config.txt'), 'utf8');
    expect(configTxt).toContain('kernel=kernel8.img');
    expect(configTxt).toContain('# bootfarm: pi-1 (Pi 4, serial 1234abcd)');
    // The Pi's boot script: its kernel command line, with this boot's one-time nonce.
    expect(readFileSync(path.join(out, '1234abcd/cmdline.txt'), 'utf8')).toMatch(
      new RegExp(
        `^ip=dhcp bootfarm\\.server=10\\.9\\.0\\.1 bootfarm\\.http=10\\.9\\.0\\.1:8080 bootfarm\\.nbd=10\\.9\\.0\\.1:10809 bootfarm\\.export=base/v1/arm64 bootfarm\\.node=pi-1 bootfarm\\.mac=${PI_MAC} bootfarm\\.nonce=[A-Za-z0-9_-]{32} console=ttyS0$`,
      ),
    );
    // The boot shows as a timeline on the node: DHCP, then each file.
    // The Pi has its last file before bootfarm's log line for it reaches this test.
    const served = () => server.logs().filter((l) => l.msg === 'tftp file sent' && String(l.path).startsWith('1234abcd/'));
    await waitUntil(() => served().length >= 6, 5_000, 'six "tftp file sent" lines for the Pi').catch(() => undefined);
    expect(served().length).toBeGreaterThanOrEqual(6);
  }, 240_000);

  it('an unknown Pi gets nothing', async () => {
    const pi = await lab.addHost('pi2', { mac: 'dc:a6:32:0a:0b:0c' });
    const r = await lab.exec(
      pi.ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'server/lab/pi-bootloader.ts'), [
        '--iface',
        'eth0',
        '--mac',
        'dc:a6:32:0a:0b:0c',
        '--serial',
        '0badcafe',
        '--model',
        '4',
        '--dhcp-timeout',
        '30',
      ]),
      180_000,
    );
    expect(r.code).toBe(1);
    const report = JSON.parse(
      r.stdout
        .split('\n')
        .find((l) => l.startsWith('PI_BOOT_REPORT '))
        ?.slice(15) ?? '{}',
    ) as PiReport;
    expect(report.prefixUsed).toBe(false);
    expect(report.files.filter((f) => f.outcome === 'ok')).toEqual([]);
  }, 240_000);
});
