// Raspberry Pi 3B+ and Pi 5 against a real bootfarm, each through its own model's
// documented request sequence (server/lab/pi-bootloader.ts --model 3|5): the 3B+
// ROM (DHCP without a REQUEST, bootcode.bin and bootsig.bin from the TFTP root
// with no RRQ options, then bootcode.bin's DHCP and <serial>/start.elf), the Pi 5
// EEPROM (config.txt first, no start*.elf, kernel_2712.img). In full mode (bootfarm
// the DHCP server) and in proxy mode beside stock dnsmasq as the site's DHCP
// server. Each Pi must get its own model's files, byte for byte, and a config.txt
// naming the kernel its model boots. And `bootfarm config check` refuses the Pi 5
// once its image lacks kernel_2712.img.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { NetLab } from '../../server/lab/netlab.js';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm } from '../lib/bootfarm.js';
import { startSiteDnsmasq } from '../lib/site-dnsmasq.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// A Pi 3B+ is known by its MAC alone (b8:27:eb): no piModel on purpose.
const PI3 = { mac: 'b8:27:eb:6c:4c:16', hostname: 'pi3', arch: 'arm64', piSerial: 'b66c4c16' };
const PI3_PROXY_IP = '10.9.0.60';
const PI5 = { mac: '2c:cf:67:00:00:05', hostname: 'pi5', arch: 'arm64', piSerial: '5e5e0005', piModel: 5 };

interface PiReport {
  ok: boolean;
  failures: string[];
  prefixUsed: boolean;
  romDhcp?: { requestHex: string | null; leasedAddress: string };
  dhcp: { requestHex: string | null; leasedAddress: string; proxyOffer: unknown };
  files: Array<{ path: string; outcome: string; sha256: string | null; blksize: number | null; tsize: number | null }>;
}

const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-pi-models-'));
const image = new Map<string, Buffer>();
const rpi = path.join(work, 'images/base/v1/arm64/rpi');
mkdirSync(rpi, { recursive: true });
symlinkSync('v1', path.join(work, 'images/base/current'));
// The files the image builder writes for the Pi (imagebuild/squash/make-export.sh), random bytes each.
for (const [f, size] of [
  ['bootcode.bin', 52_000],
  ['start.elf', 300_000],
  ['fixup.dat', 7_000],
  ['bcm2710-rpi-3-b-plus.dtb', 22_000],
  ['bcm2712-rpi-5-b.dtb', 7_000],
  ['kernel8.img', 2_000_000],
  ['kernel_2712.img', 2_100_000],
  ['initrd.img', 900_000],
  ['initrd_2712.img', 950_000],
] as const) {
  const data = randomBytes(size);
  writeFileSync(path.join(rpi, f), data);
  image.set(f, data);
}

function piBoot(lab: NetLab, ns: string, mac: string, serial: string, model: 3 | 5, out: string) {
  return lab
    .exec(
      ns,
      process.execPath,
      nodeArgs(path.join(REPO_ROOT, 'server/lab/pi-bootloader.ts'), [
        '--iface',
        'eth0',
        '--mac',
        mac,
        '--serial',
        serial,
        '--model',
        String(model),
        '--out',
        out,
        '--dhcp-timeout',
        '40',
      ]),
      180_000,
    )
    .then((r) => {
      const line = r.stdout.split('\n').find((l) => l.startsWith('PI_BOOT_REPORT '));
      return { ...r, report: JSON.parse(line?.slice(15) ?? '{}') as PiReport };
    });
}

function expectModelFiles(report: PiReport, serial: string, names: string[]) {
  for (const f of names) {
    const got = report.files.find((x) => x.path === `${serial}/${f}` && x.outcome === 'ok');
    expect(got?.sha256, f).toBe(sha(image.get(f) as Buffer));
  }
}

describe.each([
  { mode: 'full', dhcp: { mode: 'full', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] } },
  { mode: 'proxy', dhcp: { mode: 'proxy' } },
])('Raspberry Pi 3B+ and Pi 5, bootfarm in $mode mode', ({ mode, dhcp }) => {
  let lab: NetLab;

  beforeAll(async () => {
    lab = await NetLab.create(mode === 'full' ? 'pmf' : 'pmp');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    // Proxy mode: neither the 3B+ ROM nor bootcode.bin sends a REQUEST, so bootfarm never
    // sees the address the site gives it; its boot script (cmdline.txt, with the boot's
    // nonce) goes only to a node address bootfarm knows. The recipe (docs/configuration.md):
    // a reservation on the site's DHCP server, and the same address as the node's ip.
    if (mode === 'proxy') await startSiteDnsmasq(lab, [`--dhcp-host=${PI3.mac},${PI3_PROXY_IP}`]);
    await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: { interface: 'eth0', ...dhcp },
      tftp: { root: path.join(work, `tftpboot-${mode}`) },
      images: { dir: path.join(work, 'images'), default: 'base' },
      boot: { kernelArgs: 'console=ttyAMA0' },
      nodes: [mode === 'proxy' ? { ...PI3, ip: PI3_PROXY_IP } : PI3, PI5],
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it("the Pi 3B+ ROM gets bootcode.bin from the root, then bootcode.bin gets the node's files under its serial", async () => {
    const host = await lab.addHost('pi3', { mac: PI3.mac });
    const out = path.join(work, `pi3-${mode}`);
    const { code, stderr, report } = await piBoot(lab, host.ns, PI3.mac, PI3.piSerial, 3, out);
    expect(code, stderr.slice(-3000)).toBe(0);
    expect(report.failures).toEqual([]);
    // The ROM: no REQUEST, plain RRQs (512-byte blocks, no tsize), bootsig.bin not found.
    expect(report.romDhcp?.requestHex).toBeNull();
    expect(report.dhcp.requestHex).toBeNull();
    if (mode === 'proxy') expect(report.dhcp.leasedAddress).toBe(PI3_PROXY_IP);
    const rom = report.files.slice(0, 2);
    expect(rom.map((f) => [f.path, f.outcome])).toEqual([
      ['bootcode.bin', 'ok'],
      ['bootsig.bin', 'not-found'],
    ]);
    expect(rom[0]?.sha256).toBe(sha(image.get('bootcode.bin') as Buffer));
    expect(rom[0]?.blksize).toBe(512);
    expect(rom[0]?.tsize).toBeNull();
    // bootcode.bin: its prefix probe found the serial directory.
    expect(report.prefixUsed).toBe(true);
    expect(report.files[2]).toMatchObject({ path: `${PI3.piSerial}/start.elf`, outcome: 'probe-aborted' });
    expectModelFiles(report, PI3.piSerial, ['start.elf', 'fixup.dat', 'bcm2710-rpi-3-b-plus.dtb', 'kernel8.img', 'initrd.img']);
    const configTxt = readFileSync(path.join(out, `${PI3.piSerial}/config.txt`), 'utf8');
    expect(configTxt).toContain('# bootfarm: pi3 (Pi 3, serial b66c4c16)');
    expect(configTxt).toContain('arm_64bit=1\nkernel=kernel8.img\n');
    expect(readFileSync(path.join(out, `${PI3.piSerial}/cmdline.txt`), 'utf8')).toContain(' bootfarm.node=pi3 ');
    // No Pi 4 or Pi 5 file was asked for.
    expect(report.files.filter((f) => /start4|fixup4|2712|2711/.test(f.path))).toEqual([]);
  }, 240_000);

  it('the Pi 5 EEPROM gets config.txt, its bcm2712 device tree and kernel_2712.img, and no start*.elf', async () => {
    const host = await lab.addHost('pi5', { mac: PI5.mac });
    const out = path.join(work, `pi5-${mode}`);
    const { code, stderr, report } = await piBoot(lab, host.ns, PI5.mac, PI5.piSerial, 5, out);
    expect(code, stderr.slice(-3000)).toBe(0);
    expect(report.romDhcp).toBeUndefined();
    if (mode === 'proxy') expect(report.dhcp.proxyOffer).not.toBeNull();
    expect(report.prefixUsed).toBe(true);
    expectModelFiles(report, PI5.piSerial, ['bcm2712-rpi-5-b.dtb', 'kernel_2712.img', 'initrd_2712.img']);
    expect(report.files.filter((f) => f.outcome === 'ok' && /start|fixup|bootcode/.test(f.path))).toEqual([]);
    const configTxt = readFileSync(path.join(out, `${PI5.piSerial}/config.txt`), 'utf8');
    expect(configTxt).toContain('# bootfarm: pi5 (Pi 5, serial 5e5e0005)');
    expect(configTxt).toContain('arm_64bit=1\nkernel=kernel_2712.img\ninitramfs initrd_2712.img followkernel\n');
  }, 240_000);
});

describe('bootfarm config check and the Pi 5 image', () => {
  it('passes with the files above and refuses the Pi 5, naming the file, once its image has no kernel_2712.img', async () => {
    const file = path.join(work, 'check.yaml');
    writeFileSync(
      file,
      stringify({
        server: { address: '10.9.0.1', stateDir: path.join(work, 'check-state') },
        dhcp: { mode: 'proxy' },
        images: { dir: path.join(work, 'images'), default: 'base' },
        nodes: [PI3, PI5],
      }),
    );
    const ok = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    rmSync(path.join(rpi, 'kernel_2712.img'));
    const refused = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`nodes[1]: pi5 is a Pi 5 (arm64), but image base/arm64 has no rpi/kernel_2712.img`);
  }, 120_000);
});

describe("the image builder's Pi folder (imagebuild/squash/make-export.sh)", () => {
  // The script runs in the image build's tools stage; here in a mount namespace of
  // its own, with Debian's raspi-firmware files at /opt/raspi-firmware as there, a
  // private /tmp for its scratch files, and stand-in kernels: the image's (6.1-like,
  // no bcm2712 DTB), and with or without the initrd stage's 2712/ folder (the Pi 5's
  // own kernel, initramfs and device tree, imagebuild/Dockerfile).
  const exportFor = async (dtbs: string[], pi5Kernel = false) => {
    const base = mkdtempSync(path.join(tmpdir(), 'bootfarm-pi-export-'));
    const dir = path.join(base, 'dtbs');
    mkdirSync(dir);
    for (const d of dtbs) writeFileSync(path.join(dir, `${d}.dtb`), d);
    const script = [
      'set -eu',
      'mount -t tmpfs none /opt',
      'mkdir -p /opt/raspi-firmware/usr/lib/raspi-firmware /opt/x/rootfs/lib/modules/6.9.0 /opt/x/rootfs/usr/lib/linux-image-6.9.0/broadcom /opt/x/rootfs/var/lib/dpkg /opt/x/kernel /opt/scratch',
      'for f in bootcode.bin start.elf fixup.dat start4.elf fixup4.dat; do echo "$f" > /opt/raspi-firmware/usr/lib/raspi-firmware/$f; done',
      `cp ${dir}/*.dtb /opt/x/rootfs/usr/lib/linux-image-6.9.0/broadcom/`,
      ': > /opt/x/rootfs/var/lib/dpkg/status; echo kernel > /opt/x/kernel/vmlinuz; echo initrd > /opt/x/kernel/initrd.img; echo 6.9.0 > /opt/x/kernel/version',
      ...(pi5Kernel
        ? [
            'mkdir /opt/x/kernel/2712',
            'for f in kernel_2712.img initrd_2712.img bcm2712-rpi-5-b.dtb; do echo "$f" > /opt/x/kernel/2712/$f; done',
          ]
        : []),
      `cp ${path.join(REPO_ROOT, 'imagebuild/squash/make-export.sh')} /opt/make-export`,
      'mount --bind /opt/scratch /tmp',
      'sh /opt/make-export arm64 /opt/x/rootfs /opt/x/kernel /opt/x/out >/dev/null',
      'umount /tmp',
      `ls /opt/x/out/rpi > ${path.join(base, 'rpi.txt')}`,
    ].join('\n');
    const r = await run('unshare', ['-m', 'sh', '-c', script]);
    expect(r.code, r.stderr).toBe(0);
    const files = readFileSync(path.join(base, 'rpi.txt'), 'utf8').trim().split('\n');
    rmSync(base, { recursive: true });
    return files;
  };

  it('Debian 6.1 (no bcm2712 DTB): Pi 3B+ and Pi 4 files, the 3B+ DTB under the name its firmware loads, no kernel_2712.img', async () => {
    const files = await exportFor(['bcm2711-rpi-4-b', 'bcm2837-rpi-3-b-plus', 'bcm2837-rpi-3-b']);
    expect(files).toEqual(expect.arrayContaining(['bootcode.bin', 'start.elf', 'start4.elf', 'kernel8.img', 'initrd.img']));
    expect(files).toEqual(expect.arrayContaining(['bcm2710-rpi-3-b-plus.dtb', 'bcm2710-rpi-3-b.dtb', 'bcm2711-rpi-4-b.dtb']));
    expect(files.filter((f) => f.includes('2712'))).toEqual([]);
  }, 60_000);

  it("the Pi 5's own kernel: kernel_2712.img, initrd_2712.img and bcm2712-rpi-5-b.dtb beside the image kernel's files", async () => {
    const files = await exportFor(['bcm2711-rpi-4-b', 'bcm2837-rpi-3-b-plus'], true);
    expect(files).toEqual(
      expect.arrayContaining(['kernel_2712.img', 'initrd_2712.img', 'bcm2712-rpi-5-b.dtb', 'kernel8.img', 'initrd.img']),
    );
  }, 60_000);
});
