// The image builder end to end on the real dockerd: local debootstrap bases,
// BuildKit builds of amd64 and arm64 (arm64 through qemu-user binfmt), the
// export checked file by file, publishing, the cache, and the failure paths.
// Booting the images belongs to the emulation lab's tests.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageExportCatalog } from '../../server/nbd/catalog.js';
import { sha256Of, type ExportManifest } from '../../server/image/extract.js';
import type { ImageBuildReport } from '../../server/image/run-build.js';
import { CLI, nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';
import { listInitrd } from '../lib/image-initrd.js';

const NAME = `bftest${process.pid}`;
const ARCHES = ['amd64', 'arm64'] as const;
const BUILD_TIMEOUT = 60 * 60_000;
let imagesDir: string;
let first: ImageBuildReport;

function cli(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, nodeArgs(CLI, args), {
    cwd: REPO_ROOT,
    reject: false,
    env: { ...process.env, ...env },
    timeout: BUILD_TIMEOUT,
  });
}

async function build(extra: string[] = []) {
  const r = await cli([
    'image',
    'build',
    '--name',
    NAME,
    '--arch',
    ARCHES.join(','),
    '--images-dir',
    imagesDir,
    '--plain',
    '--json',
    ...extra,
  ]);
  if (r.exitCode !== 0) throw new Error(`image build failed (exit ${r.exitCode}):\n${String(r.stderr).slice(-4000)}`);
  return JSON.parse(String(r.stdout)) as ImageBuildReport;
}

const archDir = (arch: string) => path.join(imagesDir, NAME, 'current', arch);
const manifestOf = (arch: string) => JSON.parse(readFileSync(path.join(archDir(arch), 'manifest.json'), 'utf8')) as ExportManifest;
const squashList = (arch: string) =>
  execFileSync('unsquashfs', ['-l', '-no-progress', path.join(archDir(arch), 'root.squashfs')], { maxBuffer: 1 << 28 })
    .toString('utf8')
    .split('\n')
    .map((l) => l.replace(/^squashfs-root\/?/, ''))
    .filter((l) => l !== '');

beforeAll(async () => {
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts/start-dockerd.sh')], { stdio: 'pipe' });
  imagesDir = mkdtempSync(path.join(process.env.BOOTFARM_TMPDIR ?? '/var/tmp', 'bf-images-'));
  first = await build();
}, BUILD_TIMEOUT);

afterAll(async () => {
  const docker = new Docker();
  for (const arch of ARCHES)
    await docker
      .getImage(`bootfarm/${NAME}:build-${arch}`)
      .remove()
      .catch(() => undefined);
  if (imagesDir) rmSync(imagesDir, { recursive: true, force: true });
});

describe('image build: export of each arch', () => {
  for (const arch of ARCHES) {
    it(`${arch}: the squashfs holds the node agent, kubeadm stand-in, nbd-client and the kernel's modules; no kernel, apt lists or caches`, () => {
      const files = new Set(squashList(arch));
      const { kernelVersion } = manifestOf(arch);
      for (const f of [
        'usr/lib/bootfarm/agent',
        'usr/lib/bootfarm/preinit',
        'usr/lib/bootfarm/lib.sh',
        'usr/bin/kubeadm',
        'usr/lib/bootfarm/kubernetes/yaml-flat.awk',
        'etc/systemd/system/multi-user.target.wants/bootfarm-agent.service',
        'usr/sbin/nbd-client',
        'usr/bin/curl',
        'usr/bin/jq',
        'usr/lib/systemd/systemd',
        `usr/lib/modules/${kernelVersion}/kernel/drivers/block/nbd.ko`,
      ]) {
        expect(files.has(f), `${f} in ${arch} root.squashfs`).toBe(true);
      }
      expect(
        [...files].filter((f) => /^boot\/.+/.test(f) || /^var\/lib\/apt\/lists\/.+/.test(f) || /^usr\/share\/man\/.+/.test(f)),
      ).toEqual([]);
    });

    it(`${arch}: kernel and initrd exist; the initrd has bootfarm's boot script, hook output, nbd-client and the root's modules`, () => {
      expect(readFileSync(path.join(archDir(arch), 'vmlinuz')).length).toBeGreaterThan(1 << 20);
      const names = listInitrd(path.join(archDir(arch), 'initrd.img'));
      for (const want of [
        /^scripts\/bootfarm$/,
        /^scripts\/init-premount\/bootfarm-linkup$/,
        /^conf\/conf\.d\/bootfarm$/,
        /(^|\/)sbin\/nbd-client$/,
        /\/nbd\.ko(\.xz|\.zst)?$/,
        /\/squashfs\.ko(\.xz|\.zst)?$/,
        /\/overlay\.ko(\.xz|\.zst)?$/,
        /\/virtio_net\.ko(\.xz|\.zst)?$/,
      ]) {
        expect(
          names.some((n) => want.test(n)),
          `${want} in ${arch} initrd`,
        ).toBe(true);
      }
      // The stock nbdroot= script of nbd-client is replaced by bootfarm's.
      expect(names.some((n) => /scripts\/local-top\/nbd$/.test(n))).toBe(false);
      // A real Pi's root comes over its own NIC: the Pi 4's GENET (module genet), the Pi 3B+'s
      // lan78xx, older Pis' smsc95xx. QEMU's virtio NIC alone would pass every lab run.
      if (arch === 'arm64')
        for (const nic of ['genet', 'lan78xx', 'smsc95xx'])
          expect(
            names.some((n) => new RegExp(`/${nic}\\.ko(\\.xz|\\.zst)?$`).test(n)),
            `${nic}.ko in the arm64 initrd`,
          ).toBe(true);
    });

    it(`${arch}: manifest.json names the arch, kernel, packages and the sha256 of every file`, async () => {
      const m = manifestOf(arch);
      expect(m.arch).toBe(arch);
      expect(m.kubeadm).toBe('standin');
      expect(m.kernelVersion).toMatch(new RegExp(`-${arch}$`));
      expect(m.packages.map((p) => p.name)).toEqual(
        expect.arrayContaining(['systemd', 'nbd-client', 'initramfs-tools', `linux-image-${m.kernelVersion}`]),
      );
      expect(m.packages.every((p) => p.arch === arch || p.arch === 'all')).toBe(true);
      const onDisk = execFileSync('find', ['.', '-type', 'f', '!', '-name', 'manifest.json'], { cwd: archDir(arch) })
        .toString()
        .trim()
        .split('\n')
        .map((f) => f.slice(2))
        .sort();
      expect(m.files.map((f) => f.path).sort()).toEqual(onDisk);
      for (const f of m.files) expect(await sha256Of(path.join(archDir(arch), f.path)), f.path).toBe(f.sha256);
    });
  }

  it('arm64: the Raspberry Pi firmware set, device trees under the names each model loads, kernel8.img and initrd', () => {
    const rpi = readdirSync(path.join(archDir('arm64'), 'rpi'));
    expect(rpi).toEqual(
      expect.arrayContaining([
        'start4.elf',
        'fixup4.dat',
        'bootcode.bin',
        'start.elf',
        'bcm2711-rpi-4-b.dtb',
        'bcm2837-rpi-3-b-plus.dtb',
        // A Pi 3's firmware loads the downstream name (docs/protocol-notes.md §2.6).
        'bcm2710-rpi-3-b-plus.dtb',
        'kernel8.img',
        'initrd.img',
      ]),
    );
    // The Pi 5 boots its own kernel (Debian unstable's, pinned in imagebuild/Dockerfile:
    // bookworm's has no bcm2712 device tree or RP1 drivers) with its own initramfs.
    expect(rpi).toEqual(expect.arrayContaining(['kernel_2712.img', 'initrd_2712.img', 'bcm2712-rpi-5-b.dtb']));
    const m = manifestOf('arm64');
    const sha = (p: string) => m.files.find((f) => f.path === p)?.sha256;
    expect(sha('rpi/kernel8.img')).toBe(sha('vmlinuz'));
    expect(sha('rpi/initrd.img')).toBe(sha('initrd.img'));
    expect(sha('rpi/kernel_2712.img')).not.toBe(sha('vmlinuz'));
    // Its Ethernet is the macb behind the RP1 south bridge on PCIe: without these its root never attaches.
    const pi5Initrd = listInitrd(path.join(archDir('arm64'), 'rpi', 'initrd_2712.img'));
    for (const mod of ['rp1_pci', 'macb', 'nbd', 'squashfs'])
      expect(
        pi5Initrd.some((n) => new RegExp(`/${mod}\\.ko(\\.xz|\\.zst)?$`).test(n)),
        `${mod}.ko in initrd_2712.img`,
      ).toBe(true);
    expect(sha('rpi/bcm2710-rpi-3-b-plus.dtb')).toBe(sha('rpi/bcm2837-rpi-3-b-plus.dtb'));
  });

  it('amd64 has no Pi firmware', () => {
    expect(existsSync(path.join(archDir('amd64'), 'rpi'))).toBe(false);
  });
});

describe('image build: publishing', () => {
  it('publishes <name>/<version>/<arch> with current pointing at the version, served as NBD exports <name>/<arch> and <name>/<version>/<arch>', async () => {
    const version = first.publish.version;
    expect(readlinkSync(path.join(imagesDir, NAME, 'current'))).toBe(version);
    expect(readdirSync(path.join(imagesDir, NAME)).sort()).toEqual(['current', version].sort());
    const names = await new ImageExportCatalog(imagesDir, []).names();
    // The current version by its plain name, and every kept version by its own (what nodes attach).
    expect(names).toEqual([`${NAME}/${version}/amd64`, `${NAME}/${version}/arm64`, `${NAME}/amd64`, `${NAME}/arm64`].sort());
  });

  it('writes an OCI image index naming every arch of the version, each blob present', () => {
    const oci = path.join(imagesDir, NAME, first.publish.version, 'oci');
    const index = JSON.parse(readFileSync(path.join(oci, 'index.json'), 'utf8')) as {
      mediaType: string;
      manifests: { digest: string; platform: { architecture: string; os: string } }[];
    };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ]);
    for (const desc of index.manifests) {
      const manifest = JSON.parse(readFileSync(path.join(oci, 'blobs/sha256', desc.digest.slice(7)), 'utf8')) as {
        config: { digest: string };
        layers: { digest: string; annotations: Record<string, string> }[];
      };
      for (const d of [manifest.config, ...manifest.layers])
        expect(existsSync(path.join(oci, 'blobs/sha256', d.digest.slice(7))), d.digest).toBe(true);
      expect(manifest.layers.map((l) => l.annotations['org.opencontainers.image.title'])).toEqual(
        expect.arrayContaining(['root.squashfs', 'vmlinuz', 'initrd.img']),
      );
    }
  });

  it(
    'a rebuild with nothing changed runs no step (all from the cache) and republishes the same version',
    async () => {
      const again = await build();
      for (const a of again.arches) {
        expect(a.executed, `${a.arch} steps that ran again`).toEqual([]);
        expect(a.cached.length).toBeGreaterThan(5);
      }
      expect(again.publish.version).toBe(first.publish.version);
      expect(again.publish.reused).toBe(true);
    },
    BUILD_TIMEOUT,
  );
});

describe('image build: failures', () => {
  it(
    'a failing RUN step reports that step and its output, and leaves current untouched',
    async () => {
      const context = mkdtempSync(path.join(tmpdir(), 'bf-context-'));
      try {
        cpSync(path.join(REPO_ROOT, 'imagebuild'), context, { recursive: true });
        const dockerfile = path.join(context, 'Dockerfile');
        const text = readFileSync(dockerfile, 'utf8').replace(
          'RUN /usr/lib/bootfarm/setup.sh\n',
          'RUN /usr/lib/bootfarm/setup.sh\nRUN echo "bootfarm-test: this step is about to fail" && ls /no/such/dir\n',
        );
        writeFileSync(dockerfile, text);
        const before = readlinkSync(path.join(imagesDir, NAME, 'current'));
        const r = await cli([
          'image',
          'build',
          '--name',
          NAME,
          '--arch',
          'amd64',
          '--images-dir',
          imagesDir,
          '--plain',
          '--context',
          context,
        ]);
        expect(r.exitCode).toBe(2);
        expect(r.stderr).toContain('image build for amd64 failed at step [rootfs');
        expect(r.stderr).toContain('RUN echo "bootfarm-test: this step is about to fail"');
        expect(r.stderr).toContain('bootfarm-test: this step is about to fail');
        expect(r.stderr).toContain("ls: cannot access '/no/such/dir'");
        expect(r.stderr).toMatch(/exit code: 2/);
        expect(readlinkSync(path.join(imagesDir, NAME, 'current'))).toBe(before);
        expect(readdirSync(path.join(imagesDir, NAME)).sort()).toEqual(['current', before].sort());
      } finally {
        rmSync(context, { recursive: true, force: true });
      }
    },
    BUILD_TIMEOUT,
  );

  it('a missing dockerd is one message naming the fix', async () => {
    const r = await cli(['image', 'build', '--name', NAME, '--arch', 'amd64', '--images-dir', imagesDir], {
      DOCKER_HOST: 'unix:///nonexistent/docker.sock',
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('cannot reach dockerd at unix:///nonexistent/docker.sock');
    expect(r.stderr).toContain('bash scripts/start-dockerd.sh');
  });

  it('a bad --arch names the value and the allowed ones', async () => {
    const r = await cli(['image', 'build', '--name', NAME, '--arch', 'amd64,sparc', '--images-dir', imagesDir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('bootfarm: --arch: unknown architecture "sparc"; allowed: amd64, arm64, armhf');
  });
});
