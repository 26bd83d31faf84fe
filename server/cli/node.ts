// `bootfarm node list | show | add | rm | enrol | approve`: the HTTP API of a running
// bootfarm, from the shell. The server owns the state; the CLI never writes it.
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { SetupError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { parsePublic } from '../tpm/public-area.js';

interface Target {
  base: string;
  token: string | undefined;
}

/** The options withTarget adds to a command. */
interface TargetOptions {
  config?: string;
  server?: string;
  token?: string;
}

function target(opts: TargetOptions): Target {
  const config = opts.config ? loadConfig(opts.config) : undefined;
  const base = opts.server ?? (config ? `http://${config.server.address}:${config.http.port}` : undefined);
  if (!base) throw new SetupError('say where bootfarm runs: --config FILE or --server http://host:port');
  return { base: base.replace(/\/$/, ''), token: opts.token ?? config?.api.token ?? process.env.BOOTFARM_API_TOKEN };
}

async function call(t: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${t.base}/api/v1${path}`, {
      method,
      headers: {
        ...(t.token ? { authorization: `Bearer ${t.token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new SetupError(
      `cannot reach bootfarm at ${t.base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    throw new SetupError(
      `${method} ${path}: HTTP ${res.status} from ${t.base} is not JSON: is it bootfarm's HTTP port? (${JSON.stringify(text.slice(0, 80))})`,
    );
  }
  if (!res.ok) {
    const e = data as { message?: string; problems?: string[] } | undefined;
    throw new SetupError(`${method} ${path}: HTTP ${res.status}: ${e?.problems?.join('; ') || e?.message || text}`);
  }
  return data;
}

interface NodeRow {
  mac: string;
  hostname: string;
  arch: string;
  ip?: string;
  image: string;
  profiles: string[];
  origin: string;
  lease?: { ip: string };
  boot?: { state: string; approval?: 'pending' | 'approved' };
  lastEvent?: { type: string; at: string };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `k=v` options into a labels object. */
function labels(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new SetupError(`--label ${item}: expected key=value`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function readEk(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new SetupError(`--ek ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    parsePublic(bytes);
  } catch (err) {
    throw new SetupError(`--ek ${file}: not a TPM2B_PUBLIC (tpm2-tools' tss format): ${(err as Error).message}`);
  }
  return bytes.toString('base64');
}

interface NodeFields {
  hostname?: string;
  arch?: string;
  ip?: string;
  profile?: string;
  image?: string;
  piSerial?: string;
  piModel?: string;
  label?: string[];
  ek?: string;
}

function nodeBody(opts: NodeFields): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (opts.hostname) body.hostname = opts.hostname;
  if (opts.arch) body.arch = opts.arch;
  if (opts.ip) body.ip = opts.ip;
  if (opts.profile) body.profile = opts.profile;
  if (opts.image) body.image = opts.image;
  if (opts.piSerial) body.piSerial = opts.piSerial;
  if (opts.piModel) body.piModel = Number(opts.piModel);
  const l = labels(opts.label);
  if (l) body.labels = l;
  // The server gets the EK's bytes, never a path on this machine (kubernetes.admission: tpm).
  if (opts.ek) body.tpm = { ek: readEk(opts.ek) };
  return body;
}

export function registerNodeCommands(program: Command, fail: (err: unknown) => never): void {
  const node = program.command('node').description('nodes of a running bootfarm, through its HTTP API');
  const withTarget = (cmd: Command) =>
    cmd
      .option('-c, --config <file>', 'configuration file: finds the server address, HTTP port and api.token')
      .option('--server <url>', 'bootfarm base URL, e.g. http://10.9.0.1:8080')
      .option('--token <token>', 'API bearer token (default: api.token or BOOTFARM_API_TOKEN)');
  const run = (fn: () => Promise<void>) => fn().catch((err: unknown) => fail(err));
  const fields = (cmd: Command) =>
    cmd
      .option('--arch <arch>', 'amd64, arm64 or armhf')
      .option('--ip <address>', 'reserved address')
      .option('--profile <name>', 'profile to apply')
      .option('--image <name>', 'image to boot')
      .option('--pi-serial <hex>', 'Raspberry Pi serial (8 hex digits)')
      .option('--pi-model <n>', 'Raspberry Pi model: 3, 4 or 5')
      .option('--label <key=value>', 'a label (repeatable)', collect)
      .option(
        '--ek <file>',
        "the node's TPM endorsement key public area (tpm2_createek -u FILE, or tpm2_readpublic -c 0x81010001 -o FILE) for kubernetes.admission: tpm",
      );

  withTarget(node.command('list').description('list nodes and discovered machines')).action((opts: TargetOptions) =>
    run(async () => {
      const t = target(opts);
      const { nodes } = (await call(t, 'GET', '/nodes')) as { nodes: NodeRow[] };
      const rows = [['MAC', 'HOSTNAME', 'ARCH', 'IMAGE', 'PROFILES', 'FROM', 'ADDRESS', 'BOOT', 'LAST EVENT']];
      for (const n of nodes)
        rows.push([
          n.mac,
          n.hostname,
          n.arch,
          n.image,
          n.profiles.join(',') || '-',
          n.origin,
          n.lease?.ip ?? n.ip ?? '-',
          n.boot ? `${n.boot.state}${n.boot.approval === 'pending' ? ' (approval pending)' : ''}` : '-',
          n.lastEvent ? `${n.lastEvent.type} ${n.lastEvent.at}` : '-',
        ]);
      process.stdout.write(`${table(rows)}\n`);
      const { machines } = (await call(t, 'GET', '/discovered')) as {
        machines: Array<{ mac: string; arch?: string; firmware: string; piSerial?: string; firstSeen: string; lastSeen: string }>;
      };
      if (machines.length > 0) {
        const disc = [['DISCOVERED MAC', 'ARCH', 'FIRMWARE', 'PI SERIAL', 'FIRST SEEN', 'LAST SEEN']];
        for (const m of machines) disc.push([m.mac, m.arch ?? '-', m.firmware, m.piSerial ?? '-', m.firstSeen, m.lastSeen]);
        process.stdout.write(`\n${table(disc)}\n`);
      }
    }),
  );

  withTarget(
    node.command('show').description('one node: effective configuration, lease, boot state and timeline').argument('<mac>'),
  ).action((mac: string, opts: TargetOptions) =>
    run(async () => {
      const t = target(opts);
      const shown = await call(t, 'GET', `/nodes/${mac}`);
      const { events } = (await call(t, 'GET', `/nodes/${mac}/events`)) as { events: unknown[] };
      process.stdout.write(`${JSON.stringify({ ...(shown as object), events }, null, 2)}\n`);
    }),
  );

  fields(
    withTarget(node.command('add').description('add a node').argument('<mac>').requiredOption('--hostname <name>', 'host name')),
  ).action((mac: string, opts: NodeFields & { config?: string }) =>
    run(async () => {
      const created = (await call(target(opts), 'POST', '/nodes', { mac, ...nodeBody(opts) })) as NodeRow;
      process.stdout.write(
        `added ${created.hostname} (${created.mac}), image ${created.image}${created.profiles.length ? `, profiles ${created.profiles.join(',')}` : ''}\n`,
      );
    }),
  );

  withTarget(node.command('rm').description('remove a node added through the API').argument('<mac>')).action(
    (mac: string, opts: TargetOptions) =>
      run(async () => {
        await call(target(opts), 'DELETE', `/nodes/${mac}`);
        process.stdout.write(`removed ${mac}\n`);
      }),
  );

  withTarget(
    node
      .command('approve')
      .description("approve the node's boot in flight (kubernetes.admission: approve): its join token is released")
      .argument('<node>', 'MAC or host name'),
  ).action((name: string, opts: TargetOptions) =>
    run(async () => {
      const t = target(opts);
      let mac = name;
      if (!/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(name)) {
        const { nodes } = (await call(t, 'GET', '/nodes')) as { nodes: NodeRow[] };
        const found = nodes.find((n) => n.hostname === name);
        if (!found) throw new SetupError(`no node named ${name}`);
        mac = found.mac;
      }
      const approved = (await call(t, 'POST', `/nodes/${mac}/approve`)) as NodeRow;
      process.stdout.write(`approved the boot of ${approved.hostname} (${approved.mac})\n`);
    }),
  );

  fields(
    withTarget(
      node
        .command('enrol')
        .description('turn a discovered machine into a node')
        .argument('<mac>')
        .requiredOption('--hostname <name>', 'host name'),
    ),
  ).action((mac: string, opts: NodeFields & { config?: string }) =>
    run(async () => {
      const created = (await call(target(opts), 'POST', `/discovered/${mac}/enrol`, nodeBody(opts))) as NodeRow;
      process.stdout.write(`enrolled ${created.hostname} (${created.mac}), arch ${created.arch}, image ${created.image}\n`);
    }),
  );
}
