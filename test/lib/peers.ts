// The programs, files and privileges each test tier uses besides Node, and the
// Debian package that brings each. A tier whose peer is missing fails before its
// first test with one line that says what to install, not with an ENOENT
// minutes in. Nothing is skipped: CI installs everything
// (scripts/install-system-deps.sh), so there the check always passes.
import { accessSync, constants, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { AAVMF, findOvmf } from '../../server/lab/qemu.js';

/** The install-system-deps.sh groups that install test peers. */
type Group = 'runtime' | 'test' | 'image';

interface Peer {
  /** What the one line names: the command, or the file's purpose. */
  name: string;
  /** The Debian package that provides it. */
  pkg: string;
  group: Group;
  /** Present? Default: `name` is an executable on PATH. */
  present?: () => boolean;
}

function onPath(command: string, pathEnv = process.env.PATH ?? ''): boolean {
  return pathEnv.split(path.delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const cmd = (name: string, pkg: string, group: Group = 'test'): Peer => ({ name, pkg, group });

/** Network namespaces, veth pairs and bridges (server/lab/netlab.ts), nft rules. */
const NETWORK: Peer[] = [
  cmd('ip', 'iproute2', 'runtime'),
  cmd('unshare', 'util-linux'),
  cmd('nsenter', 'util-linux'),
  cmd('sysctl', 'procps'),
  cmd('nft', 'nftables'),
];

/** The real clients and servers the protocol suites talk to. */
const PROTOCOL_PEERS: Peer[] = [
  cmd('busybox', 'busybox'), // udhcpc and busybox tftp
  cmd('dhclient', 'isc-dhcp-client'),
  cmd('dhcrelay', 'isc-dhcp-relay'),
  cmd('etcd', 'etcd-server'), // store.backend: etcd (test/lib/etcd.ts)
  cmd('etcdctl', 'etcd-client'),
  cmd('faketime', 'faketime'), // an instance's clock moved ahead (etcd-clock-skew.test.ts)
  cmd('dnsmasq', 'dnsmasq-base'),
  cmd('rdisc6', 'ndisc6'),
  cmd('tftp', 'tftp-hpa'),
  cmd('curl', 'curl'),
  cmd('nbdinfo', 'libnbd-bin'),
  cmd('nbdkit', 'nbdkit'),
  cmd('nbd-server', 'nbd-server'),
  cmd('qemu-io', 'qemu-utils'),
  cmd('qemu-img', 'qemu-utils'),
  cmd('python3', 'python3'),
  cmd('chromium', 'chromium'), // the dashboard's browser
  {
    // The libnbd scripts run as /usr/bin/python3: Debian's module, whatever python3 comes first on PATH.
    name: '/usr/bin/python3 with libnbd (import nbd)',
    pkg: 'python3-libnbd',
    group: 'test',
    present: () => spawnSync('/usr/bin/python3', ['-c', 'import nbd'], { stdio: 'ignore' }).status === 0,
  },
  cmd('openssl', 'openssl'),
  cmd('jq', 'jq'),
  cmd('swtpm', 'swtpm'),
  cmd('swtpm_setup', 'swtpm-tools'),
  cmd('tpm2_createek', 'tpm2-tools'),
];

/** QEMU guests (server/lab/qemu.ts) and their firmware. */
const GUESTS: Peer[] = [
  cmd('qemu-system-x86_64', 'qemu-system-x86'),
  cmd('qemu-system-aarch64', 'qemu-system-arm'),
  { name: 'OVMF firmware', pkg: 'ovmf', group: 'test', present: () => findOvmf() !== undefined },
  { name: `arm64 UEFI firmware (${AAVMF})`, pkg: 'qemu-efi-aarch64', group: 'test', present: () => existsSync(AAVMF) },
];

const DOCKER: Peer[] = [
  cmd('docker', 'docker.io', 'image'),
  // The client alone only fails later, on the first build.
  {
    name: 'a running dockerd (bash scripts/start-dockerd.sh)',
    pkg: 'docker.io',
    group: 'image',
    present: () => existsSync('/var/run/docker.sock'),
  },
];

export interface TierNeeds {
  /** Network namespaces and ports below 1024 need root. */
  root: boolean;
  peers: Peer[];
  /** Files the build makes (`npm run build`), relative to the repository. */
  built: string[];
}

/** Per vitest project (vitest.config.ts). */
export const TIERS: Record<string, TierNeeds> = {
  unit: {
    root: false,
    // curl, jq and openssl: the kubeadm stand-in (imagebuild/kubernetes) is a shell script around them;
    // mkimage: U-Boot's own script image writer, the reference for server/boot/uboot/script-image.ts.
    peers: [
      cmd('curl', 'curl'),
      cmd('jq', 'jq'),
      cmd('strace', 'strace'),
      cmd('openssl', 'openssl'),
      cmd('sort', 'coreutils'),
      cmd('mkimage', 'u-boot-tools'),
    ],
    // No test of this tier starts the built CLI (vitest.config.ts): a fresh clone runs it unbuilt.
    built: [],
  },
  // api, config-cli, node-render and cli-usage run the built CLI, as operators do.
  protocols: { root: true, peers: [...NETWORK, ...PROTOCOL_PEERS, ...GUESTS], built: ['dist/server/cli/main.js'] },
  images: {
    root: true,
    peers: [
      ...NETWORK,
      ...DOCKER,
      cmd('debootstrap', 'debootstrap', 'image'),
      cmd('unsquashfs', 'squashfs-tools', 'image'),
      cmd('zstd', 'zstd', 'image'),
      cmd('cpio', 'cpio', 'image'),
      cmd('qemu-aarch64-static', 'qemu-user-static', 'image'),
      cmd('openssl', 'openssl', 'image'),
      cmd('busybox', 'busybox'),
      cmd('tftp', 'tftp-hpa'),
      cmd('curl', 'curl'),
      // The Ansible role's test (ansible/): Debian's ansible ships the docker connection plugin it uses.
      cmd('ansible-playbook', 'ansible'),
      cmd('ansible-lint', 'ansible-lint'),
    ],
    built: [],
  },
  lab: {
    root: true,
    peers: [...NETWORK, ...GUESTS, ...DOCKER, cmd('swtpm', 'swtpm'), cmd('curl', 'curl')],
    built: ['dist/server/cli/main.js'],
  },
};

export interface Situation {
  isRoot: boolean;
  present: (peer: Peer) => boolean;
  built: (file: string) => boolean;
}

function listed(names: string[]): string {
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]!}`;
}

/** The one line that says what `tier` lacks here and how to get it, or undefined when nothing is missing. */
export function whatIsMissing(tier: string, needs: TierNeeds, here: Situation): string | undefined {
  const parts: string[] = [];
  if (needs.root && !here.isRoot) parts.push('root (the tests create network namespaces and bind port 67: run them with sudo)');
  const missing = needs.peers.filter((p) => !here.present(p));
  // Several entries can share a package (unshare and nsenter): name each once.
  const names = [...new Set(missing.map((p) => p.name))];
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((p) => p.pkg))];
    const groups = [...new Set(missing.map((p) => p.group))];
    parts.push(
      `${listed(names)}: apt-get install ${pkgs.join(' ')} (scripts/install-system-deps.sh ${groups.join(' ')} installs ${pkgs.length === 1 ? 'it' : 'them'})`,
    );
  }
  const unbuilt = needs.built.filter((f) => !here.built(f));
  if (unbuilt.length > 0) parts.push(`${listed(unbuilt)}: npm run build`);
  return parts.length === 0 ? undefined : `the ${tier} tests need ${parts.join('; ')}`;
}

export function thisMachine(repoRoot: string): Situation {
  return {
    isRoot: process.getuid?.() === 0,
    present: (peer) => (peer.present ? peer.present() : onPath(peer.name)),
    built: (file) => existsSync(path.join(repoRoot, file)),
  };
}
