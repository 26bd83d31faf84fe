// The Ansible role's test target and how the tests run the example playbook
// against it (test/integration/ansible.test.ts, lab-ansible.test.ts): a Debian
// container with systemd as PID 1 (test/lib/systemd-container.ts), reached with the
// docker connection plugin Debian's ansible ships (community.docker.docker: `docker
// exec` as root, no sshd or keys). The target has no mirror: its Debian packages are
// in the image, and npm installs the package's dependencies offline from a copy of
// this host's npm cache.
import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { run, runOk } from '../../server/lab/proc.js';
import { REPO_ROOT } from './bootfarm.js';
import { cachedImage, NODE_BASE } from './systemd-container.js';

export const ANSIBLE_DIR = path.join(REPO_ROOT, 'ansible');
const ROLE_DEFAULTS = path.join(ANSIBLE_DIR, 'roles/bootfarm/defaults/main.yml');
/** Where the target sees the copy of this host's npm cache (mount it there). */
export const NPM_CACHE = '/var/cache/bootfarm-npm';

/**
 * The target image: Debian with systemd, Python for Ansible's modules, and the role's
 * Debian packages. python3-apt too: Ansible's apt module installs it when missing,
 * from a mirror this target cannot reach.
 */
export function targetImage(): Promise<string> {
  const { bootfarm_apt_packages: pkgs } = parse(readFileSync(ROLE_DEFAULTS, 'utf8')) as { bootfarm_apt_packages: string[] };
  const dockerfile = `FROM ${NODE_BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv python3 python3-apt ${pkgs.join(' ')} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
`;
  return cachedImage({ repo: 'bootfarm/ansible-target', dockerfile, inputs: [] });
}

/** A copy of this host's npm cache under `dir`, to mount at NPM_CACHE: npm writes into its cache even offline. */
export async function copyNpmCache(dir: string): Promise<string> {
  const cache = (await runOk('npm', ['config', 'get', 'cache'])).trim();
  cpSync(path.join(cache, '_cacache'), path.join(dir, '_cacache'), { recursive: true });
  return dir;
}

/** The role's variables for this target: no mirror, no registry. */
export function offlineTargetVars(tarball: string): Record<string, unknown> {
  return {
    ansible_python_interpreter: '/usr/bin/python3',
    bootfarm_package_tarball: tarball,
    bootfarm_npm_install_args: ['--offline', '--cache', NPM_CACHE],
    bootfarm_apt_update_cache: false,
    // GRUB for arm64 is downloaded from a Debian mirror, out of the target's reach.
    bootfarm_bootloaders_grub: false,
  };
}

export interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

/** The PLAY RECAP line of `host`. */
function recapOf(output: string, host: string): Recap {
  const line = output.split('\n').find((l) => l.startsWith(`${host} `) && l.includes(' ok='));
  if (!line) throw new Error(`no PLAY RECAP line for ${host} in:\n${output}`);
  const num = (key: string) => Number(new RegExp(`\\b${key}=(\\d+)`).exec(line)?.[1]);
  return { ok: num('ok'), changed: num('changed'), unreachable: num('unreachable'), failed: num('failed') };
}

/** ansible-playbook of ansible/playbook.yml with `inventory` (and `extraVars`, a JSON file, over it); `host`'s recap. */
export async function playbook(o: {
  inventory: string;
  host: string;
  tmpDir: string;
  extraVars?: string;
}): Promise<{ output: string; recap: Recap }> {
  const r = await run(
    'env',
    [
      'ANSIBLE_NOCOLOR=1',
      `ANSIBLE_LOCAL_TEMP=${o.tmpDir}`,
      'ansible-playbook',
      '-i',
      o.inventory,
      ...(o.extraVars ? ['-e', `@${o.extraVars}`] : []),
      path.join(ANSIBLE_DIR, 'playbook.yml'),
    ],
    900_000,
  );
  return { output: `${r.stdout}\n${r.stderr}`, recap: recapOf(r.stdout, o.host) };
}
