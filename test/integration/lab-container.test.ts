// The whole lab in one container (issue 23): `bootfarm lab image` builds the top-level
// Dockerfile's lab stage with no registry (the server image saved into it), and `docker
// run <it> lab run` (the privileges named below, not --privileged) boots nodes to
// "joined" entirely inside that container: its namespaces, bridge, taps, QEMU, and
// bootfarm in a container of a dockerd of its own (true DinD; data root on the cache
// volume), all live and die with it. The host is compared before and after (network
// namespaces, links, QEMU processes), and while a node boots none of the lab's names
// exist on the host. A second run on the same cache volume loads nothing: asserted
// from its log.
// The node images come from the shared cache, mounted read-only (built on the host:
// building them inside the container is not done), or are copied onto the cache volume.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { run, runOk } from '../../server/lab/proc.js';
import { buildLabImage, CLI, IMAGES, type LabJson } from '../lib/lab-run.js';

const TAG = 'bootfarm/lab:dev';

interface HostState {
  netns: Set<string>;
  links: Set<string>;
  qemu: Set<string>;
}

async function hostState(): Promise<HostState> {
  const netns = (await runOk('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] as string);
  const links = (await runOk('ip', ['-o', 'link', 'show'])).split('\n').map((l) => l.split(': ')[1]?.split('@')[0] as string);
  const qemu = (await run('pgrep', ['qemu-system'])).stdout.split('\n');
  const set = (xs: string[]) => new Set(xs.filter(Boolean));
  return { netns: set(netns), links: set(links), qemu: set(qemu) };
}

/** What `after` has that `before` had not. */
function added(before: HostState, after: HostState): string[] {
  const diff = (what: string, a: Set<string>, b: Set<string>) => [...b].filter((x) => !a.has(x)).map((x) => `${what} ${x}`);
  return [
    ...diff('netns', before.netns, after.netns),
    ...diff('link', before.links, after.links),
    ...diff('qemu pid', before.qemu, after.qemu),
  ];
}

/**
 * `docker run` of the lab image: no network, the images read-only, /dev/kvm when there is one.
 * What the lab needs of --privileged, named: this host's dockerd cannot grant every
 * capability (its own bounding set lacks CAP_SYS_RESOURCE), so --privileged fails here.
 */
const LAB_CONTAINER_PRIVILEGES = [
  '--cap-add',
  'NET_ADMIN',
  '--cap-add',
  'SYS_ADMIN',
  '--security-opt',
  'seccomp=unconfined',
  '--security-opt',
  'apparmor=unconfined',
  '--security-opt',
  'systempaths=unconfined',
  '--device',
  '/dev/net/tun',
];

/** This run's cache volume (removed in afterAll). */
const CACHE = `bootfarm-lab-cache-test-${process.pid}`;

function dockerRunArgs(name: string, workDir: string, labArgs: string[], opts: { mountImages?: boolean } = {}): string[] {
  return [
    'run',
    '--rm',
    '--name',
    name,
    ...LAB_CONTAINER_PRIVILEGES,
    '--network',
    'none',
    ...(existsSync('/dev/kvm') ? ['--device', '/dev/kvm'] : []),
    '-v',
    `${CACHE}:/var/lib/bootfarm-lab`,
    ...(opts.mountImages === false ? [] : ['-v', `${IMAGES}:/var/lib/bootfarm/images:ro`]),
    '-v',
    `${workDir}:/out`,
    TAG,
    'lab',
    'run',
    '--json',
    '--work-dir',
    '/out',
    '--timeout',
    '900',
    ...labArgs,
  ];
}

/** The lab image build's JSON report (its progress on stderr). */
async function buildLabContainerImage(): Promise<{ executed: string[]; cached: string[]; stderr: string }> {
  const r = await run(process.execPath, [CLI, 'lab', 'image', '--tag', TAG, '--json'], 60 * 60_000);
  if (r.code !== 0) throw new Error(`bootfarm lab image failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  return { ...(JSON.parse(r.stdout) as { executed: string[]; cached: string[] }), stderr: r.stderr };
}

/** `docker run` of the lab container in the background: its stdout, stderr as it comes, and its exit code. */
function startContainer(args: string[]): {
  out: { stdout: string; stderr: string };
  waitFor: (test: RegExp) => Promise<void>;
  code: Promise<number | null>;
} {
  const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const waiters: Array<{ test: RegExp; resolve: () => void }> = [];
  child.stdout.on('data', (c: Buffer) => (out.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    out.stderr += c.toString();
    for (const w of waiters.filter((x) => x.test.test(out.stderr))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const code = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    out,
    code,
    waitFor: (test) =>
      new Promise<void>((resolve, reject) => {
        if (test.test(out.stderr)) return resolve();
        waiters.push({ test, resolve });
        void code.then(() => reject(new Error(`the lab container ended before ${String(test)}:\n${out.stderr.slice(-3000)}`)));
      }),
  };
}

describe('lab in one container (docker run bootfarm/lab:dev lab run)', () => {
  const work: string[] = [];

  beforeAll(async () => {
    buildLabImage();
    await buildLabContainerImage();
  }, 90 * 60_000);

  afterAll(async () => {
    for (const dir of work) rmSync(dir, { recursive: true, force: true });
    await run('docker', ['volume', 'rm', '-f', CACHE]);
  });

  it(
    'a second build of the lab image runs no step (every layer from the cache)',
    async () => {
      const again = await buildLabContainerImage();
      expect(again.executed).toEqual([]);
      expect(again.cached.some((s) => s.includes('[lab '))).toBe(true);
      expect(again.stderr).toMatch(/built in [\d.]+ s \(0 steps run/);
    },
    10 * 60_000,
  );

  it(
    'amd64-bios, arm64-uefi and pi4 join inside the container, bootfarm in a container of the inner dockerd (cold cache volume: the server image loaded); the host gains no namespace, link or QEMU process',
    async () => {
      const dir = mkdtempSync('/var/tmp/bootfarm-lab-container-');
      work.push(dir);
      const name = `bootfarm-lab-container-${process.pid}`;
      const before = await hostState();
      const lab = startContainer(dockerRunArgs(name, dir, ['--nodes', 'amd64-bios,arm64-uefi,pi4']));
      // While the node boots: the inner lab's namespaces and links are not the host's.
      await lab.waitFor(/powered on/);
      const seen = await hostState();
      const labId = /lab network (\S+)-sw /.exec(lab.out.stderr)?.[1] as string;
      const code = await lab.code;
      const { stdout, stderr } = lab.out;
      const after = await hostState();

      expect(code, stderr.slice(-3000)).toBe(0);
      const json = JSON.parse(stdout) as LabJson;
      const nodes = ['lab-amd64-bios', 'lab-arm64-uefi', 'lab-pi4'];
      expect(json.results.map((r) => [r.hostname, r.ok, r.failure]).sort()).toEqual(nodes.map((n) => [n, true, undefined]));
      for (const r of json.results) expect(r.timeline.joined, r.hostname).toBeGreaterThan(0);
      expect(json.cluster.map((n) => n.name).sort()).toEqual(nodes);
      const byKind = new Map(json.results.map((r) => [r.kind, r]));
      // arm64 UEFI booted the arm64 GRUB bootfarm built from the .deb in the lab image
      // (the container has no network: nothing could be downloaded).
      const armFiles = (byKind.get('arm64-uefi')?.events ?? []).filter((e) => e.type === 'tftp.file').map((e) => String(e.detail?.path));
      expect(armFiles).toContain('grub/arm64-efi/core.efi');
      expect(stderr).toMatch(
        /lab: arm64 packages from the lab image \(\/opt\/bootfarm\/lab\/debs\) or the cache volume \(\S+\): nothing downloaded/,
      );
      // The scripted Pi 4 fetched its firmware set over TFTP, then its kernel booted in QEMU virt.
      const piFiles = (byKind.get('pi4')?.events ?? []).filter((e) => e.type === 'tftp.file').map((e) => String(e.detail?.path));
      for (const f of ['config.txt', 'start4.elf', 'fixup4.dat', 'kernel8.img'])
        expect(
          piFiles.some((p) => p.endsWith(f)),
          f,
        ).toBe(true);
      // The accelerator is said (tcg without /dev/kvm).
      const accel = existsSync('/dev/kvm') ? '(kvm|tcg)' : 'tcg';
      expect(stderr).toMatch(new RegExp(`lab-amd64-bios: powered on \\(QEMU seabios, ${accel}\\)`));
      expect(stderr).toMatch(new RegExp(`lab-arm64-uefi: powered on \\(QEMU aavmf, ${accel}\\)`));
      expect(labId).toMatch(/^bflab/);
      expect([...seen.netns].filter((n) => n.startsWith(labId))).toEqual([]);
      expect([...seen.links].filter((n) => n.startsWith(labId))).toEqual([]);
      expect(added(before, after)).toEqual([]);
      // The consoles and logs are the CI job's artefacts, in the mounted work directory.
      expect(readFileSync(`${dir}/consoles/lab-amd64-bios.log`, 'utf8')).toMatch(/iPXE/);
      expect(readFileSync(`${dir}/consoles/lab-arm64-uefi.log`, 'utf8')).toMatch(/GRUB|grub/);
      // True DinD: a dockerd of the lab's own, its data root on the cache volume, and the
      // server image loaded into it from the lab image (the volume was empty).
      expect(stderr).toMatch(
        /lab: inner dockerd \S+ \(pid \d+, storage \S+, cgroup \d, data root \/var\/lib\/bootfarm-lab\/docker on the cache volume/,
      );
      expect(stderr).toMatch(/lab: server image [0-9a-f]{12} loaded from \/opt\/bootfarm\/lab\/server-image\.tar/);
      expect(stderr).toMatch(/lab: bootfarm serving on 10\.9\.0\.1 \(container bflab\S+-bootfarm,/);
      expect(stderr).toMatch(/lab: inner dockerd stopped/);
      // bootfarm ran in that container: its log is the container's (JSON lines from serve).
      expect(readFileSync(`${dir}/bootfarm.log`, 'utf8')).toMatch(/"msg":"bootfarm ready"/);
    },
    40 * 60_000,
  );

  it(
    'a second run on the same cache volume loads nothing; images from the volume when none are mounted',
    async () => {
      // The node images onto the cache volume (what a CI job's earlier step, or a build there, leaves).
      await runOk(
        'docker',
        [
          'run',
          '--rm',
          '--network',
          'none',
          '--entrypoint',
          'sh',
          '-v',
          `${CACHE}:/var/lib/bootfarm-lab`,
          '-v',
          `${IMAGES}:/src:ro`,
          TAG,
          '-c',
          'mkdir -p /var/lib/bootfarm-lab/images && cp -a /src/lab /var/lib/bootfarm-lab/images/',
        ],
        10 * 60_000,
      );
      const dir = mkdtempSync('/var/tmp/bootfarm-lab-container-');
      work.push(dir);
      const before = await hostState();
      const lab = startContainer(
        dockerRunArgs(`bootfarm-lab-container-warm-${process.pid}`, dir, ['--nodes', 'amd64-bios'], { mountImages: false }),
      );
      const code = await lab.code;
      const { stdout, stderr } = lab.out;
      expect(code, stderr.slice(-3000)).toBe(0);
      expect((JSON.parse(stdout) as LabJson).results.map((r) => [r.hostname, r.ok])).toEqual([['lab-amd64-bios', true]]);
      expect(stderr).toMatch(/lab: images from \/var\/lib\/bootfarm-lab\/images\n/);
      expect(stderr).toMatch(/lab: server image [0-9a-f]{12} already loaded in the cache volume: no load/);
      expect(stderr).not.toMatch(/loaded from|downloaded into|building|built in/);
      expect(added(before, await hostState())).toEqual([]);
    },
    40 * 60_000,
  );

  it(
    'SIGTERM to the container while a node boots: the lab, its inner containers and dockerd are torn down, exit 143, nothing left',
    async () => {
      const dir = mkdtempSync('/var/tmp/bootfarm-lab-container-');
      work.push(dir);
      const name = `bootfarm-lab-container-term-${process.pid}`;
      const before = await hostState();
      const lab = startContainer(dockerRunArgs(name, dir, ['--nodes', 'amd64-bios']));
      await lab.waitFor(/powered on/);
      await runOk('docker', ['kill', '--signal', 'TERM', name]);
      // A bound, not a timing: a lab that ignores SIGTERM never ends by itself (PID 1 has no default action).
      const code = await Promise.race([lab.code, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 120_000))]);
      if (code === 'hung') await run('docker', ['kill', name]);
      expect(code, lab.out.stderr.slice(-3000)).toBe(143);
      expect(lab.out.stderr).toMatch(/SIGTERM: tearing the lab down/);
      // bootfarm's container and the inner dockerd went first (dockerd ends its containers).
      expect(lab.out.stderr).toMatch(/lab: inner dockerd stopped \(exit 0\)/);
      expect((await runOk('docker', ['ps', '-a', '--filter', `name=${name}`, '--format', '{{.Names}}'])).trim()).toBe('');
      expect(added(before, await hostState())).toEqual([]);
    },
    20 * 60_000,
  );
});
