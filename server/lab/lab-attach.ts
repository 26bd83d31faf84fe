// `bootfarm lab run --server attach:<container>`: the lab's nodes boot from a
// bootfarm someone else deployed (the Ansible role ansible/roles/bootfarm, run by
// the operator or test/integration/lab-ansible.test.ts) in a running Docker
// container, e.g. a Debian container with systemd as PID 1. The lab puts that
// container on its bridge (a veth into the container's network namespace, as
// server-container.ts does for its own), writes the lab's configuration as an
// Ansible inventory for the role, and waits until bootfarm answers on the lab's
// address: the lab never writes the container's configuration nor starts bootfarm.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SetupError } from '../errors.js';
import { run, runOk } from './proc.js';
import { attachToBridge } from './server-container.js';
import type { NetLab, LabHost } from './netlab.js';

/** Where the inventory puts the cluster's files on the target: the role's bootfarm_config_files land in /etc/bootfarm (its default). */
const TARGET_CONFIG_DIR = '/etc/bootfarm';

/** `attach:<name>` → the container's name; undefined for host or docker. */
export function attachTarget(server: string): string | undefined {
  if (!server.startsWith('attach:')) return undefined;
  const name = server.slice('attach:'.length);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    throw new SetupError(`--server attach:<container>: expected a container name, got ${JSON.stringify(name)}`);
  return name;
}

type Json = Record<string, unknown>;
const section = (config: Json, key: string): Json => (config[key] as Json | undefined) ?? {};

/** What a lab node says in the role's per-node variables; a key the role cannot express is an error. */
function nodeVars(node: Json): Json {
  const known: Record<string, string> = {
    mac: 'bootfarm_mac',
    hostname: 'bootfarm_hostname',
    arch: 'bootfarm_arch',
    piSerial: 'bootfarm_pi_serial',
    piModel: 'bootfarm_pi_model',
    image: 'bootfarm_image',
  };
  const vars: Json = {};
  for (const [key, value] of Object.entries(node)) {
    const name = known[key];
    if (!name) throw new SetupError(`--server attach: the Ansible role has no node variable for ${key} (node ${String(node.hostname)})`);
    vars[name] = value;
  }
  return vars;
}

/**
 * The lab's configuration (lab-config.ts labServerConfig, with the cluster's CA and
 * kubeconfig as files on this host) as an inventory for ansible/playbook.yml: the
 * container as the bootfarm server (docker connection), the lab's nodes as the
 * group bootfarm_nodes. The role's own paths stand for server.stateDir, tftp.root
 * and images.dir; the cluster's files are copied to the target (bootfarm_config_files).
 * dhcp.routerAdvertisements is left out: radvd needs CAP_NET_RAW, which the unit
 * does not grant (iPXE then waits its ~16 s for IPv6).
 */
function labInventory(container: string, config: Json): Json {
  const dhcp = section(config, 'dhcp');
  const kube = section(config, 'kubernetes');
  const { caCertFile, kubeconfig, ...kubeRest } = kube as { caCertFile?: string; kubeconfig?: string } & Json;
  const files: Record<string, string> = {};
  const kubernetes: Json = { ...kubeRest };
  if (caCertFile) {
    files['kube-ca.crt'] = caCertFile;
    kubernetes.caCertFile = `${TARGET_CONFIG_DIR}/kube-ca.crt`;
  }
  if (kubeconfig) {
    files['kubeconfig'] = kubeconfig;
    kubernetes.kubeconfig = `${TARGET_CONFIG_DIR}/kubeconfig`;
  }
  const handled = new Set([
    'server',
    'dhcp',
    'tftp',
    'http',
    'nbd',
    'images',
    'defaults',
    'profiles',
    'nodes',
    'unknownNodes',
    'kubernetes',
  ]);
  const extra = Object.fromEntries(Object.entries(config).filter(([key]) => !handled.has(key)));
  const server: Json = {
    ansible_connection: 'community.docker.docker',
    // docker exec runs as root already; the playbook's become would look for sudo.
    ansible_become: false,
    bootfarm_server_address: section(config, 'server').address,
    bootfarm_dhcp_mode: dhcp.mode,
    bootfarm_dhcp_interface: dhcp.interface,
    bootfarm_dhcp_subnets: dhcp.subnets ?? [],
    bootfarm_http_port: section(config, 'http').port ?? 8080,
    bootfarm_nbd_port: section(config, 'nbd').port ?? 10809,
    bootfarm_default_image: section(config, 'images').default ?? '',
    bootfarm_unknown_nodes: config.unknownNodes ?? 'ignore',
    bootfarm_defaults: config.defaults ?? {},
    bootfarm_profiles: config.profiles ?? [],
    bootfarm_config_files: files,
    bootfarm_config_extra: { ...extra, ...(Object.keys(kubernetes).length ? { kubernetes } : {}) },
  };
  const nodes = Object.fromEntries(((config.nodes as Json[] | undefined) ?? []).map((n) => [String(n.hostname), nodeVars(n)]));
  return { all: { children: { bootfarm_servers: { hosts: { [container]: server } }, bootfarm_nodes: { hosts: nodes } } } };
}

export interface AttachedServer {
  /** The bridge-side veth end. */
  hostIfname: string;
  /** Takes the container off the bridge (its eth0 goes with the veth); the container itself is left running. */
  detach(): Promise<void>;
}

/** Puts the running container `name` on the lab's bridge as eth0 with `address` (CIDR). */
export async function attachContainer(net: NetLab, name: string, address: string): Promise<AttachedServer> {
  const state = await run('docker', ['inspect', '-f', '{{.State.Running}} {{.State.Pid}}', name]);
  const [running, pid] = state.stdout.trim().split(' ');
  if (state.code !== 0 || running !== 'true' || !Number(pid))
    throw new SetupError(`--server attach:${name}: no running container of that name (${(state.stderr || state.stdout).trim()})`);
  const hostIfname = `${net.id}a`.slice(0, 15);
  await attachToBridge(Number(pid), { mode: 'bridge', bridge: 'br0', netns: net.switchNs, address }, hostIfname);
  return {
    hostIfname,
    detach: async () => {
      await run('ip', ['-n', net.switchNs, 'link', 'del', hostIfname]);
    },
  };
}

/**
 * Writes the inventory beside the lab's other files and waits until bootfarm
 * answers /healthz on `http` from the operator's host, for at most timeoutMs:
 * the operator (or a test) deploys with ansible-playbook meanwhile.
 */
export async function awaitDeployment(o: {
  net: NetLab;
  from: LabHost;
  workDir: string;
  container: string;
  config: Json;
  http: string;
  timeoutMs: number;
  log: (line: string) => void;
}): Promise<void> {
  const inventory = path.join(o.workDir, 'ansible-inventory.json');
  // JSON, which is YAML: every MAC stays a quoted string (YAML 1.1 reads 52:54:00:00:00:01 as a number).
  writeFileSync(inventory, `${JSON.stringify(labInventory(o.container, o.config), null, 2)}\n`);
  o.log(
    `waiting for bootfarm in container ${o.container} to answer on ${o.http}: deploy it with ansible-playbook -i ${inventory} ansible/playbook.yml -e bootfarm_package_tarball=<npm pack tarball>`,
  );
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const r = await o.net.exec(o.from.ns, 'curl', ['-sf', '--max-time', '3', '-o', '/dev/null', `${o.http}/healthz`], 10_000);
    if (r.code === 0) return;
    if (Date.now() > deadline)
      throw new SetupError(`--server attach:${o.container}: bootfarm did not answer on ${o.http} within ${o.timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** The journal of the unit bootfarm in the container, for the lab's work dir. */
export async function attachedLogs(container: string): Promise<string> {
  return runOk('docker', ['exec', container, 'journalctl', '-u', 'bootfarm', '-o', 'cat', '--no-pager'], 60_000).catch(
    (err: unknown) => `journal unavailable: ${(err as Error).message}`,
  );
}
