// A Debian container with systemd as PID 1, for the tests that deploy bootfarm as
// a system service (test/integration/systemd.test.ts, ansible.test.ts): images
// built from the node base server/lab/server-image.ts makes (Debian from
// debootstrap + this host's Node), cached by the hash of everything that goes into
// them, and started with what systemd needs and nothing more.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hostArch } from '../../server/image/arch.js';
import { connectDocker, imageExists } from '../../server/image/docker.js';
import { buildServerImage } from '../../server/lab/server-image.js';
import { run, runOk } from '../../server/lab/proc.js';

/** The node base server/lab/server-image.ts makes; its tag there. */
export const NODE_BASE = `bootfarm/node-base:bookworm-${hostArch()}`;

function hashOf(parts: Array<string | Buffer>): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(createHash('sha256').update(p).digest());
  return hash.digest('hex').slice(0, 16);
}

export interface CachedImage {
  /** The image repository; the tag is the hash of the inputs. */
  repo: string;
  /** Starts FROM NODE_BASE. */
  dockerfile: string;
  /** Everything else the image is made of besides the Dockerfile and the base (file contents). */
  inputs: Array<string | Buffer>;
  /** Fills the build context (a fresh directory) with what the Dockerfile COPYs. */
  fill?: (ctx: string) => Promise<void>;
}

/** Builds (or reuses) the image; images of earlier inputs in the same repository are removed. */
export async function cachedImage(spec: CachedImage): Promise<string> {
  const docker = await connectDocker();
  // The node base is made by the server image's build (its first stage).
  if (!(await imageExists(docker, NODE_BASE))) await buildServerImage(docker, { log: (line) => process.stderr.write(`${line}\n`) });
  const baseId = (await docker.getImage(NODE_BASE).inspect()).Id;
  const tag = `${spec.repo}:${hashOf([spec.dockerfile, ...spec.inputs, baseId])}`;
  if (await imageExists(docker, tag)) return tag;
  const ctx = mkdtempSync(path.join(tmpdir(), 'bootfarm-systemd-ctx-'));
  try {
    await spec.fill?.(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), spec.dockerfile);
    // RUN steps on the host's network: containers on the default bridge have no DNS here.
    await runOk('docker', ['build', '--network', 'host', '-q', '-t', tag, ctx], 600_000);
    // Images of earlier inputs are never used again.
    const tags = (await runOk('docker', ['images', spec.repo, '--format', '{{.Repository}}:{{.Tag}}'])).split('\n').filter(Boolean);
    for (const old of tags.filter((t) => t !== tag)) await run('docker', ['rmi', old]);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}

/**
 * Starts `image` (CMD /sbin/init) as `name` with no network and waits until systemd
 * has finished booting. Not --privileged (this host refuses some capabilities):
 * what systemd needs to run its services. Ports below 1024 are privileged again
 * (Docker sets 0), so a unit's CAP_NET_BIND_SERVICE is what lets it bind 67 and 69.
 * `extra` goes before the image (mounts).
 */
export async function startSystemdContainer(name: string, image: string, extra: string[] = []): Promise<void> {
  await runOk('docker', [
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'none',
    '--cap-add',
    'SYS_ADMIN',
    '--security-opt',
    'seccomp=unconfined',
    '--security-opt',
    'apparmor=unconfined',
    '--sysctl',
    'net.ipv4.ip_unprivileged_port_start=1024',
    '-v',
    '/sys/fs/cgroup:/sys/fs/cgroup:rw',
    '--cgroupns=host',
    '--tmpfs',
    '/run',
    '--tmpfs',
    '/run/lock',
    ...extra,
    image,
  ]);
  // systemctl needs systemd's socket, which PID 1 makes a moment after the container starts.
  const booted = await run(
    'docker',
    [
      'exec',
      name,
      'timeout',
      '60',
      'sh',
      '-c',
      'until [ -S /run/systemd/private ]; do sleep 0.1; done; systemctl is-system-running --wait',
    ],
    90_000,
  );
  const state = booted.stdout.trim();
  if (state !== 'running' && state !== 'degraded') throw new Error(`${name}: systemd did not finish booting (${state}): ${booted.stderr}`);
}
