// bootfarm's server image running as a container, either with the host's network
// or attached to a lab bridge (as the stock-server reference that bench/run-lab.sh
// compares against runs dnsmasq and nbd-server):
//
//   bridge mode: a small "network holder" container (the same image running
//   `sleep infinity`, --network none) owns the network namespace. A veth pair
//   joins it to the bridge: one end is a port of <bridge> in <netns>, the other
//   is eth0 in the holder's namespace (moved there by the holder's PID) with the
//   server address. bootfarm's container then runs with --network container:<holder>.
//
// Why a holder rather than veth-ing bootfarm's own container: bootfarm checks
// dhcp.interface when it starts, so eth0 must exist before its process does;
// and a restart of bootfarm (ours, `docker restart`, a restart policy) keeps the
// namespace, so the link never goes down and nothing needs re-plumbing while a
// node is booting. If the holder itself is gone, restart() starts it again and
// redoes the veth (its namespace is new then).
//
// Paths inside the container are fixed (SERVER_CONTAINER_PATHS); write the
// configuration with containerConfig() so it names them.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { execa } from 'execa';
import { parse } from 'yaml';
import { SetupError } from '../errors.js';
import { connectDocker, imageExists } from '../image/docker.js';
import { DEFAULT_SERVER_TAG } from './server-image.js';

export const SERVER_CONTAINER_PATHS = {
  config: '/etc/bootfarm/bootfarm.yaml',
  state: '/var/lib/bootfarm',
  images: '/srv/bootfarm/images',
  tftp: '/srv/bootfarm/tftpboot',
} as const;

type ServerNetwork =
  | {
      mode: 'bridge';
      /** The bridge the server joins (e.g. NetLab's br0). */
      bridge: string;
      /** The network namespace holding the bridge (`ip netns` name); omitted: the host's. */
      netns?: string;
      /** The server's address on the bridge, CIDR (e.g. 10.9.0.1/24). */
      address: string;
      /** The container's interface name (default eth0: what dhcp.interface names). */
      ifname?: string;
      /** The bridge-side veth end (default bfs<random>, at most 15 characters). */
      hostIfname?: string;
      /** MAC of the container's interface (default: random). */
      mac?: string;
    }
  | { mode: 'host' };

export interface ServerContainerOptions {
  /** The configuration file (host path), mounted read-only at SERVER_CONTAINER_PATHS.config. */
  configFile: string;
  /** State directory (host path), mounted read-write: leases and inventory survive restarts and removal. */
  stateDir: string;
  /** Published images (host path), mounted read-only. */
  imagesDir?: string;
  /** TFTP root (host path), mounted read-only. */
  tftpRoot?: string;
  network: ServerNetwork;
  /** Default bootfarm/server:dev (`bootfarm server-image`). */
  image?: string;
  /** Container name (default bootfarm-server-<random>); the holder is <name>-net. */
  name?: string;
  /** Extra environment, e.g. { BOOTFARM_API_TOKEN: '...' }. */
  env?: Record<string, string>;
  /** How long start() and restart() wait for "bootfarm ready" (default 60 s). */
  readyTimeoutMs?: number;
  docker?: Docker;
}

export interface ServerContainer {
  /** bootfarm's container. */
  readonly id: string;
  readonly name: string;
  /** PID (host view) of bootfarm's process; changes on restart(). */
  readonly pid: number;
  /** PID of the process owning the network namespace (the holder; bootfarm itself in host mode). `nsenter -t <netnsPid> -n` enters it. */
  readonly netnsPid: number;
  /** The bridge-side veth end (bridge mode). */
  readonly hostIfname: string | undefined;
  /** Stops (SIGTERM, bootfarm's own shutdown) and removes both containers and the veth. The state dir stays. */
  stop(): Promise<void>;
  /** Stops and starts bootfarm again with the same state dir and network; resolves once it is ready. */
  restart(): Promise<void>;
  /**
   * Ends bootfarm's container and leaves it down (the network holder stays):
   * SIGKILL (a crash, `docker kill`) or SIGTERM (`docker stop`, bootfarm's own shutdown).
   */
  halt(signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts bootfarm's container again after halt(); resolves once it is ready. */
  start(): Promise<void>;
  /**
   * After halt(): an upgrade, as an operator does it (`docker rm`, `docker run`
   * of the new image with the same mounts and network): bootfarm's container is
   * replaced by one of `image`; resolves once that one is ready. logs() then
   * holds the old container's output and the new one's.
   */
  upgrade(image: string): Promise<void>;
  /** The image bootfarm's container runs now. */
  readonly image: string;
  /** Everything bootfarm wrote so far (stdout and stderr, JSON lines), across restarts. */
  logs(): Promise<string>;
}

const READY = '"msg":"bootfarm ready"';

/** `config` with server.stateDir, images.dir and tftp.root set to the paths inside the container. */
export function containerConfig<T extends Record<string, unknown>>(config: T): T {
  const section = (key: string): Record<string, unknown> => (config[key] as Record<string, unknown> | undefined) ?? {};
  return {
    ...config,
    server: { ...section('server'), stateDir: SERVER_CONTAINER_PATHS.state },
    images: { ...section('images'), dir: SERVER_CONTAINER_PATHS.images },
    tftp: { ...section('tftp'), root: SERVER_CONTAINER_PATHS.tftp },
  };
}

/** The configuration must name the container's paths, or state would land in the container's own layer. */
function checkConfigPaths(opts: ServerContainerOptions): void {
  let cfg: { server?: { stateDir?: unknown }; images?: { dir?: unknown }; tftp?: { root?: unknown } };
  try {
    cfg = (parse(readFileSync(opts.configFile, 'utf8')) ?? {}) as typeof cfg;
  } catch (err) {
    throw new SetupError(`${opts.configFile}: cannot be read as YAML (${(err as Error).message})`);
  }
  const wrong: string[] = [];
  if (cfg.server?.stateDir !== SERVER_CONTAINER_PATHS.state) wrong.push(`server.stateDir: ${SERVER_CONTAINER_PATHS.state}`);
  if (opts.imagesDir && cfg.images?.dir !== SERVER_CONTAINER_PATHS.images) wrong.push(`images.dir: ${SERVER_CONTAINER_PATHS.images}`);
  if (opts.tftpRoot && cfg.tftp?.root !== SERVER_CONTAINER_PATHS.tftp) wrong.push(`tftp.root: ${SERVER_CONTAINER_PATHS.tftp}`);
  if (wrong.length) {
    throw new SetupError(`${opts.configFile}: in the container, set ${wrong.join(', ')} (containerConfig() writes them)`);
  }
}

function checkHostPath(what: string, p: string, kind: 'file' | 'dir'): string {
  const full = path.resolve(p);
  if (!existsSync(full)) throw new SetupError(`${what} ${full} does not exist`);
  const isDir = statSync(full).isDirectory();
  if (kind === 'dir' && !isDir) throw new SetupError(`${what} ${full} is not a directory`);
  if (kind === 'file' && isDir) throw new SetupError(`${what} ${full} is a directory, not a file`);
  return full;
}

/** Docker's multiplexed log stream (non-TTY): 8-byte headers (stream, 0, 0, 0, size) and payloads. */
class Demux {
  private pending = Buffer.alloc(0);
  text = '';
  push(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      this.text += this.pending.subarray(8, 8 + size).toString('utf8');
      this.pending = this.pending.subarray(8 + size);
    }
  }
}

function countReady(text: string): number {
  return text.split('\n').filter((l) => l.includes(READY)).length;
}

async function containerLogs(container: Docker.Container): Promise<string> {
  const buf = await container.logs({ stdout: true, stderr: true, follow: false });
  const d = new Demux();
  d.push(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
  return d.text;
}

/** Follows the logs until more than `before` ready lines were written; false when the stream ends first. */
async function followUntilReady(container: Docker.Container, before: number, deadline: number): Promise<boolean> {
  const stream = (await container.logs({ stdout: true, stderr: true, follow: true })) as unknown as Readable;
  return new Promise<boolean>((resolve) => {
    const d = new Demux();
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
    stream.on('data', (chunk: Buffer) => {
      d.push(chunk);
      if (countReady(d.text) > before) finish(true);
    });
    stream.on('end', () => finish(false));
    stream.on('error', () => finish(false));
  });
}

async function waitReady(container: Docker.Container, before: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await followUntilReady(container, before, deadline)) return;
    const state = (await container.inspect()).State;
    const tail = (await containerLogs(container)).trimEnd().split('\n').slice(-20).join('\n');
    if (!state.Running && !state.Restarting) {
      throw new SetupError(`${what}: bootfarm exited (code ${state.ExitCode}) before it was ready; its last output:\n${tail}`);
    }
    if (Date.now() >= deadline)
      throw new SetupError(`${what}: bootfarm was not ready after ${timeoutMs / 1000} s; its last output:\n${tail}`);
  }
}

async function ip(netns: string | undefined, ...args: string[]): Promise<void> {
  const r = await execa('ip', [...(netns ? ['-n', netns] : []), ...args], { reject: false, all: true });
  if (r.failed) throw new SetupError(`ip ${netns ? `-n ${netns} ` : ''}${args.join(' ')} failed: ${String(r.all ?? '').trim()}`);
}

async function inNetns(pid: number, ...args: string[]): Promise<void> {
  const r = await execa('nsenter', ['-t', String(pid), '-n', ...args], { reject: false, all: true });
  if (r.failed) throw new SetupError(`nsenter -t ${pid} -n ${args.join(' ')} failed: ${String(r.all ?? '').trim()}`);
}

async function pidOf(container: Docker.Container): Promise<number> {
  const state = (await container.inspect()).State;
  if (!state.Running || !state.Pid) throw new SetupError(`container ${container.id.slice(0, 12)} is not running`);
  return state.Pid;
}

/** veth <hostIfname> (port of the bridge) <-> <ifname> inside the namespace of `pid`, addressed and up. */
export async function attachToBridge(pid: number, net: Extract<ServerNetwork, { mode: 'bridge' }>, hostIfname: string): Promise<void> {
  const ifname = net.ifname ?? 'eth0';
  await execa('ip', [...(net.netns ? ['-n', net.netns] : []), 'link', 'del', hostIfname], { reject: false });
  await ip(net.netns, 'link', 'add', hostIfname, 'type', 'veth', 'peer', 'name', ifname, 'netns', String(pid));
  await ip(net.netns, 'link', 'set', hostIfname, 'master', net.bridge);
  await ip(net.netns, 'link', 'set', hostIfname, 'up');
  if (net.mac) await inNetns(pid, 'ip', 'link', 'set', ifname, 'address', net.mac);
  await inNetns(pid, 'ip', 'addr', 'add', net.address, 'dev', ifname);
  await inNetns(pid, 'ip', 'link', 'set', ifname, 'up');
  await inNetns(pid, 'ip', 'link', 'set', 'lo', 'up');
}

async function removeQuietly(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/** Starts bootfarm's container (bridge or host network); resolves once bootfarm logged "bootfarm ready". */
export async function startServerContainer(opts: ServerContainerOptions): Promise<ServerContainer> {
  const docker = opts.docker ?? (await connectDocker());
  const image = opts.image ?? DEFAULT_SERVER_TAG;
  if (!(await imageExists(docker, image))) {
    throw new SetupError(`image ${image} does not exist: build it with "bootfarm server-image --tag ${image}"`);
  }
  const configFile = checkHostPath('configuration file', opts.configFile, 'file');
  const stateDir = checkHostPath('state directory', opts.stateDir, 'dir');
  const imagesDir = opts.imagesDir ? checkHostPath('images directory', opts.imagesDir, 'dir') : undefined;
  const tftpRoot = opts.tftpRoot ? checkHostPath('TFTP root', opts.tftpRoot, 'dir') : undefined;
  checkConfigPaths({ ...opts, configFile });
  const net = opts.network;
  if (net.mode === 'bridge') {
    // Fails with ip's own message ("Cannot find device") when the bridge is not there.
    await ip(net.netns, 'link', 'show', 'dev', net.bridge);
  }
  const tag = randomBytes(3).toString('hex');
  const name = opts.name ?? `bootfarm-server-${tag}`;
  const hostIfname = net.mode === 'bridge' ? (net.hostIfname ?? `bfs${tag}`) : undefined;
  if (hostIfname && hostIfname.length > 15) throw new SetupError(`hostIfname ${hostIfname}: interface names have at most 15 characters`);
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const labels = { 'bootfarm.role': 'server', 'bootfarm.server': name };

  let holder: Docker.Container | undefined;
  let container: Docker.Container | undefined;
  let createMain: ((from: string) => Promise<Docker.Container>) | undefined;
  const cleanup = async (): Promise<void> => {
    if (container) await removeQuietly(container);
    if (holder) await removeQuietly(holder);
    if (net.mode === 'bridge' && hostIfname)
      await execa('ip', [...(net.netns ? ['-n', net.netns] : []), 'link', 'del', hostIfname], { reject: false });
  };

  try {
    let networkMode = 'host';
    if (net.mode === 'bridge') {
      holder = await docker.createContainer({
        name: `${name}-net`,
        Image: image,
        Entrypoint: ['sleep'],
        Cmd: ['infinity'],
        Labels: { ...labels, 'bootfarm.server.part': 'network' },
        // Docker turns IPv6 off in a container's namespace; bootfarm's router
        // advertisements (dhcp.routerAdvertisements) need it on, with a link-local address.
        HostConfig: { NetworkMode: 'none', Sysctls: { 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0' } },
      });
      await holder.start();
      await attachToBridge(await pidOf(holder), net, hostIfname as string);
      networkMode = `container:${holder.id}`;
    }
    const binds = [
      `${configFile}:${SERVER_CONTAINER_PATHS.config}:ro`,
      `${stateDir}:${SERVER_CONTAINER_PATHS.state}`,
      ...(imagesDir ? [`${imagesDir}:${SERVER_CONTAINER_PATHS.images}:ro`] : []),
      ...(tftpRoot ? [`${tftpRoot}:${SERVER_CONTAINER_PATHS.tftp}:ro`] : []),
    ];
    createMain = (from: string) =>
      docker.createContainer({
        name,
        Image: from,
        Env: Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
        Labels: { ...labels, 'bootfarm.server.part': 'bootfarm' },
        StopSignal: 'SIGTERM',
        HostConfig: { NetworkMode: networkMode, Binds: binds },
      });
    container = await createMain(image);
    await container.start();
    await waitReady(container, 0, timeoutMs, `container ${name}`);
  } catch (err) {
    await cleanup();
    throw err;
  }

  let main = container;
  let running = image;
  /** Output of containers replaced by an upgrade. */
  let earlierLogs = '';
  let pid = await pidOf(main);
  let netnsPid = holder ? await pidOf(holder) : pid;

  /** Bridge mode: the holder running with its veth; started again and re-plumbed if not. */
  const ensureNetwork = async (): Promise<void> => {
    if (!holder || net.mode !== 'bridge') return;
    const state = (await holder.inspect()).State;
    if (state.Running) {
      const present = await execa('ip', [...(net.netns ? ['-n', net.netns] : []), 'link', 'show', 'dev', hostIfname as string], {
        reject: false,
      });
      if (!present.failed) return;
    } else {
      await holder.start();
    }
    netnsPid = await pidOf(holder);
    await attachToBridge(netnsPid, net, hostIfname as string);
  };

  const halt = async (signal: 'SIGKILL' | 'SIGTERM'): Promise<void> => {
    try {
      if (signal === 'SIGKILL') await main.kill({ signal: 'SIGKILL' });
      else await main.stop({ t: 10 });
    } catch (err) {
      // 304 (stop) / 409 (kill): it was not running (it had exited).
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 409) throw err;
    }
  };
  const start = async (): Promise<void> => {
    const before = countReady(await containerLogs(main));
    await ensureNetwork();
    await main.start();
    await waitReady(main, before, timeoutMs, `container ${name} (restart)`);
    pid = await pidOf(main);
    if (!holder) netnsPid = pid;
  };

  return {
    id: main.id,
    name,
    get pid() {
      return pid;
    },
    get netnsPid() {
      return netnsPid;
    },
    hostIfname,
    get image() {
      return running;
    },
    async logs() {
      return earlierLogs + (await containerLogs(main));
    },
    async upgrade(next: string) {
      if (!(await imageExists(docker, next))) throw new SetupError(`image ${next} does not exist`);
      earlierLogs += await containerLogs(main);
      await removeQuietly(main);
      main = await createMain(next);
      container = main;
      running = next;
      await ensureNetwork();
      await main.start();
      await waitReady(main, 0, timeoutMs, `container ${name} (upgraded to ${next})`);
      pid = await pidOf(main);
      if (!holder) netnsPid = pid;
    },
    async restart() {
      await halt('SIGTERM');
      await start();
    },
    halt,
    start,
    async stop() {
      try {
        await main.stop({ t: 10 });
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 304 && code !== 404) throw err;
      }
      await cleanup();
    },
  };
}
