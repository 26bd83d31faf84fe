// Reads, validates and resolves the YAML configuration file.
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate, createHash } from 'node:crypto';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, type Document, type Node as YamlNode } from 'yaml';
import { Value } from 'typebox/value';
import { ConfigSchema, type ConfigFile, type ProfileEntry } from './schema.js';
import { parseLtsConf, type LtsConfFile } from './lts-conf.js';
import { schemaAt, type AnnotatedSchema } from './schema-walk.js';
import type { ConfigLayer, ResolvedConfig, ResolvedKubernetes, ResolvedProfile } from './types.js';
import { DEFAULT_DHCP_LIMITS, DEFAULT_DRAIN_SECONDS, DEFAULT_MAX_DISCOVERED } from './defaults.js';
import { ConfigError, keyPath, type ConfigProblem } from './errors.js';
import { cidrBroadcast, cidrContains, ipv4ToNumber, numberToIpv4, parseCidr, type Cidr } from '../util/ipv4.js';
import { normalizeMac } from '../util/mac.js';
import { piHttpProblems } from '../pi/config-check.js';
import { piNodeProblems } from './pi-nodes.js';

/**
 * store.etcd.claimTimeoutMs: a healthy etcd answers a claim in milliseconds, and
 * udhcpc and ISC dhclient wait seconds for a reply; one second keeps a reply
 * that cannot be given from holding a request longer than the client waits.
 */
const DEFAULT_CLAIM_TIMEOUT_MS = 1000;

/** `1h30m`, `90s` -> seconds. The schema has checked the shape. */
function parseDuration(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m) return NaN;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** sha256 of the certificate's DER SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash (RFC 7469 style). */
export function caCertHash(pem: string): string {
  const cert = new X509Certificate(pem);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** The `expected` phrase of the configuration schema's leaf at a path. */
function expectedAt(segments: ReadonlyArray<string | number>): string | undefined {
  return schemaAt(ConfigSchema, segments)?.expected;
}

/**
 * What a value of the wrong kind was expected to be. Sections and lists carry no
 * phrase of their own; their JSON Schema type says what they are, so `dhcp: off`
 * is refused as "expected a mapping", not in the schema library's words.
 */
function expectedValueAt(segments: ReadonlyArray<string | number>): string | undefined {
  const schema: (AnnotatedSchema & { type?: unknown }) | undefined = schemaAt(ConfigSchema, segments);
  if (schema?.expected !== undefined) return schema.expected;
  return schema?.type === 'object' ? 'a mapping' : schema?.type === 'array' ? 'a list' : undefined;
}

function pointerToSegments(pointer: string): Array<string | number> {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => {
      const text = s.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^\d+$/.test(text) ? Number(text) : text;
    });
}

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  private position(node: YamlNode | null | undefined): { line: number | undefined; column: number | undefined } {
    const offset = node?.range?.[0];
    if (offset === undefined) return { line: undefined, column: undefined };
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }

  /** The node at a path, or the nearest ancestor that exists. */
  nodeAt(segments: ReadonlyArray<string | number>): YamlNode | undefined {
    for (let n = segments.length; n >= 0; n--) {
      const node = this.doc.getIn(segments.slice(0, n), true) as YamlNode | undefined;
      if (node && typeof node === 'object' && 'range' in node) return node;
    }
    return this.doc.contents ?? undefined;
  }

  /** The key node of `name` inside the map at `segments` (for unknown-key errors). */
  keyNode(segments: ReadonlyArray<string | number>, name: string): YamlNode | undefined {
    const parent = this.doc.getIn(segments, true);
    if (isMap(parent)) {
      for (const pair of parent.items) {
        const key = pair.key as YamlNode | null;
        if (key && typeof key === 'object' && 'value' in key && String((key as { value: unknown }).value) === name) return key;
      }
    }
    return undefined;
  }

  problem(segments: ReadonlyArray<string | number>, message: string, node?: YamlNode): ConfigProblem {
    return { file: this.file, ...this.position(node ?? this.nodeAt(segments)), key: keyPath(segments), message };
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (isSeq(value) || Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  // What is left of parsed YAML: numbers, booleans, bigints, null.
  return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null
    ? String(value)
    : typeof value;
}

function valueAt(root: unknown, segments: ReadonlyArray<string | number>): unknown {
  let cur: unknown = root;
  for (const s of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
}

function schemaProblems(data: unknown, locate: Locator): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  // TypeBox stops descending after the first failing section, so each top-level
  // section is checked on its own too: the user sees every problem in one run.
  const sections = (ConfigSchema as unknown as { properties: Record<string, Parameters<typeof Value.Errors>[0]> }).properties;
  const errors = [...Value.Errors(ConfigSchema, data)].filter((e) => e.instancePath === '');
  for (const [name, sub] of Object.entries(sections)) {
    const value = (data as Record<string, unknown>)[name];
    if (value === undefined) continue;
    for (const e of Value.Errors(sub, value)) errors.push({ ...e, instancePath: `/${name}${e.instancePath}` });
  }
  for (const err of errors) {
    const segments = pointerToSegments(err.instancePath);
    let problem: ConfigProblem;
    if (err.keyword === 'additionalProperties') {
      const names = (err.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      for (const name of names) {
        const parent = schemaAt(ConfigSchema, segments);
        const allowed = Object.keys(parent?.properties ?? {});
        const message = parent?.keyExpected
          ? `invalid key; expected ${parent.keyExpected}`
          : `unknown key; expected one of ${allowed.join(', ')}`;
        const p = locate.problem([...segments, name], message, locate.keyNode(segments, name));
        const id = `${p.key}|${p.message}`;
        if (!seen.has(id)) {
          seen.add(id);
          problems.push(p);
        }
      }
      continue;
    } else if (err.keyword === 'required') {
      const missing = (err.params as { requiredProperties?: string[] }).requiredProperties ?? [];
      for (const name of missing) {
        const p = locate.problem(
          [...segments, name],
          `missing; expected ${expectedAt([...segments, name]) ?? 'a value'}`,
          locate.nodeAt(segments),
        );
        const id = `${p.key}|${p.message}`;
        if (!seen.has(id)) {
          seen.add(id);
          problems.push(p);
        }
      }
      continue;
    } else if (err.keyword === 'boolean') {
      continue; // reported through additionalProperties
    } else {
      const wanted = expectedValueAt(segments) ?? err.message;
      problem = locate.problem(segments, `expected ${wanted}, got ${describeValue(valueAt(data, segments))}`);
    }
    const id = problem.key;
    if (!seen.has(id)) {
      seen.add(id);
      problems.push(problem);
    }
  }
  return problems;
}

/** Checks the schema cannot express: networks, ranges, duplicates, directories that must exist. */
function semanticProblems(cfg: ConfigFile, locate: Locator, configDir: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  // A mistyped override directory would silently fall back to the built-in templates.
  const templatesDir = cfg.boot?.templatesDir;
  if (templatesDir && !statSync(resolvePath(configDir, templatesDir), { throwIfNoEntry: false })?.isDirectory()) {
    problems.push(
      locate.problem(
        ['boot', 'templatesDir'],
        `expected an existing directory of .hbs templates, got ${JSON.stringify(templatesDir)} (resolved to ${resolvePath(configDir, templatesDir)})`,
      ),
    );
  }
  if (cfg.store?.backend === 'etcd' && !cfg.store.etcd)
    problems.push(locate.problem(['store', 'backend'], 'expected a store.etcd section with endpoints when the backend is etcd'));
  const subnets: Array<{ cidr: Cidr; index: number }> = [];
  (cfg.dhcp?.subnets ?? []).forEach((s, index) => {
    const base: Array<string | number> = ['dhcp', 'subnets', index];
    const cidr = parseCidr(s.cidr);
    if (!cidr) {
      problems.push(locate.problem([...base, 'cidr'], `expected an IPv4 network like 10.9.0.0/24, got ${JSON.stringify(s.cidr)}`));
      return;
    }
    subnets.push({ cidr, index });
    const [first, last] = s.range.map(ipv4ToNumber) as [number, number];
    // The schema's tuple bounds the range from below only: a third address would be ignored unseen.
    const given: readonly string[] = s.range;
    if (given.length !== 2) {
      problems.push(
        locate.problem([...base, 'range'], `expected [first, last] addresses of the dynamic pool, got ${given.length} addresses`),
      );
    } else if (!cidrContains(cidr, first) || !cidrContains(cidr, last)) {
      problems.push(locate.problem([...base, 'range'], `expected both ends inside ${s.cidr}, got [${s.range.join(', ')}]`));
    } else if (first > last) {
      problems.push(locate.problem([...base, 'range'], `expected [first, last] with first <= last, got [${s.range.join(', ')}]`));
    } else if (first === cidr.network || last === cidrBroadcast(cidr)) {
      problems.push(locate.problem([...base, 'range'], `expected a range that excludes the network and broadcast addresses of ${s.cidr}`));
    }
    if (s.router && !cidrContains(cidr, ipv4ToNumber(s.router))) {
      problems.push(locate.problem([...base, 'router'], `expected an address inside ${s.cidr}, got ${s.router}`));
    }
  });
  const mode = cfg.dhcp?.mode;
  if (cfg.dhcp?.routerAdvertisements && !cfg.dhcp.interface) {
    problems.push(
      locate.problem(['dhcp', 'routerAdvertisements'], 'expected dhcp.interface to be set too: advertisements are sent on that interface'),
    );
  }
  // Node's HTTP server refuses a headers deadline past the whole request's.
  const headersTimeout = cfg.http?.headersTimeoutSeconds ?? 10;
  const requestTimeout = cfg.http?.requestTimeoutSeconds ?? 30;
  if (headersTimeout > requestTimeout) {
    problems.push(
      locate.problem(
        ['http', cfg.http?.headersTimeoutSeconds !== undefined ? 'headersTimeoutSeconds' : 'requestTimeoutSeconds'],
        `expected http.headersTimeoutSeconds (${headersTimeout}) <= http.requestTimeoutSeconds (${requestTimeout})`,
      ),
    );
  }
  if (mode === 'full' && subnets.length === 0) {
    problems.push(locate.problem(['dhcp', 'subnets'], 'expected at least one subnet when dhcp.mode is full'));
  }
  const macs = new Map<string, number>();
  const ips = new Map<string, number>();
  const names = new Map<string, number>();
  (cfg.nodes ?? []).forEach((n, index) => {
    const base: Array<string | number> = ['nodes', index];
    const mac = normalizeMac(n.mac);
    const dupMac = macs.get(mac);
    if (dupMac !== undefined) problems.push(locate.problem([...base, 'mac'], `expected a unique MAC, but nodes[${dupMac}] has ${mac} too`));
    macs.set(mac, index);
    const dupName = names.get(n.hostname.toLowerCase());
    if (dupName !== undefined)
      problems.push(
        locate.problem([...base, 'hostname'], `expected a unique hostname, but nodes[${dupName}] is ${cfg.nodes?.[dupName]?.hostname} too`),
      );
    names.set(n.hostname.toLowerCase(), index);
    if (n.ip) {
      const dupIp = ips.get(n.ip);
      if (dupIp !== undefined)
        problems.push(locate.problem([...base, 'ip'], `expected a unique address, but nodes[${dupIp}] has ${n.ip} too`));
      ips.set(n.ip, index);
      if (mode === 'full' && !subnets.some((s) => cidrContains(s.cidr, ipv4ToNumber(n.ip as string)))) {
        problems.push(locate.problem([...base, 'ip'], `expected an address inside one of dhcp.subnets, got ${n.ip}`));
      }
    }
  });
  const profileNames = new Map<string, number>();
  (cfg.profiles ?? []).forEach((profile, index) => {
    const dup = profileNames.get(profile.name);
    if (dup !== undefined)
      problems.push(
        locate.problem(['profiles', index, 'name'], `expected a unique profile name, but profiles[${dup}] is ${profile.name} too`),
      );
    profileNames.set(profile.name, index);
  });
  (cfg.nodes ?? []).forEach((n, index) => {
    if (n.profile && !profileNames.has(n.profile)) {
      problems.push(
        locate.problem(
          ['nodes', index, 'profile'],
          `expected the name of a profile (${[...profileNames.keys()].join(', ') || 'none are defined'}), got ${JSON.stringify(n.profile)}`,
        ),
      );
    }
  });
  const k8s = cfg.kubernetes;
  if (k8s) {
    if (!k8s.caCertFile === !k8s.caCertHash)
      problems.push(
        locate.problem(['kubernetes'], 'expected exactly one of caCertFile (the cluster CA, PEM) or caCertHash (sha256:<hex>)'),
      );
    if (!k8s.kubeconfig === !k8s.token)
      problems.push(
        locate.problem(
          ['kubernetes'],
          'expected exactly one of kubeconfig (mint a token per node) or token (one static token, discouraged)',
        ),
      );
    if (k8s.caCertFile) {
      const file = resolvePath(configDir, k8s.caCertFile);
      try {
        caCertHash(readFileSync(file, 'utf8'));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        problems.push(
          locate.problem(
            ['kubernetes', 'caCertFile'],
            `expected a readable PEM certificate, got ${JSON.stringify(k8s.caCertFile)} (${code ? `cannot read it: ${code}` : (err as Error).message})`,
          ),
        );
      }
    }
    if (k8s.kubeconfig && !statSync(resolvePath(configDir, k8s.kubeconfig), { throwIfNoEntry: false })?.isFile()) {
      problems.push(
        locate.problem(['kubernetes', 'kubeconfig'], `expected an existing kubeconfig file, got ${JSON.stringify(k8s.kubeconfig)}`),
      );
    }
    if (k8s.tokenTtl !== undefined && !(parseDuration(k8s.tokenTtl) > 0))
      problems.push(
        locate.problem(['kubernetes', 'tokenTtl'], `expected a duration longer than zero, got ${JSON.stringify(k8s.tokenTtl)}`),
      );
    if (k8s.version !== undefined && minorVersion(k8s.version) < 22)
      problems.push(
        locate.problem(['kubernetes', 'version'], `expected v1.22 or later (kubeadm's v1beta3 config API), got ${k8s.version}`),
      );
  }
  problems.push(...piHttpProblems(cfg, configDir, (segments, message) => locate.problem(segments, message)));
  problems.push(...piNodeProblems(cfg, (segments, message) => locate.problem(segments, message)));
  return problems;
}

function minorVersion(version: string): number {
  return Number(/^v?1\.(\d+)/.exec(version)?.[1] ?? NaN);
}

/** Reads and parses every lts.conf the defaults and profiles import; problems name the lts file and line. */
function loadLtsFiles(cfg: ConfigFile, locate: Locator, configDir: string): { files: Map<string, LtsConfFile>; problems: ConfigProblem[] } {
  const files = new Map<string, LtsConfFile>();
  const problems: ConfigProblem[] = [];
  const wanted: Array<{ segments: Array<string | number>; path: string }> = [];
  if (cfg.defaults?.ltsFile) wanted.push({ segments: ['defaults', 'ltsFile'], path: cfg.defaults.ltsFile });
  (cfg.profiles ?? []).forEach((p, i) => {
    if (p.ltsFile) wanted.push({ segments: ['profiles', i, 'ltsFile'], path: p.ltsFile });
  });
  for (const { segments, path: given } of wanted) {
    const file = resolvePath(configDir, given);
    if (files.has(file)) continue;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(
        locate.problem(
          segments,
          `expected a readable lts.conf file, got ${JSON.stringify(given)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        ),
      );
      continue;
    }
    const parsed = parseLtsConf(text);
    if (!parsed.ok) {
      for (const p of parsed.problems) problems.push({ file, line: p.line, column: 1, key: '', message: p.message });
      continue;
    }
    files.set(file, parsed.file);
  }
  return { files, problems };
}

function resolveLayer(
  layer: Omit<ProfileEntry, 'name' | 'match'> | undefined,
  configDir: string,
  ltsFiles: Map<string, LtsConfFile>,
): ConfigLayer {
  if (!layer) return {};
  const ltsPath = layer.ltsFile ? resolvePath(configDir, layer.ltsFile) : undefined;
  const parsed = ltsPath ? ltsFiles.get(ltsPath) : undefined;
  return {
    image: layer.image,
    lts: layer.lts,
    ltsFile: ltsPath && parsed ? { path: ltsPath, parsed } : undefined,
    labels: layer.labels,
    taints: layer.taints,
    join: layer.join,
    kernelArgs: layer.kernelArgs,
    secureBoot: layer.secureBoot,
  };
}

function resolveKubernetes(k8s: NonNullable<ConfigFile['kubernetes']>, configDir: string): ResolvedKubernetes {
  const version = k8s.version ?? 'v1.31';
  const hash = k8s.caCertFile ? caCertHash(readFileSync(resolvePath(configDir, k8s.caCertFile), 'utf8')) : (k8s.caCertHash as string);
  return {
    apiServer: k8s.apiServer,
    caCertHashes: [hash],
    kubeconfig: k8s.kubeconfig ? resolvePath(configDir, k8s.kubeconfig) : undefined,
    staticToken: k8s.token,
    tokenTtlSeconds: parseDuration(k8s.tokenTtl ?? '1h'),
    version: version.startsWith('v') ? version : `v${version}`,
    kubeadmApiVersion: minorVersion(version) >= 31 ? 'kubeadm.k8s.io/v1beta4' : 'kubeadm.k8s.io/v1beta3',
    admission: k8s.admission ?? 'auto',
    tpm: { trustOnFirstUse: k8s.tpm?.trustOnFirstUse ?? false },
  };
}

function resolvePath(configDir: string, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(configDir, p);
}

function resolve(cfg: ConfigFile, file: string, ltsFiles: Map<string, LtsConfFile>): ResolvedConfig {
  const dir = path.dirname(path.resolve(file));
  const defaultImage = cfg.images?.default ?? 'bootfarm';
  const profiles: ResolvedProfile[] = (cfg.profiles ?? []).map((p) => ({
    name: p.name,
    match: p.match ? { ...p.match, macPrefix: p.match.macPrefix?.toLowerCase().replace(/-/g, ':') } : undefined,
    ...resolveLayer(p, dir, ltsFiles),
  }));
  const envToken = process.env.BOOTFARM_API_TOKEN;
  const dhcp = cfg.dhcp;
  return {
    file,
    server: {
      address: cfg.server.address,
      stateDir: resolvePath(dir, cfg.server.stateDir),
      syncWrites: cfg.server.syncWrites ?? true,
      maxDiscovered: cfg.server.maxDiscovered ?? DEFAULT_MAX_DISCOVERED,
      drainSeconds: cfg.server.drainSeconds ?? DEFAULT_DRAIN_SECONDS,
    },
    dhcp: {
      mode: dhcp?.mode ?? 'off',
      port: dhcp?.port ?? 67,
      proxyPort: dhcp?.proxyPort ?? 4011,
      interface: dhcp?.interface,
      subnets: (dhcp?.subnets ?? []).map((s) => {
        const network = parseCidr(s.cidr) as Cidr;
        return {
          cidr: s.cidr,
          network,
          netmask: numberToIpv4(network.mask),
          broadcast: numberToIpv4(cidrBroadcast(network)),
          rangeStart: ipv4ToNumber(s.range[0]),
          rangeEnd: ipv4ToNumber(s.range[1]),
          router: s.router,
          dns: s.dns ?? [],
          domain: s.domain,
          leaseSeconds: s.leaseSeconds ?? 3600,
        };
      }),
      offerHoldSeconds: dhcp?.offerHoldSeconds ?? 30,
      declineQuarantineSeconds: dhcp?.declineQuarantineSeconds ?? 600,
      piProxyDelayMs: dhcp?.piProxyDelayMs ?? 1000,
      routerAdvertisements: dhcp?.routerAdvertisements ?? false,
      limits: { ...DEFAULT_DHCP_LIMITS, ...dhcp?.limits },
    },
    tftp: {
      enabled: cfg.tftp !== undefined && cfg.tftp.enabled !== false,
      port: cfg.tftp?.port ?? 69,
      root: resolvePath(dir, cfg.tftp?.root ?? './tftpboot'),
      addresses: cfg.tftp?.addresses,
      maxBlockSize: cfg.tftp?.maxBlockSize ?? 1468,
      maxWindowSize: cfg.tftp?.maxWindowSize ?? 64,
      maxTransfers: cfg.tftp?.maxTransfers ?? 1000,
      maxTransfersPerClient: cfg.tftp?.maxTransfersPerClient ?? 8,
      maxTimeoutSeconds: cfg.tftp?.maxTimeoutSeconds ?? 5,
      singlePort: cfg.tftp?.singlePort ?? false,
    },
    http: {
      enabled: cfg.http !== undefined && cfg.http.enabled !== false,
      port: cfg.http?.port ?? 8080,
      host: cfg.http?.host ?? '0.0.0.0',
      maxConnections: cfg.http?.maxConnections ?? 512,
      maxConnectionsPerClient: cfg.http?.maxConnectionsPerClient ?? 32,
      headersTimeoutSeconds: cfg.http?.headersTimeoutSeconds ?? 10,
      requestTimeoutSeconds: cfg.http?.requestTimeoutSeconds ?? 30,
      // Fastify's former default: firmware that reuses a connection after a pause keeps working.
      keepAliveTimeoutSeconds: cfg.http?.keepAliveTimeoutSeconds ?? 72,
      idleTimeoutSeconds: cfg.http?.idleTimeoutSeconds ?? 120,
    },
    nbd: {
      enabled: cfg.nbd !== undefined && cfg.nbd.enabled !== false,
      port: cfg.nbd?.port ?? 10809,
      host: cfg.nbd?.host ?? '0.0.0.0',
      allow: cfg.nbd?.allow ?? 'leased',
      backend: cfg.nbd?.backend ?? 'builtin',
      exports: (cfg.nbd?.exports ?? []).map((e) => ({ name: e.name, file: resolvePath(dir, e.file) })),
      handshakeTimeoutSeconds: cfg.nbd?.handshakeTimeoutSeconds ?? 10,
      maxConnections: cfg.nbd?.maxConnections ?? 1024,
      maxConnectionsPerClient: cfg.nbd?.maxConnectionsPerClient ?? 8,
      maxHandshakeOptions: cfg.nbd?.maxHandshakeOptions ?? 256,
      maxBufferedReadMiB: cfg.nbd?.maxBufferedReadMiB ?? 256,
    },
    boot: {
      bios: cfg.boot?.bios ?? 'undionly.kpxe',
      uefiX64: cfg.boot?.uefiX64 ?? 'ipxe.efi',
      uefiArm64: cfg.boot?.uefiArm64 ?? 'grub/arm64-efi/core.efi',
      kernelArgs: cfg.boot?.kernelArgs ?? '',
      templatesDir: cfg.boot?.templatesDir ? resolvePath(dir, cfg.boot.templatesDir) : undefined,
      signingKey: cfg.boot?.signingKey
        ? {
            key: resolvePath(dir, cfg.boot.signingKey.key),
            cert: resolvePath(dir, cfg.boot.signingKey.cert),
            passphraseFile: cfg.boot.signingKey.passphraseFile ? resolvePath(dir, cfg.boot.signingKey.passphraseFile) : undefined,
          }
        : undefined,
      silentBootloaderSeconds: cfg.boot?.silentBootloaderSeconds ?? 60,
    },
    nodes: (cfg.nodes ?? []).map((n) => ({ ...n, mac: normalizeMac(n.mac), piSerial: n.piSerial?.toLowerCase() })),
    layers: { defaults: resolveLayer(cfg.defaults, dir, ltsFiles), profiles, defaultImage },
    unknownNodes: cfg.unknownNodes ?? 'discover',
    kubernetes: cfg.kubernetes ? resolveKubernetes(cfg.kubernetes, dir) : undefined,
    api: {
      token: cfg.api?.token ?? (envToken && envToken.length > 0 ? envToken : undefined),
      tokenSource: cfg.api?.token ? 'config' : envToken ? 'environment' : 'none',
      protectReads: cfg.api?.protectReads ?? true,
    },
    images: { dir: resolvePath(dir, cfg.images?.dir ?? './images'), default: defaultImage },
    pi: { signingKey: cfg.pi?.signingKey === undefined ? undefined : resolvePath(dir, cfg.pi.signingKey) },
    log: { level: cfg.log?.level ?? 'info' },
    store: {
      backend: cfg.store?.backend ?? 'file',
      etcd: cfg.store?.etcd
        ? {
            endpoints: cfg.store.etcd.endpoints,
            prefix: cfg.store.etcd.prefix ?? '/bootfarm',
            claimTimeoutMs: cfg.store.etcd.claimTimeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS,
            tls: resolveEtcdTls(cfg.store.etcd.tls, dir),
          }
        : undefined,
    },
  };
}

// store.etcd.tls's checks. Imported here, not at the top, so the lines above keep
// their numbers: mutation runs of this file are configured by line ranges.
import { etcdTlsProblems, resolveEtcdTls } from './etcd-tls.js';

/** Parses and validates configuration text; `file` is used in messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): ResolvedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        // Some errors (duplicate keys) carry only an offset, not a line position.
        const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
        return { file, line: pos?.line, column: pos?.col, key: '', message: `YAML syntax: ${e.message.split('\n')[0]}` };
      }),
    );
  }
  const data: unknown = doc.toJS();
  const locate = new Locator(doc, lines, file);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([{ file, line: 1, column: 1, key: '', message: 'expected a mapping with at least a "server" section' }]);
  }
  const problems = schemaProblems(data, locate);
  if (problems.length > 0) throw new ConfigError(problems);
  const cfg = data as ConfigFile;
  const configDir = path.dirname(path.resolve(file));
  const semantic = [...semanticProblems(cfg, locate, configDir), ...etcdTlsProblems(cfg, configDir, (s, m) => locate.problem(s, m))];
  const lts = loadLtsFiles(cfg, locate, configDir);
  if (semantic.length > 0 || lts.problems.length > 0) throw new ConfigError([...semantic, ...lts.problems]);
  return resolve(cfg, file, lts.files);
}

export function loadConfig(file: string): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError([{ file, line: undefined, column: undefined, key: '', message: `cannot read the file (${code})` }]);
  }
  return parseConfig(text, file);
}
