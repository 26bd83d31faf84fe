// `bootfarm status`: what the instances sharing one etcd (store.backend: etcd)
// say of themselves, and what etcd says of itself. Read from etcd only: it works
// from any host that reaches etcd, with no running bootfarm on it.
import type { Command } from 'commander';
import { Etcd3, type IStatusResponse } from 'etcd3';
import { loadConfig } from '../config/load.js';
import { SetupError } from '../errors.js';
import { possibleSkew, peerOffset, type OffsetBound } from '../store/clock-skew.js';
import { INSTANCE_TTL_S, parseInstance, readEtcdReference, type ImageHeld } from '../store/instance-registry.js';
import { etcdCredentials, etcdErrorText, loadEtcdTls, type EtcdTls } from '../store/etcd-tls.js';

/** The longest each etcd call may take: a status is asked by a person, who should not wait on a dead endpoint. */
const CALL_TIMEOUT_MS = 3000;

/** The longest text kept from a record, and the most entries of a list: anyone with write access to the prefix writes them. */
const MAX_TEXT = 200;
const MAX_ITEMS = 64;

/**
 * Text read from etcd made safe to print: control and format characters (ESC
 * sequences, CR, backspace, C1 controls, bidi overrides, line separators) shown
 * as escapes, cut at MAX_TEXT characters. A peer's record is untrusted: raw, it
 * could rewrite the terminal, hide lines or forge other instances' rows. Done
 * on the report itself, so --json carries the same text to whatever prints it.
 */
function printable(text: string): string {
  const chars = [...text];
  const kept = chars
    .slice(0, MAX_TEXT)
    .join('')
    .replace(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu, (c) => {
      const code = c.codePointAt(0) ?? 0;
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    });
  return chars.length > MAX_TEXT ? `${kept}... (${chars.length - MAX_TEXT} more characters)` : kept;
}

/** A list from a record, each entry printable, at most MAX_ITEMS of them (then how many were left out). */
function printableList(list: string[]): string[] {
  const kept = list.slice(0, MAX_ITEMS).map(printable);
  return list.length > MAX_ITEMS ? [...kept, `... (${list.length - MAX_ITEMS} more)`] : kept;
}

const printableOptional = (text: string | undefined) => (text === undefined ? undefined : printable(text));

interface MemberStatus {
  id: string;
  name: string;
  clientURLs: string[];
  /** What the member said of itself; undefined when it did not answer. */
  leader?: boolean | undefined;
  raftIndex?: string | undefined;
  raftTerm?: string | undefined;
  version?: string | undefined;
  dbSize?: number | undefined;
  error?: string | undefined;
}

interface InstanceStatus {
  id: string;
  hostname: string;
  address: string;
  version: string;
  /** Its uptime when it last wrote (both ends in its own clock, so skew does not enter). */
  uptimeSeconds: number;
  interfaces: string[];
  segments: string[];
  images: ImageHeld[];
  /** Its clock minus this host's, as an interval (clock-skew.ts peerOffset), and its largest possible magnitude. */
  skewFromHereMs: OffsetBound & { possible: number };
  /** What it measured itself. */
  stoppedBySkew: boolean;
  etcdSkewMs?: number | undefined;
  worstPeer?: string | undefined;
  worstPeerSkewMs?: number | undefined;
  /** Another live instance publishing the same id (a copied state directory), as it says of itself. */
  duplicateOf?: { hostname: string; address: string } | undefined;
}

export interface StatusReport {
  prefix: string;
  etcd: { endpoints: string[]; leader?: string | undefined; members: MemberStatus[]; thisHostSkewMs?: number | undefined };
  instances: InstanceStatus[];
}

async function memberStatus(endpoint: string, tls: EtcdTls | undefined): Promise<IStatusResponse> {
  const one = new Etcd3({
    hosts: endpoint,
    credentials: etcdCredentials(tls),
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: () => ({ deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
  try {
    return await one.maintenance.status();
  } finally {
    one.close();
  }
}

async function readStatus(endpoints: string[], prefix: string, tls: EtcdTls | undefined): Promise<StatusReport> {
  const client = new Etcd3({
    hosts: endpoints,
    credentials: etcdCredentials(tls),
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
  try {
    const base = prefix.replace(/\/+$/, '');
    let list;
    try {
      list = await client.cluster.memberList({});
    } catch (err) {
      throw new SetupError(`status: etcd at ${endpoints.join(', ')} did not answer (${etcdErrorText(err, tls)})`);
    }
    const members: MemberStatus[] = [];
    let leader: string | undefined;
    for (const m of list.members) {
      const row: MemberStatus = { id: m.ID, name: printable(m.name), clientURLs: printableList(m.clientURLs) };
      const url = m.clientURLs[0];
      try {
        if (!url) throw new Error('not started (no client URL)');
        const s = await memberStatus(url, tls);
        leader = s.leader;
        Object.assign(row, {
          leader: s.leader === m.ID,
          raftIndex: s.raftIndex,
          raftTerm: s.raftTerm,
          version: s.version,
          dbSize: Number(s.dbSize),
        });
      } catch (err) {
        row.error = printable(etcdErrorText(err, tls));
      }
      members.push(row);
    }
    const start = Date.now();
    let res;
    try {
      res = await client.getAll().prefix(`${base}/instances/`).exec();
    } catch (err) {
      throw new SetupError(`status: cannot read ${base}/instances/ from ${endpoints.join(', ')} (${etcdErrorText(err, tls)})`);
    }
    const end = Date.now();
    const instances: InstanceStatus[] = [];
    for (const kv of res.kvs) {
      const r = parseInstance(kv.value.toString());
      if (!r) continue;
      const offset = peerOffset(r.clock, start, end, INSTANCE_TTL_S * 1000);
      instances.push({
        id: printable(r.id),
        hostname: printable(r.hostname),
        address: printable(r.address),
        version: printable(r.version),
        uptimeSeconds: Math.max(0, Math.round((r.clock - r.startedAt) / 1000)),
        interfaces: printableList(r.interfaces),
        segments: printableList(r.segments),
        images: r.images.slice(0, MAX_ITEMS).map((i) => ({
          image: printable(i.image),
          current: printableOptional(i.current),
          versions: printableList(i.versions),
        })),
        skewFromHereMs: { ...offset, possible: possibleSkew(offset) },
        stoppedBySkew: r.skew.stopped,
        etcdSkewMs: r.skew.referenceSkewMs,
        worstPeer: printableOptional(r.skew.worstPeer),
        worstPeerSkewMs: r.skew.worstPeerSkewMs,
        duplicateOf: r.duplicateOf && { hostname: printable(r.duplicateOf.hostname), address: printable(r.duplicateOf.address) },
      });
    }
    instances.sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }));
    // What a majority of the members says, as the instances measure themselves (quorumReference).
    const { reference } = await readEtcdReference(endpoints, CALL_TIMEOUT_MS, tls);
    const thisHostSkewMs = reference && possibleSkew(reference);
    return { prefix: base, etcd: { endpoints, leader, members, thisHostSkewMs }, instances };
  } finally {
    client.close();
  }
}

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);

function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const { etcd } = report;
  lines.push(
    `etcd (${etcd.endpoints.join(', ')}), prefix ${report.prefix}: ${etcd.members.length} members, leader ${etcd.leader ?? 'unknown'}`,
  );
  for (const m of etcd.members)
    lines.push(
      m.error !== undefined
        ? `  member ${m.name || m.id}: no answer (${m.error})`
        : `  member ${m.name} ${m.id}${m.leader ? ' (leader)' : ''}: raft index ${m.raftIndex}, term ${m.raftTerm}, etcd ${m.version}, db ${m.dbSize} bytes`,
    );
  lines.push(`instances: ${report.instances.length}`);
  for (const i of report.instances) {
    const skew = i.skewFromHereMs;
    lines.push(
      `  ${i.address} ${i.hostname} ${i.id}: bootfarm ${i.version}, up ${i.uptimeSeconds}s, clock ${seconds(skew.lo)}..${seconds(skew.hi)} from here, ` +
        `${seconds(i.etcdSkewMs)} at most from etcd${i.stoppedBySkew ? ', NO NEW ADDRESSES (clock skew)' : ''}`,
    );
    if (i.duplicateOf)
      lines.push(
        `    NO NEW ADDRESSES: id also published by ${i.duplicateOf.hostname} (${i.duplicateOf.address}), another live instance (a copied state directory?)`,
      );
    lines.push(`    serves ${i.segments.join(', ') || '-'} on ${i.interfaces.join(', ') || '-'}`);
    for (const img of i.images)
      lines.push(`    image ${img.image}: current ${img.current ?? '-'}, versions ${img.versions.join(', ') || '-'}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerStatusCommand(program: Command, fail: (err: unknown) => never): void {
  program
    .command('status')
    .description('instances sharing etcd (store.backend: etcd): age, version, clock skew, images held; etcd members, leader and raft index')
    .requiredOption('-c, --config <file>', 'configuration file (YAML) naming store.etcd')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      try {
        const config = loadConfig(opts.config);
        const etcd = config.store.etcd;
        if (config.store.backend !== 'etcd' || !etcd)
          throw new SetupError(
            `status: ${opts.config} has store.backend ${config.store.backend}; status reads instances from etcd (store.backend: etcd)`,
          );
        const report = await readStatus(etcd.endpoints, etcd.prefix, loadEtcdTls(etcd.tls));
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        process.exit(0);
      } catch (err) {
        fail(err);
      }
    });
}
