// A real etcd cluster (Debian etcd-server) for tests: one member per lab host, on
// the lab's segment only, each with a throw-away data directory. stop() ends the
// members this started (by PID, through their Background) and removes the directories.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer } from 'node:net';
import type { LabHost, NetLab } from '../../server/lab/netlab.js';
import { Background, run } from '../../server/lab/proc.js';

export interface EtcdCluster {
  /** Client URLs, http://<member>:2379. */
  endpoints: string[];
  /** etcdctl with these endpoints, run in the first member's namespace; resolves with its stdout. */
  ctl(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** A cluster in lab namespaces, whose members can be killed and started again (their data kept). */
export interface LabEtcdCluster extends EtcdCluster {
  /** SIGKILLs member `i` (its data directory stays). */
  kill(i: number): Promise<void>;
  /** Starts member `i` again on its data directory; resolves once it serves clients. */
  restart(i: number): Promise<void>;
}

const READY = (l: string) => l.includes('ready to serve client requests');

/** Starts one member on each of `hosts` (which have addresses) and resolves once every member serves clients. */
export async function startEtcd(lab: NetLab, hosts: LabHost[]): Promise<LabEtcdCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-'));
  const peers = hosts.map((h, i) => `m${i}=http://${h.address}:2380`).join(',');
  const endpoints = hosts.map((h) => `http://${h.address}:2379`);
  // With its data directory in place a member rejoins as itself (etcd ignores the --initial-* flags then).
  const spawnMember = (h: LabHost, i: number) =>
    lab.spawn(
      h.ns,
      'etcd',
      [
        `--name=m${i}`,
        `--data-dir=${path.join(dir, `m${i}`)}`,
        `--listen-client-urls=http://${h.address}:2379`,
        `--advertise-client-urls=http://${h.address}:2379`,
        `--listen-peer-urls=http://${h.address}:2380`,
        `--initial-advertise-peer-urls=http://${h.address}:2380`,
        `--initial-cluster=${peers}`,
        `--initial-cluster-token=${lab.id}`,
        '--initial-cluster-state=new',
      ],
      `etcd-m${i}`,
    );
  const members: Background[] = hosts.map(spawnMember);
  const stop = async () => {
    for (const m of members) await m.stop('SIGTERM', 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(members.map((m) => m.waitFor(READY, 60_000, 'etcd ready')));
  } catch (err) {
    await stop();
    throw err;
  }
  const first = hosts[0] as LabHost;
  return {
    endpoints,
    ctl: async (args) => {
      const r = await lab.exec(first.ns, 'env', ['ETCDCTL_API=3', 'etcdctl', `--endpoints=${endpoints.join(',')}`, ...args]);
      if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    stop,
    kill: async (i) => {
      await (members[i] as Background).stop('SIGKILL', 5000);
    },
    restart: async (i) => {
      const member = spawnMember(hosts[i] as LabHost, i);
      members[i] = member;
      await member.waitFor(READY, 60_000, `etcd m${i} ready again`);
    },
  };
}

export interface EtcdEntry {
  key: string;
  value: string;
}

/** Every key under `prefix`, read by etcdctl (its JSON output has the keys and values in base64). */
export async function etcdEntries(cluster: Pick<EtcdCluster, 'ctl'>, prefix: string): Promise<EtcdEntry[]> {
  const out = JSON.parse(await cluster.ctl(['get', '--prefix', prefix, '-w', 'json'])) as { kvs?: Array<{ key: string; value: string }> };
  const text = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
  return (out.kvs ?? []).map((kv) => ({ key: text(kv.key), value: text(kv.value) }));
}

/** A port free on loopback now (the kernel's choice), for a member that must listen there. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A loopback member that can be frozen (SIGSTOP): its connections stay open and nothing answers. */
export interface LoopbackEtcd extends EtcdCluster {
  freeze(): void;
  thaw(): void;
}

/**
 * TLS on the member's client URL (https://127.0.0.1:port): its server
 * certificate (with IP:127.0.0.1 in its names), the CA it trusts for client
 * certificates, and whether it requires one (--client-cert-auth). etcdctl (ctl)
 * uses `ctl`'s client certificate.
 */
export interface LoopbackEtcdTls {
  cert: string;
  key: string;
  ca: string;
  clientCertAuth: boolean;
  ctl: { cert: string; key: string };
}

/** One member on loopback, for tests that drive bootfarm's modules in this process. */
export async function startLoopbackEtcd(options: { tls?: LoopbackEtcdTls } = {}): Promise<LoopbackEtcd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const tls = options.tls;
  const scheme = tls ? 'https' : 'http';
  const member = Background.start(
    'etcd',
    [
      '--name=m0',
      `--data-dir=${path.join(dir, 'm0')}`,
      `--listen-client-urls=${scheme}://127.0.0.1:${client}`,
      `--advertise-client-urls=${scheme}://127.0.0.1:${client}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=m0=http://127.0.0.1:${peer}`,
      ...(tls
        ? [
            `--cert-file=${tls.cert}`,
            `--key-file=${tls.key}`,
            `--trusted-ca-file=${tls.ca}`,
            ...(tls.clientCertAuth ? ['--client-cert-auth'] : []),
          ]
        : []),
    ],
    'etcd',
  );
  const stop = async () => {
    // A frozen member would hold SIGTERM until the stop's SIGKILL: thawed first.
    member.child.kill('SIGCONT');
    await member.stop('SIGTERM', 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await member.waitFor((l) => l.includes('ready to serve client requests'), 60_000, 'etcd ready');
  } catch (err) {
    await stop();
    throw err;
  }
  const endpoints = [`${scheme}://127.0.0.1:${client}`];
  const ctlTls = tls ? [`--cacert=${tls.ca}`, `--cert=${tls.ctl.cert}`, `--key=${tls.ctl.key}`] : [];
  const ctl = async (args: string[]) => {
    const r = await run('etcdctl', [`--endpoints=${endpoints.join(',')}`, ...ctlTls, ...args]);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    endpoints,
    ctl,
    stop,
    freeze: () => member.child.kill('SIGSTOP'),
    thaw: () => member.child.kill('SIGCONT'),
  };
}

/** `size` members on loopback, one cluster, for tests that drive bootfarm's modules in this process; endpoints in member order. */
export async function startLoopbackCluster(size: number): Promise<EtcdCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-'));
  const ports: Array<{ client: number; peer: number }> = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const cluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members = ports.map((p, i) =>
    Background.start(
      'etcd',
      [
        `--name=m${i}`,
        `--data-dir=${path.join(dir, `m${i}`)}`,
        `--listen-client-urls=http://127.0.0.1:${p.client}`,
        `--advertise-client-urls=http://127.0.0.1:${p.client}`,
        `--listen-peer-urls=http://127.0.0.1:${p.peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${p.peer}`,
        `--initial-cluster=${cluster}`,
        `--initial-cluster-token=${path.basename(dir)}`,
        '--initial-cluster-state=new',
      ],
      `etcd-m${i}`,
    ),
  );
  const stop = async () => {
    for (const m of members) await m.stop('SIGTERM', 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(members.map((m) => m.waitFor((l) => l.includes('ready to serve client requests'), 60_000, 'etcd ready')));
  } catch (err) {
    await stop();
    throw err;
  }
  const endpoints = ports.map((p) => `http://127.0.0.1:${p.client}`);
  return {
    endpoints,
    ctl: async (args) => {
      const r = await run('etcdctl', [`--endpoints=${endpoints.join(',')}`, ...args]);
      if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    stop,
  };
}
