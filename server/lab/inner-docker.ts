// The lab in one container (issue 23), true DinD: inside the lab image, `lab run
// --server docker` (the default there) starts a Docker daemon of its own and runs
// bootfarm's server image in a container of it. No registry is involved: `bootfarm
// lab image` saves the server image (`docker save`) into the lab image, and the inner
// daemon loads it once; its data root is on the cache volume (/var/lib/bootfarm-lab),
// so a second run finds it loaded.
//
// What the inner dockerd needs of the lab container, named (docs/ci.md):
// - writable cgroups: Docker mounts the container's cgroup hierarchies read-only
//   unless --privileged; with CAP_SYS_ADMIN they are remounted read-write here
//   (cgroup v2: the lab's own processes move to a leaf, as docker:dind's entrypoint does,
//   so that controllers can be enabled for the inner containers);
// - no iptables and no docker0 (--iptables=false --ip6tables=false --bridge=none): the
//   lab makes its own bridge and plumbs bootfarm's container into it by veth;
// - overlay mounts and namespaces (CAP_SYS_ADMIN, seccomp and AppArmor unconfined),
//   writable /proc/sys (systempaths=unconfined) for the containers' sysctls.
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';
import { SetupError } from '../errors.js';
import { imageExists } from '../image/docker.js';
import { Background } from './proc.js';

/** Set by the Dockerfile's lab stage: this process runs in the lab image. */
export function inLabContainer(): boolean {
  return process.env.BOOTFARM_LAB_CONTAINER === '1';
}

/** The cache volume's mount point in the lab container (`-v bootfarm-lab-cache:/var/lib/bootfarm-lab`). */
export const LAB_CACHE_DIR = '/var/lib/bootfarm-lab';
/** Where `bootfarm lab image` puts the saved server image and its ID in the lab image. */
const SAVED_SERVER_DIR = '/opt/bootfarm/lab';
/**
 * The arm64 bootloader packages (grub-efi-arm64-bin, shim-signed,
 * grub-efi-arm64-signed) the Dockerfile's lab stage fetched at build time: a lab
 * container on a CI runner often has no route to a Debian mirror.
 */
export const LAB_IMAGE_DEBS_DIR = '/opt/bootfarm/lab/debs';
/** In the build context (and so in the Dockerfile's lab stage). */
export const SAVED_SERVER_FILES = { tar: 'server-image.tar', id: 'server-image.id' } as const;

const RUN_DIR = '/run/bootfarm-lab';

/** Where the images are: the one the user mounted (with this image), else the cache volume's. */
export function labContainerImagesDir(image: string, mounted = '/var/lib/bootfarm/images'): string {
  return existsSync(path.join(mounted, image, 'current')) ? mounted : path.join(LAB_CACHE_DIR, 'images');
}

interface Mount {
  point: string;
  fstype: string;
  options: string[];
}

function mounts(): Mount[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left, right] = line.split(' - ');
      const f = (left ?? '').split(' ');
      return { point: f[4] ?? '', options: (f[5] ?? '').split(','), fstype: (right ?? '').split(' ')[0] ?? '' };
    });
}

/** Remounts the cgroup hierarchies read-write (they are read-only in an unprivileged container). */
async function prepareCgroups(log: (line: string) => void): Promise<void> {
  const ro = mounts().filter((m) => m.point.startsWith('/sys/fs/cgroup') && m.options.includes('ro'));
  // The tmpfs holding the v1 hierarchies first, then each hierarchy.
  for (const m of ro.sort((a, b) => a.point.length - b.point.length)) {
    const r = await execa('mount', ['-o', 'remount,bind,rw', m.point], { reject: false, all: true });
    if (r.failed)
      throw new SetupError(
        `the inner dockerd needs writable cgroups: mount -o remount,bind,rw ${m.point} failed (${String(r.all ?? '').trim()}); run the lab container with --cap-add SYS_ADMIN (or --privileged)`,
      );
  }
  if (ro.length) log(`cgroups remounted read-write for the inner dockerd: ${ro.map((m) => m.point).join(' ')}`);
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    // cgroup v2: no process may sit in a cgroup whose controllers are delegated.
    const leaf = '/sys/fs/cgroup/lab-init';
    mkdirSync(leaf, { recursive: true });
    const procs = readFileSync('/sys/fs/cgroup/cgroup.procs', 'utf8').split('\n').filter(Boolean);
    for (const pid of procs) await execa('sh', ['-c', `echo ${pid} > ${leaf}/cgroup.procs`], { reject: false });
    const controllers = readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').trim().split(/\s+/).filter(Boolean);
    await execa('sh', ['-c', `echo ${controllers.map((c) => `+${c}`).join(' ')} > /sys/fs/cgroup/cgroup.subtree_control`], {
      reject: false,
    });
  }
}

export interface InnerDocker {
  docker: Docker;
  socket: string;
  /** Stops the inner containers (dockerd ends them) and the daemon. */
  stop(): Promise<void>;
}

/** Starts dockerd inside the lab container, its data root on the cache volume; resolves once it answers. */
export async function startInnerDockerd(opts: {
  cacheDir?: string;
  log: (line: string) => void;
  /** Called as soon as dockerd is spawned: a SIGTERM during the start must be able to stop it too. */
  onSpawned?: (stop: () => Promise<void>) => void;
}): Promise<InnerDocker> {
  const dataRoot = path.join(opts.cacheDir ?? LAB_CACHE_DIR, 'docker');
  mkdirSync(dataRoot, { recursive: true });
  mkdirSync(RUN_DIR, { recursive: true });
  await prepareCgroups(opts.log);
  const socket = path.join(RUN_DIR, 'docker.sock');
  const dockerd = Background.start(
    'dockerd',
    [
      '--data-root',
      dataRoot,
      '--exec-root',
      path.join(RUN_DIR, 'exec'),
      '--pidfile',
      path.join(RUN_DIR, 'dockerd.pid'),
      '--host',
      `unix://${socket}`,
      // The lab's bridge is its own: no docker0, no NAT rules.
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
    ],
    'inner dockerd',
  );
  const docker = new Docker({ socketPath: socket });
  const stop = async (): Promise<void> => {
    // dockerd stops its containers on SIGTERM (no live-restore) before it exits.
    const code = await dockerd.stop('SIGTERM', 20_000);
    opts.log(`inner dockerd stopped (exit ${code})`);
  };
  opts.onSpawned?.(stop);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ended = await Promise.race([dockerd.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 500))]);
    if (ended)
      throw new SetupError(`the inner dockerd exited before it answered; its last output:\n${dockerd.lines.slice(-15).join('\n')}`);
    if (
      await docker.ping().then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) {
      await stop();
      throw new SetupError(`the inner dockerd did not answer within 60 s; its last output:\n${dockerd.lines.slice(-15).join('\n')}`);
    }
  }
  try {
    const info = (await docker.info()) as { ServerVersion?: string; Driver?: string; CgroupVersion?: string };
    opts.log(
      `inner dockerd ${String(info.ServerVersion)} (pid ${dockerd.pid}, storage ${String(info.Driver)}, cgroup ${String(info.CgroupVersion)}, data root ${dataRoot} on the cache volume, socket ${socket})`,
    );
    // A run killed outright (SIGKILL, OOM) leaves its server containers in the data root: none of them is this run's.
    const stale = await docker.listContainers({ all: true, filters: { label: ['bootfarm.role=server'] } });
    for (const c of stale) await docker.getContainer(c.Id).remove({ force: true, v: true });
    if (stale.length) opts.log(`removed ${stale.length} server container(s) an interrupted run left in the cache volume`);
  } catch (err) {
    // A daemon that answered but failed what follows must not outlive this start.
    await stop();
    throw err;
  }
  return { docker, socket, stop };
}

/**
 * The server image in the inner daemon: already there from an earlier run (the cache
 * volume), or loaded from the copy `bootfarm lab image` saved into the lab image.
 * Returns the image ID to run.
 */
export async function ensureServerImage(docker: Docker, log: (line: string) => void, dir = SAVED_SERVER_DIR): Promise<string> {
  const tar = path.join(dir, SAVED_SERVER_FILES.tar);
  const idFile = path.join(dir, SAVED_SERVER_FILES.id);
  if (!existsSync(tar) || !existsSync(idFile))
    throw new SetupError(
      `this lab image holds no saved server image (${tar}): build it with "bootfarm lab image", or run the lab with --server host`,
    );
  const id = readFileSync(idFile, 'utf8').trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(id))
    throw new SetupError(`${idFile}: expected an image ID (sha256:<64 hex>), got ${JSON.stringify(id.slice(0, 80))}`);
  if (await imageExists(docker, id)) {
    log(`server image ${id.slice(7, 19)} already loaded in the cache volume: no load`);
    return id;
  }
  const started = Date.now();
  const stream = await docker.loadImage(createReadStream(tar), { quiet: true });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  if (!(await imageExists(docker, id))) throw new SetupError(`docker load of ${tar} did not give image ${id}`);
  log(`server image ${id.slice(7, 19)} loaded from ${tar} in ${((Date.now() - started) / 1000).toFixed(1)} s (kept in the cache volume)`);
  return id;
}
