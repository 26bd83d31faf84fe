// bootfarm's own server image (the top-level Dockerfile), built through dockerode
// without a registry: the base is made locally from the image builder's
// debootstrap base (bootfarm/base:<suite>-<arch>) plus this host's Node runtime
// (process.execPath, npm beside it, and the shared libraries ldd names).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { execa } from 'execa';
import tar from 'tar-stream';
import { SetupError } from '../errors.js';
import { hostArch } from '../image/arch.js';
import { baseTag, createBaseImage, DEFAULT_MIRROR } from '../image/base.js';
import { BuildFailure, buildImage, type BuildResult, type StepProgress } from '../image/build.js';
import { imageExists } from '../image/docker.js';
import { SAVED_SERVER_FILES } from './inner-docker.js';

export const DEFAULT_SERVER_TAG = 'bootfarm/server:dev';
/** The server image a lab image carries (and the host lab's --server docker runs). */
export const LAB_INNER_SERVER_TAG = 'bootfarm/server:lab';

function nodeBaseTag(suite: string, arch = hostArch()): string {
  return `bootfarm/node-base:${suite}-${arch}`;
}

/** The checkout holding the top-level Dockerfile (from server/lab/ or dist/server/lab/). */
function defaultRepoDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..';
  return path.resolve(here, up);
}

// ---------------------------------------------------------------- build context

interface ContextEntry {
  /** Name in the context. */
  name: string;
  /** Host file to stream, or in-memory content. */
  file?: string;
  content?: Buffer;
  mode: number;
  /** Symlink target. */
  linkname?: string;
}

async function walk(root: string, rel: string, out: ContextEntry[]): Promise<void> {
  const dir = path.join(root, rel);
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    const full = path.join(root, child);
    if (entry.isDirectory()) await walk(root, child, out);
    else if (entry.isSymbolicLink()) {
      out.push({ name: child, linkname: await readlink(full), mode: 0o777 });
    } else if (entry.isFile()) {
      out.push({ name: child, file: full, mode: (await stat(full)).mode & 0o111 ? 0o755 : 0o644 });
    }
  }
}

/** A tar stream of the entries with fixed times and owners, so unchanged inputs hit BuildKit's cache. */
function packEntries(entries: ContextEntry[]): Readable {
  const pack = tar.pack();
  void (async () => {
    try {
      for (const e of entries) {
        const header = { name: e.name, mode: e.mode, mtime: new Date(0), uid: 0, gid: 0 };
        if (e.linkname !== undefined) {
          pack.entry({ ...header, type: 'symlink', linkname: e.linkname });
        } else if (e.content) {
          pack.entry(header, e.content);
        } else if (e.file) {
          const size = (await stat(e.file)).size;
          const sink = pack.entry({ ...header, size });
          await pipeline(createReadStream(e.file), sink as unknown as NodeJS.WritableStream);
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  // tar-stream packs are streamx streams; dockerode wants a Node stream.
  return Readable.from(pack);
}

/** What the top-level Dockerfile uses (the same set .dockerignore lets through). */
async function serverContextEntries(repoDir: string): Promise<ContextEntry[]> {
  const need = ['Dockerfile', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];
  for (const f of need) {
    if (!existsSync(path.join(repoDir, f))) throw new SetupError(`${repoDir} has no ${f}: --context must be a bootfarm checkout`);
  }
  const entries: ContextEntry[] = [];
  for (const f of [...need, '.dockerignore']) {
    if (existsSync(path.join(repoDir, f))) entries.push({ name: f, file: path.join(repoDir, f), mode: 0o644 });
  }
  for (const dir of ['server', 'templates']) {
    const found: ContextEntry[] = [];
    await walk(repoDir, dir, found);
    entries.push(...found.filter((e) => !e.name.endsWith('.log')));
  }
  return entries;
}

// ------------------------------------------------------------ node runtime base

interface NodeRuntime {
  /** The node binary (symlinks resolved). */
  node: string;
  version: string;
  /** npm's package directory beside it (…/lib/node_modules/npm). */
  npmDir: string;
  /** Debian packages owning the libraries ldd lists (installed in the base when missing). */
  packages: string[];
  /** Libraries no package owns: copied into the base at the same path. */
  unowned: string[];
}

/** The host's Node runtime: the binary, npm, and what its shared libraries come from. */
async function describeNodeRuntime(execPath = process.execPath): Promise<NodeRuntime> {
  const node = await realpath(execPath);
  const candidates = [
    path.resolve(path.dirname(execPath), '../lib/node_modules/npm'),
    path.resolve(path.dirname(node), '../lib/node_modules/npm'),
  ];
  const npmDir = candidates.find((d) => existsSync(path.join(d, 'bin/npm-cli.js')));
  if (!npmDir)
    throw new SetupError(
      `npm is not installed beside ${execPath} (looked in ${candidates.join(', ')}); the server image's build stage needs it`,
    );
  const ldd = await execa('ldd', [node], { reject: false });
  if (ldd.failed && !/not a dynamic executable/.test(String(ldd.stdout) + String(ldd.stderr))) {
    throw new SetupError(`ldd ${node} failed: ${String(ldd.stderr).trim()}`);
  }
  const libs: string[] = [];
  for (const line of String(ldd.stdout).split('\n')) {
    if (/not found/.test(line)) throw new SetupError(`ldd ${node}: ${line.trim()}`);
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m) libs.push(m[1] as string);
  }
  const packages = new Set<string>();
  const unowned: string[] = [];
  for (const lib of libs) {
    // dpkg records /lib/... paths on merged-/usr systems: try the path and its real path.
    const tries = [...new Set([lib, await realpath(lib)])];
    let owner: string | undefined;
    for (const p of tries) {
      const r = await execa('dpkg', ['-S', p], { reject: false });
      if (!r.failed) {
        owner = String(r.stdout).split(':')[0]?.split(',')[0]?.trim();
        if (owner) break;
      }
    }
    if (owner) packages.add(owner);
    else unowned.push(await realpath(lib));
  }
  const version = String((await execa(node, ['--version'])).stdout).trim();
  return { node, version, npmDir, packages: [...packages].sort(), unowned };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

const nodeBaseDockerfile = (
  copyLibs: boolean,
): string => `# bootfarm/node-base: Debian (debootstrap) + the Node runtime of the host that built it.
ARG DEBIAN_BASE
FROM \${DEBIAN_BASE} AS node-base
ARG LIB_PACKAGES
# The packages owning node's shared libraries (libstdc++6, libgcc-s1...): minbase
# has most; anything missing is installed from the Debian mirror.
RUN missing=""; for p in $LIB_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done; \\
    if [ -n "$missing" ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \\
      && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; fi
${copyLibs ? 'COPY libs/ /\n' : ''}COPY node /usr/local/bin/node
COPY npm/ /usr/local/lib/node_modules/npm/
ARG NODE_VERSION
ARG NODE_SHA256
RUN ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && test "$(node --version)" = "$NODE_VERSION" && npm --version >/dev/null
LABEL bootfarm.node.version="\${NODE_VERSION}" bootfarm.node.sha256="\${NODE_SHA256}"
`;

export interface ServerImageOptions {
  /** Tag of the server image. */
  tag?: string;
  /** A base image with Node and npm (e.g. node:20-bookworm-slim); default: the local node base. */
  base?: string;
  suite?: string;
  mirror?: string;
  /** The checkout holding the Dockerfile. */
  repoDir?: string;
  noCache?: boolean;
  /** CA certificates npm in the build stage must trust (default: $NODE_EXTRA_CA_CERTS); never in the runtime image. */
  npmCaFile?: string;
  /** The image's dev.bootfarm.build label: a new one makes a new image of the same tree (the lab's upgrade). */
  buildId?: string;
  /** The Dockerfile stage: runtime (the server) or lab (the server plus the lab's peers: `bootfarm lab image`). */
  target?: 'runtime' | 'lab';
  log?: (line: string) => void;
  onStep?: (step: StepProgress) => void;
}

export interface ServerImageReport {
  tag: string;
  imageId: string;
  base: string;
  /** Whether the node base was made in this call (false: reused). */
  baseBuilt: boolean;
  executed: string[];
  cached: string[];
  sizeBytes: number;
  seconds: number;
}

function stepLogger(log: (line: string) => void, onStep?: (s: StepProgress) => void): (s: StepProgress) => void {
  const seen = new Map<string, string>();
  return (step) => {
    onStep?.(step);
    // One line per step and state change: "cached", "running", "done", "failed".
    if (seen.get(step.name) === step.state) return;
    seen.set(step.name, step.state);
    log(`  ${step.state.padEnd(7)} ${step.name}`);
  };
}

async function runBuild(docker: Docker, req: Parameters<typeof buildImage>[1], what: string): Promise<BuildResult> {
  try {
    return await buildImage(docker, req);
  } catch (err) {
    if (err instanceof BuildFailure) throw new SetupError(`${what} failed at ${err.message}`);
    throw err;
  }
}

/** Makes (or reuses) bootfarm/node-base:<suite>-<arch>: the debootstrap base plus the host's Node. */
async function ensureNodeBase(
  docker: Docker,
  opts: Pick<ServerImageOptions, 'suite' | 'mirror' | 'noCache' | 'log' | 'onStep'> = {},
): Promise<{ tag: string; built: boolean }> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const suite = opts.suite ?? 'bookworm';
  const arch = hostArch();
  const tag = nodeBaseTag(suite, arch);
  const runtime = await describeNodeRuntime();
  const sha = await sha256File(runtime.node);
  if (!opts.noCache && (await imageExists(docker, tag))) {
    const labels = (await docker.getImage(tag).inspect()).Config?.Labels ?? {};
    if (labels['bootfarm.node.sha256'] === sha) {
      log(`node base ${tag} is up to date (node ${runtime.version})`);
      return { tag, built: false };
    }
    log(`node base ${tag} has another node (${labels['bootfarm.node.version'] ?? 'unknown'}): rebuilding with ${runtime.version}`);
  }
  const debian = baseTag(suite, arch);
  if (!(await imageExists(docker, debian))) {
    log(`base image ${debian} is missing: making it (bootfarm image base --arch ${arch} --suite ${suite})`);
    await createBaseImage(docker, { arch, suite, mirror: opts.mirror ?? DEFAULT_MIRROR, log });
  }
  log(
    `building ${tag}: ${debian} + node ${runtime.version} (${runtime.node}), npm from ${runtime.npmDir}, libraries from ${runtime.packages.join(' ') || 'no package'}${runtime.unowned.length ? `, copied: ${runtime.unowned.join(' ')}` : ''}`,
  );
  const entries: ContextEntry[] = [
    { name: 'Dockerfile', content: Buffer.from(nodeBaseDockerfile(runtime.unowned.length > 0)), mode: 0o644 },
    { name: 'node', file: runtime.node, mode: 0o755 },
    ...runtime.unowned.map((lib) => ({ name: `libs${lib}`, file: lib, mode: 0o755 })),
  ];
  const npm: ContextEntry[] = [];
  await walk(runtime.npmDir, '', npm);
  entries.push(...npm.map((e) => ({ ...e, name: `npm/${e.name}` })));
  await runBuild(
    docker,
    {
      context: packEntries(entries),
      tag,
      target: 'node-base',
      noCache: opts.noCache,
      buildargs: { DEBIAN_BASE: debian, LIB_PACKAGES: runtime.packages.join(' '), NODE_VERSION: runtime.version, NODE_SHA256: sha },
      onStep: stepLogger(log, opts.onStep),
    },
    `the node base ${tag}`,
  );
  log(`${tag} ready`);
  return { tag, built: true };
}

/** Builds the top-level Dockerfile as the server image; without `base`, on the local node base. */
export async function buildServerImage(docker: Docker, opts: ServerImageOptions = {}): Promise<ServerImageReport> {
  const started = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const tag = opts.tag ?? DEFAULT_SERVER_TAG;
  const repoDir = opts.repoDir ?? defaultRepoDir();
  const entries = await serverContextEntries(repoDir);
  const caFile = opts.npmCaFile ?? process.env.NODE_EXTRA_CA_CERTS;
  if (caFile) {
    if (!existsSync(caFile)) throw new SetupError(`the npm CA file ${caFile} does not exist (NODE_EXTRA_CA_CERTS or npmCaFile)`);
    entries.push({ name: 'npm-ca.pem', file: caFile, mode: 0o644 });
    log(`npm in the build stage trusts the CA certificates of ${caFile} (not copied to the runtime image)`);
  }
  let base = opts.base;
  let baseBuilt = false;
  if (!base) {
    const made = await ensureNodeBase(docker, opts);
    base = made.tag;
    baseBuilt = made.built;
  } else if (!(await imageExists(docker, base))) {
    log(`base ${base} is not present locally: dockerd will try to pull it`);
  }
  let savedDir: string | undefined;
  if (opts.target === 'lab') {
    // The lab image carries the server image for its inner dockerd (no registry to pull from).
    savedDir = await mkdtemp(path.join(tmpdir(), 'bootfarm-lab-context-'));
    entries.push(...(await savedServerImage(docker, { ...opts, base }, savedDir, log)));
  }
  try {
    return await buildFromContext(docker, opts, { tag, repoDir, entries, base, baseBuilt, started, log });
  } finally {
    if (savedDir) await rm(savedDir, { recursive: true, force: true });
  }
}

/** The server image (runtime stage, tagged LAB_INNER_SERVER_TAG) built and saved to dir: the lab stage's context entries. */
async function savedServerImage(
  docker: Docker,
  opts: ServerImageOptions,
  dir: string,
  log: (line: string) => void,
): Promise<ContextEntry[]> {
  await buildServerImage(docker, { ...opts, target: 'runtime', tag: LAB_INNER_SERVER_TAG });
  const tar = path.join(dir, SAVED_SERVER_FILES.tar);
  const started = Date.now();
  await pipeline(await docker.getImage(LAB_INNER_SERVER_TAG).get(), createWriteStream(tar));
  // The ID the inner dockerd will know it by (sha256:<hex>), whatever form the build reported.
  const id = (await docker.getImage(LAB_INNER_SERVER_TAG).inspect()).Id;
  log(
    `saved ${LAB_INNER_SERVER_TAG} (${id.slice(7, 19)}, ${((await stat(tar)).size / 1048576).toFixed(0)} MiB) for the lab image's inner dockerd in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return [
    { name: SAVED_SERVER_FILES.tar, file: tar, mode: 0o644 },
    { name: SAVED_SERVER_FILES.id, content: Buffer.from(`${id}\n`), mode: 0o644 },
  ];
}

async function buildFromContext(
  docker: Docker,
  opts: ServerImageOptions,
  ctx: {
    tag: string;
    repoDir: string;
    entries: ContextEntry[];
    base: string;
    baseBuilt: boolean;
    started: number;
    log: (line: string) => void;
  },
): Promise<ServerImageReport> {
  const { tag, repoDir, entries, base, baseBuilt, started, log } = ctx;
  log(`building ${tag} from ${path.join(repoDir, 'Dockerfile')} (BASE_IMAGE=${base})`);
  const result = await runBuild(
    docker,
    {
      context: packEntries(entries),
      tag,
      target: opts.target ?? 'runtime',
      noCache: opts.noCache,
      buildargs: { BASE_IMAGE: base, ...(opts.buildId ? { BOOTFARM_BUILD: opts.buildId } : {}) },
      onStep: stepLogger(log, opts.onStep),
    },
    `the server image ${tag}`,
  );
  const inspected = await docker.getImage(tag).inspect();
  const seconds = (Date.now() - started) / 1000;
  log(
    `${tag} built in ${seconds.toFixed(1)} s (${result.executed.length} steps run, ${result.cached.length} cached), ${(inspected.Size / 1048576).toFixed(0)} MiB`,
  );
  return {
    tag,
    imageId: result.imageId,
    base,
    baseBuilt,
    executed: result.executed,
    cached: result.cached,
    sizeBytes: inspected.Size,
    seconds,
  };
}
