// The configuration loader's decisions (server/config/load.ts), one by one:
// every default and every given value as the resolved configuration carries
// it, every refusal with the file, line, column and key it names and what it
// says was expected, lts.conf import, the Kubernetes section's derived values
// (CA pin, token lifetime, kubeadm API). In-process over files in a temporary
// directory; openssl computes the CA pin independently.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { caCertHash, loadConfig, parseConfig } from '../../server/config/load.js';
import { ConfigError, type ConfigProblem } from '../../server/config/errors.js';
import { DEFAULT_DHCP_LIMITS } from '../../server/config/defaults.js';
import type { ResolvedConfig } from '../../server/config/types.js';

// The tier's testTimeout is 20 s; each test states its own deadline too.
const T = 20_000;
const BASE = 'server: { address: 10.9.0.1, stateDir: state }\n';
const HASH = `sha256:${'ab'.repeat(32)}`;
const TOKEN = 'abcdef.0123456789abcdef';

let dir = '';
let cfgPath = '';
let ca: { pem: string; pin: string } | undefined;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-config-load-'));
  cfgPath = path.join(dir, 'bootfarm.yaml');
  mkdirSync(path.join(dir, 'templates'));
  writeFileSync(path.join(dir, 'not-a-dir'), 'x');
  writeFileSync(path.join(dir, 'kubeconfig'), 'apiVersion: v1\n');
  writeFileSync(path.join(dir, 'good.lts.conf'), '[Default]\nSCREEN_07 = ldm\n');
  writeFileSync(path.join(dir, 'other.lts.conf'), '[Default]\nX = 1\n');
  writeFileSync(path.join(dir, 'bad.lts.conf'), '[Default]\nOK = 1\nnot an assignment\n');
  writeFileSync(path.join(dir, 'not-pem.crt'), 'this is no certificate\n');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const at = (p: string) => path.join(dir, p);

/** A CA certificate at ca.crt and its pin as openssl computes it; made once, by the tests that need it. */
function ensureCa(): { pem: string; pin: string } {
  if (ca) return ca;
  const key = at('ca.key');
  const crt = at('ca.crt');
  const req = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=bootfarm-test-ca'];
  execFileSync('openssl', [...req, '-days', '1', '-keyout', key, '-out', crt], { stdio: 'ignore' });
  const spki = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', crt]);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: spki });
  const hex = execFileSync('openssl', ['dgst', '-sha256', '-hex'], { input: der, encoding: 'utf8' }).trim().split(' ').pop();
  ca = { pem: readFileSync(crt, 'utf8'), pin: `sha256:${hex}` };
  return ca;
}

function parse(text: string): ResolvedConfig {
  return parseConfig(text, cfgPath);
}

/** The problems a text is refused with; fails the test when it is accepted or throws anything else. */
function refusal(text: string, file = cfgPath): ConfigProblem[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

/** One line per problem: `line:column key: message` (the file is checked apart). */
function lines(text: string): string[] {
  return refusal(text).map((p) => `${p.line}:${p.column} ${p.key}: ${p.message}`);
}

function withApiTokenEnv<R>(value: string | undefined, fn: () => R): R {
  const saved = process.env.BOOTFARM_API_TOKEN;
  if (value === undefined) delete process.env.BOOTFARM_API_TOKEN;
  else process.env.BOOTFARM_API_TOKEN = value;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.BOOTFARM_API_TOKEN;
    else process.env.BOOTFARM_API_TOKEN = saved;
  }
}

describe('config loader: what a minimal file resolves to', () => {
  it(
    'every default, with paths resolved against the directory of the configuration file',
    () => {
      const c = withApiTokenEnv(undefined, () => parse(BASE));
      expect(c).toStrictEqual({
        file: cfgPath,
        server: { address: '10.9.0.1', stateDir: at('state'), syncWrites: true, maxDiscovered: 10_000, drainSeconds: 8 },
        dhcp: {
          mode: 'off',
          port: 67,
          proxyPort: 4011,
          interface: undefined,
          subnets: [],
          offerHoldSeconds: 30,
          declineQuarantineSeconds: 600,
          piProxyDelayMs: 1000,
          routerAdvertisements: false,
          limits: { ...DEFAULT_DHCP_LIMITS },
        },
        tftp: {
          enabled: false,
          port: 69,
          root: at('tftpboot'),
          addresses: undefined,
          maxBlockSize: 1468,
          maxWindowSize: 64,
          maxTransfers: 1000,
          maxTransfersPerClient: 8,
          maxTimeoutSeconds: 5,
          singlePort: false,
        },
        http: {
          enabled: false,
          port: 8080,
          host: '0.0.0.0',
          maxConnections: 512,
          maxConnectionsPerClient: 32,
          headersTimeoutSeconds: 10,
          requestTimeoutSeconds: 30,
          keepAliveTimeoutSeconds: 72,
          idleTimeoutSeconds: 120,
        },
        nbd: {
          enabled: false,
          port: 10809,
          host: '0.0.0.0',
          allow: 'leased',
          backend: 'builtin',
          exports: [],
          handshakeTimeoutSeconds: 10,
          maxConnections: 1024,
          maxConnectionsPerClient: 8,
          maxHandshakeOptions: 256,
          maxBufferedReadMiB: 256,
        },
        boot: {
          bios: 'undionly.kpxe',
          uefiX64: 'ipxe.efi',
          uefiArm64: 'grub/arm64-efi/core.efi',
          kernelArgs: '',
          templatesDir: undefined,
          signingKey: undefined,
          silentBootloaderSeconds: 60,
        },
        nodes: [],
        layers: { defaults: {}, profiles: [], defaultImage: 'bootfarm' },
        unknownNodes: 'discover',
        kubernetes: undefined,
        api: { token: undefined, tokenSource: 'none', protectReads: true },
        images: { dir: at('images'), default: 'bootfarm' },
        pi: { signingKey: undefined },
        log: { level: 'info' },
        store: { backend: 'file', etcd: undefined },
      });
    },
    T,
  );

  it(
    'a relative configuration path resolves against its own directory, not the working directory',
    () => {
      const rel = path.relative(process.cwd(), cfgPath);
      const c = parseConfig(BASE, rel);
      expect(c.file).toBe(rel);
      expect(c.server.stateDir).toBe(at('state'));
      expect(parseConfig('server: { address: 10.9.0.1, stateDir: /srv/state }\n', rel).server.stateDir).toBe('/srv/state');
    },
    T,
  );

  it(
    'an empty services section turns the service on; enabled: false (or no section) leaves it off',
    () => {
      const svc = (text: string) => {
        const c = parse(BASE + text);
        return [c.tftp.enabled, c.http.enabled, c.nbd.enabled];
      };
      expect(svc('')).toEqual([false, false, false]);
      expect(svc('tftp: {}\nhttp: {}\nnbd: {}\n')).toEqual([true, true, true]);
      expect(svc('tftp: { enabled: true }\nhttp: { enabled: true }\nnbd: { enabled: true }\n')).toEqual([true, true, true]);
      expect(svc('tftp: { enabled: false }\nhttp: { enabled: false }\nnbd: { enabled: false }\n')).toEqual([false, false, false]);
      expect(svc('tftp: { enabled: false }\nhttp: {}\nnbd: { enabled: false }\n')).toEqual([false, true, false]);
      expect(svc('tftp: {}\nhttp: { enabled: false }\nnbd: {}\n')).toEqual([true, false, true]);
    },
    T,
  );
});

describe('config loader: every value given is the value resolved', () => {
  const full = `server: { address: 10.9.0.1, stateDir: /var/lib/bf, syncWrites: false, maxDiscovered: 5, drainSeconds: 0 }
dhcp:
  mode: full
  port: 1067
  proxyPort: 5011
  interface: br9
  subnets:
    - { cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200], router: 10.9.0.1, dns: [10.9.0.2, 10.9.0.3], domain: lab.example, leaseSeconds: 120 }
  offerHoldSeconds: 7
  declineQuarantineSeconds: 9
  piProxyDelayMs: 0
  routerAdvertisements: true
  limits: { unknownClientBurst: 3, maxQuarantinedPercent: 50 }
tftp: { enabled: true, port: 1069, root: tftp, addresses: [10.9.0.1], maxBlockSize: 512, maxWindowSize: 2, maxTransfers: 3, maxTransfersPerClient: 4, maxTimeoutSeconds: 6, singlePort: true }
http: { enabled: true, port: 8081, host: 127.0.0.1, maxConnections: 5, maxConnectionsPerClient: 6, headersTimeoutSeconds: 7, requestTimeoutSeconds: 8, keepAliveTimeoutSeconds: 9, idleTimeoutSeconds: 11 }
nbd: { enabled: true, port: 10810, host: 127.0.0.2, allow: any, backend: nbdkit, exports: [{ name: root, file: img/root.img }, { name: abs, file: /srv/abs.img }], handshakeTimeoutSeconds: 3, maxConnections: 4, maxConnectionsPerClient: 5, maxHandshakeOptions: 9, maxBufferedReadMiB: 40 }
boot: { bios: b.kpxe, uefiX64: x.efi, uefiArm64: a.efi, kernelArgs: console=ttyS0, templatesDir: templates, signingKey: { key: keys/db.key, cert: /etc/db.crt, passphraseFile: keys/pass }, silentBootloaderSeconds: 5 }
unknownNodes: ignore
api: { token: 0123456789abcdef0123, protectReads: false }
images: { dir: /srv/images, default: debian }
pi: { signingKey: keys/pi.pem }
log: { level: debug }
store: { backend: etcd, etcd: { endpoints: ["http://10.9.0.5:2379"], prefix: /farm, claimTimeoutMs: 250 } }
`;

  it(
    'server, dhcp, tftp, http, nbd, boot, api, images, pi, log and store',
    () => {
      const c = withApiTokenEnv('from-the-environment-0123', () => parse(full));
      expect(c.server).toStrictEqual({
        address: '10.9.0.1',
        stateDir: '/var/lib/bf',
        syncWrites: false,
        maxDiscovered: 5,
        drainSeconds: 0,
      });
      expect(c.dhcp).toStrictEqual({
        mode: 'full',
        port: 1067,
        proxyPort: 5011,
        interface: 'br9',
        subnets: [
          {
            cidr: '10.9.0.0/24',
            network: { network: 0x0a090000, prefix: 24, mask: 0xffffff00 },
            netmask: '255.255.255.0',
            broadcast: '10.9.0.255',
            rangeStart: 0x0a090064,
            rangeEnd: 0x0a0900c8,
            router: '10.9.0.1',
            dns: ['10.9.0.2', '10.9.0.3'],
            domain: 'lab.example',
            leaseSeconds: 120,
          },
        ],
        offerHoldSeconds: 7,
        declineQuarantineSeconds: 9,
        piProxyDelayMs: 0,
        routerAdvertisements: true,
        limits: { ...DEFAULT_DHCP_LIMITS, unknownClientBurst: 3, maxQuarantinedPercent: 50 },
      });
      expect(c.tftp).toStrictEqual({
        enabled: true,
        port: 1069,
        root: at('tftp'),
        addresses: ['10.9.0.1'],
        maxBlockSize: 512,
        maxWindowSize: 2,
        maxTransfers: 3,
        maxTransfersPerClient: 4,
        maxTimeoutSeconds: 6,
        singlePort: true,
      });
      expect(c.http).toStrictEqual({
        enabled: true,
        port: 8081,
        host: '127.0.0.1',
        maxConnections: 5,
        maxConnectionsPerClient: 6,
        headersTimeoutSeconds: 7,
        requestTimeoutSeconds: 8,
        keepAliveTimeoutSeconds: 9,
        idleTimeoutSeconds: 11,
      });
      expect(c.nbd).toStrictEqual({
        enabled: true,
        port: 10810,
        host: '127.0.0.2',
        allow: 'any',
        backend: 'nbdkit',
        exports: [
          { name: 'root', file: at('img/root.img') },
          { name: 'abs', file: '/srv/abs.img' },
        ],
        handshakeTimeoutSeconds: 3,
        maxConnections: 4,
        maxConnectionsPerClient: 5,
        maxHandshakeOptions: 9,
        maxBufferedReadMiB: 40,
      });
      expect(c.boot).toStrictEqual({
        bios: 'b.kpxe',
        uefiX64: 'x.efi',
        uefiArm64: 'a.efi',
        kernelArgs: 'console=ttyS0',
        templatesDir: at('templates'),
        signingKey: { key: at('keys/db.key'), cert: '/etc/db.crt', passphraseFile: at('keys/pass') },
        silentBootloaderSeconds: 5,
      });
      expect(c.unknownNodes).toBe('ignore');
      expect(c.api).toStrictEqual({ token: '0123456789abcdef0123', tokenSource: 'config', protectReads: false });
      expect(c.images).toStrictEqual({ dir: '/srv/images', default: 'debian' });
      expect(c.layers.defaultImage).toBe('debian');
      expect(c.pi).toStrictEqual({ signingKey: at('keys/pi.pem') });
      expect(c.log).toStrictEqual({ level: 'debug' });
      expect(c.store).toStrictEqual({
        backend: 'etcd',
        etcd: { endpoints: ['http://10.9.0.5:2379'], prefix: '/farm', claimTimeoutMs: 250, tls: undefined },
      });
    },
    T,
  );

  it(
    'a signing key without a passphrase file; an etcd section without prefix or claim timeout takes /bootfarm and 1000 ms',
    () => {
      const c = parse(
        `${BASE}boot: { signingKey: { key: db.key, cert: db.crt } }\nstore: { backend: etcd, etcd: { endpoints: ["http://10.9.0.5:2379"] } }\n`,
      );
      expect(c.boot.signingKey).toStrictEqual({ key: at('db.key'), cert: at('db.crt'), passphraseFile: undefined });
      expect(c.store).toStrictEqual({
        backend: 'etcd',
        etcd: { endpoints: ['http://10.9.0.5:2379'], prefix: '/bootfarm', claimTimeoutMs: 1000, tls: undefined },
      });
      // An etcd section kept while the backend is the file store is still resolved (and ignored by the store).
      expect(parse(`${BASE}store: { etcd: { endpoints: ["http://10.9.0.5:2379"] } }\n`).store.backend).toBe('file');
    },
    T,
  );

  it(
    'the API token: the configuration first, else BOOTFARM_API_TOKEN, an empty variable is no token',
    () => {
      const tokenOf = (text: string, env: string | undefined) => {
        const c = withApiTokenEnv(env, () => parse(BASE + text));
        return [c.api.token, c.api.tokenSource];
      };
      expect(tokenOf('', 'env-token-0123456789')).toEqual(['env-token-0123456789', 'environment']);
      expect(tokenOf('', '')).toEqual([undefined, 'none']);
      expect(tokenOf('', undefined)).toEqual([undefined, 'none']);
      expect(tokenOf('api: { token: config-token-01234567 }\n', 'env-token-0123456789')).toEqual(['config-token-01234567', 'config']);
      expect(tokenOf('api: { token: config-token-01234567 }\n', undefined)).toEqual(['config-token-01234567', 'config']);
      expect(tokenOf('api: { protectReads: false }\n', undefined)).toEqual([undefined, 'none']);
    },
    T,
  );

  it(
    'nodes: MACs normalised to lower-case colons, Pi serials lower-cased, everything else as written',
    () => {
      const c = parse(`${BASE}nodes:
  - { mac: "52-54-00-AB-CD-EF", hostname: n1, ip: 10.9.0.7, image: img, labels: { rack: r1 }, join: false }
  - { mac: "DC:A6:32:01:02:03", hostname: pi1, piSerial: "ABCDEF01", piModel: 4 }
`);
      expect(c.nodes).toStrictEqual([
        {
          mac: '52:54:00:ab:cd:ef',
          hostname: 'n1',
          ip: '10.9.0.7',
          image: 'img',
          labels: { rack: 'r1' },
          join: false,
          piSerial: undefined,
        },
        { mac: 'dc:a6:32:01:02:03', hostname: 'pi1', piSerial: 'abcdef01', piModel: 4 },
      ]);
    },
    T,
  );

  it(
    'layers: defaults and profiles carry every layer field; a profile match MAC prefix is lower-case with colons',
    () => {
      const c = parse(`${BASE}defaults:
  image: base
  lts: { A: 1 }
  ltsFile: good.lts.conf
  labels: { rack: r0 }
  taints: ["dedicated=gpu:NoSchedule"]
  join: true
  kernelArgs: quiet
  secureBoot: site
profiles:
  - name: p1
    match: { macPrefix: "DC-A6-32", arch: arm64 }
    image: pimg
    lts: { B: x }
    ltsFile: /${path.relative('/', at('other.lts.conf'))}
    labels: { role: w }
    taints: ["x:NoExecute"]
    join: false
    kernelArgs: loud
    secureBoot: true
  - name: p2
`);
      expect(c.layers.defaults).toStrictEqual({
        image: 'base',
        lts: { A: 1 },
        ltsFile: { path: at('good.lts.conf'), parsed: expect.objectContaining({}) },
        labels: { rack: 'r0' },
        taints: ['dedicated=gpu:NoSchedule'],
        join: true,
        kernelArgs: 'quiet',
        secureBoot: 'site',
      });
      const dflt = c.layers.defaults.ltsFile?.parsed;
      expect(JSON.stringify(dflt)).toContain('SCREEN_07');
      expect(c.layers.profiles).toStrictEqual([
        {
          name: 'p1',
          match: { macPrefix: 'dc:a6:32', arch: 'arm64' },
          image: 'pimg',
          lts: { B: 'x' },
          ltsFile: { path: at('other.lts.conf'), parsed: expect.objectContaining({}) },
          labels: { role: 'w' },
          taints: ['x:NoExecute'],
          join: false,
          kernelArgs: 'loud',
          secureBoot: true,
        },
        {
          name: 'p2',
          match: undefined,
          image: undefined,
          lts: undefined,
          ltsFile: undefined,
          labels: undefined,
          taints: undefined,
          join: undefined,
          kernelArgs: undefined,
          secureBoot: undefined,
        },
      ]);
      expect(JSON.stringify(c.layers.profiles[0]?.ltsFile?.parsed)).not.toContain('SCREEN_07');
      // A match without a MAC prefix keeps its other conditions and no prefix.
      const m = parse(`${BASE}profiles: [{ name: p, match: { arch: amd64 } }]\n`).layers.profiles[0]?.match;
      expect(m).toStrictEqual({ arch: 'amd64', macPrefix: undefined });
    },
    T,
  );

  it(
    'one lts.conf named by the defaults and two profiles is read once and shared',
    () => {
      const c = parse(
        `${BASE}defaults: { ltsFile: good.lts.conf }\nprofiles: [{ name: a, ltsFile: good.lts.conf }, { name: b, ltsFile: ./good.lts.conf }]\n`,
      );
      const d = c.layers.defaults.ltsFile;
      expect(d?.path).toBe(at('good.lts.conf'));
      expect(c.layers.profiles.map((p) => p.ltsFile?.path)).toEqual([at('good.lts.conf'), at('good.lts.conf')]);
      expect(c.layers.profiles[1]?.ltsFile?.parsed).toBe(d?.parsed);
    },
    T,
  );
});

describe('config loader: kubernetes', () => {
  const k8s = (body: string) => `${BASE}kubernetes: { apiServer: "10.9.0.20:6443", ${body} }\n`;

  it(
    'defaults: v1.31 with kubeadm v1beta4, one-hour tokens, admission auto, no trust on first use',
    () => {
      expect(parse(k8s(`caCertHash: "${HASH}", token: ${TOKEN}`)).kubernetes).toStrictEqual({
        apiServer: '10.9.0.20:6443',
        caCertHashes: [HASH],
        kubeconfig: undefined,
        staticToken: TOKEN,
        tokenTtlSeconds: 3600,
        version: 'v1.31',
        kubeadmApiVersion: 'kubeadm.k8s.io/v1beta4',
        admission: 'auto',
        tpm: { trustOnFirstUse: false },
      });
    },
    T,
  );

  it(
    'the CA pin from caCertFile is what openssl computes; kubeconfig resolved; every field given',
    () => {
      const { pem, pin: caPin } = ensureCa();
      expect(caCertHash(pem)).toBe(caPin);
      const c = parse(
        k8s('caCertFile: ca.crt, kubeconfig: kubeconfig, tokenTtl: 1h30m, version: "1.30", admission: tpm, tpm: { trustOnFirstUse: true }'),
      );
      expect(c.kubernetes).toStrictEqual({
        apiServer: '10.9.0.20:6443',
        caCertHashes: [caPin],
        kubeconfig: at('kubeconfig'),
        staticToken: undefined,
        tokenTtlSeconds: 5400,
        version: 'v1.30',
        kubeadmApiVersion: 'kubeadm.k8s.io/v1beta3',
        admission: 'tpm',
        tpm: { trustOnFirstUse: true },
      });
      expect(parse(k8s(`caCertFile: ${at('ca.crt')}, token: ${TOKEN}`)).kubernetes?.caCertHashes).toEqual([caPin]);
    },
    T,
  );

  it(
    'token lifetimes: hours, minutes and seconds add up; zero is refused',
    () => {
      const ttl = (t: string) => parse(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, tokenTtl: "${t}"`)).kubernetes?.tokenTtlSeconds;
      expect(ttl('90s')).toBe(90);
      expect(ttl('2m')).toBe(120);
      expect(ttl('12h')).toBe(43_200);
      expect(ttl('10h30m15s')).toBe(37_815);
      expect(ttl('1m1s')).toBe(61);
      expect(lines(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, tokenTtl: "0h0m"`))).toEqual([
        '2:173 kubernetes.tokenTtl: expected a duration longer than zero, got "0h0m"',
      ]);
      expect(lines(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, tokenTtl: "0s"`))).toEqual([
        '2:173 kubernetes.tokenTtl: expected a duration longer than zero, got "0s"',
      ]);
    },
    T,
  );

  it(
    'versions: v1.22 is the oldest accepted, 1.31 and later use kubeadm v1beta4, a missing "v" is added',
    () => {
      const v = (version: string) => {
        const k = parse(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, version: "${version}"`)).kubernetes;
        return [k?.version, k?.kubeadmApiVersion];
      };
      expect(v('v1.22')).toEqual(['v1.22', 'kubeadm.k8s.io/v1beta3']);
      expect(v('1.30.4')).toEqual(['v1.30.4', 'kubeadm.k8s.io/v1beta3']);
      expect(v('v1.31')).toEqual(['v1.31', 'kubeadm.k8s.io/v1beta4']);
      expect(v('1.32.0')).toEqual(['v1.32.0', 'kubeadm.k8s.io/v1beta4']);
      expect(v('v1.100')).toEqual(['v1.100', 'kubeadm.k8s.io/v1beta4']);
      expect(lines(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, version: v1.21`))).toEqual([
        "2:172 kubernetes.version: expected v1.22 or later (kubeadm's v1beta3 config API), got v1.21",
      ]);
      expect(lines(k8s(`caCertHash: "${HASH}", token: ${TOKEN}, version: "1.9"`))).toEqual([
        "2:172 kubernetes.version: expected v1.22 or later (kubeadm's v1beta3 config API), got 1.9",
      ]);
    },
    T,
  );

  it(
    'exactly one CA (file or hash) and exactly one token source (kubeconfig or static token)',
    () => {
      ensureCa();
      const oneCa = 'kubernetes: expected exactly one of caCertFile (the cluster CA, PEM) or caCertHash (sha256:<hex>)';
      const oneToken = 'kubernetes: expected exactly one of kubeconfig (mint a token per node) or token (one static token, discouraged)';
      expect(lines(k8s(`token: ${TOKEN}`))).toEqual([`2:13 ${oneCa}`]);
      expect(lines(k8s(`caCertFile: ca.crt, caCertHash: "${HASH}", token: ${TOKEN}`))).toEqual([`2:13 ${oneCa}`]);
      expect(lines(k8s(`caCertHash: "${HASH}"`))).toEqual([`2:13 ${oneToken}`]);
      expect(lines(k8s(`caCertHash: "${HASH}", kubeconfig: kubeconfig, token: ${TOKEN}`))).toEqual([`2:13 ${oneToken}`]);
      expect(lines(k8s(''))).toEqual([`2:13 ${oneCa}`, `2:13 ${oneToken}`]);
      expect(parse(k8s(`caCertHash: "${HASH}", kubeconfig: kubeconfig`)).kubernetes?.staticToken).toBeUndefined();
    },
    T,
  );

  it(
    'a CA file that cannot be read or is no certificate, and a kubeconfig that is missing or a directory',
    () => {
      expect(lines(k8s(`caCertFile: missing.crt, token: ${TOKEN}`))).toEqual([
        '2:56 kubernetes.caCertFile: expected a readable PEM certificate, got "missing.crt" (cannot read it: ENOENT)',
      ]);
      // OpenSSL's refusal of a file that is no PEM carries a code too.
      expect(lines(k8s(`caCertFile: not-pem.crt, token: ${TOKEN}`))).toEqual([
        '2:56 kubernetes.caCertFile: expected a readable PEM certificate, got "not-pem.crt" (cannot read it: ERR_OSSL_PEM_NO_START_LINE)',
      ]);
      expect(lines(k8s(`caCertHash: "${HASH}", kubeconfig: no-such-kubeconfig`))).toEqual([
        '2:143 kubernetes.kubeconfig: expected an existing kubeconfig file, got "no-such-kubeconfig"',
      ]);
      expect(lines(k8s(`caCertHash: "${HASH}", kubeconfig: templates`))).toEqual([
        '2:143 kubernetes.kubeconfig: expected an existing kubeconfig file, got "templates"',
      ]);
    },
    T,
  );
});

describe('config loader: refusals the schema cannot express', () => {
  it(
    'boot.templatesDir must be a directory; an existing one is resolved',
    () => {
      expect(lines(`${BASE}boot: { templatesDir: not-a-dir }\n`)).toEqual([
        `2:23 boot.templatesDir: expected an existing directory of .hbs templates, got "not-a-dir" (resolved to ${at('not-a-dir')})`,
      ]);
      expect(parse(`${BASE}boot: { templatesDir: ${at('templates')} }\n`).boot.templatesDir).toBe(at('templates'));
    },
    T,
  );

  it(
    'the etcd backend needs its section; the file backend does not',
    () => {
      expect(lines(`${BASE}store: { backend: etcd }\n`)).toEqual([
        '2:19 store.backend: expected a store.etcd section with endpoints when the backend is etcd',
      ]);
      expect(parse(`${BASE}store: { backend: file }\n`).store).toStrictEqual({ backend: 'file', etcd: undefined });
    },
    T,
  );

  it(
    'a subnet whose CIDR has the right shape but is no network is refused, and nothing else about that subnet is checked',
    () => {
      expect(lines(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/33, range: [10.9.0.10, 10.9.0.20] }] }\n`)).toEqual([
        '2:40 dhcp.subnets[0].cidr: expected an IPv4 network like 10.9.0.0/24, got "10.9.0.0/33"',
      ]);
      expect(lines(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.300/24, range: [1.1.1.1, 1.1.1.0] }] }\n`)).toEqual([
        '2:40 dhcp.subnets[0].cidr: expected an IPv4 network like 10.9.0.0/24, got "10.9.0.300/24"',
      ]);
    },
    T,
  );

  it(
    'a range must lie inside its subnet (each end on its own), ascend, and leave out the network and broadcast addresses',
    () => {
      const range = (r: string, router = '') =>
        lines(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [${r}]${router} }] }\n`);
      expect(range('10.9.0.10, 10.9.1.20')).toEqual([
        '2:60 dhcp.subnets[0].range: expected both ends inside 10.9.0.0/24, got [10.9.0.10, 10.9.1.20]',
      ]);
      expect(range('10.8.0.10, 10.9.0.20')).toEqual([
        '2:60 dhcp.subnets[0].range: expected both ends inside 10.9.0.0/24, got [10.8.0.10, 10.9.0.20]',
      ]);
      // Outside and descending: only the first reason is given.
      expect(range('10.9.1.20, 10.9.0.10')).toEqual([
        '2:60 dhcp.subnets[0].range: expected both ends inside 10.9.0.0/24, got [10.9.1.20, 10.9.0.10]',
      ]);
      expect(range('10.9.0.21, 10.9.0.20')).toEqual([
        '2:60 dhcp.subnets[0].range: expected [first, last] with first <= last, got [10.9.0.21, 10.9.0.20]',
      ]);
      expect(range('10.9.0.0, 10.9.0.20')).toEqual([
        '2:60 dhcp.subnets[0].range: expected a range that excludes the network and broadcast addresses of 10.9.0.0/24',
      ]);
      expect(range('10.9.0.20, 10.9.0.255')).toEqual([
        '2:60 dhcp.subnets[0].range: expected a range that excludes the network and broadcast addresses of 10.9.0.0/24',
      ]);
      // One address, and the first and last usable ones, are ranges.
      expect(
        parse(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.20, 10.9.0.20] }] }\n`).dhcp.subnets[0],
      ).toMatchObject({ rangeStart: 0x0a090014, rangeEnd: 0x0a090014, router: undefined, dns: [], domain: undefined, leaseSeconds: 3600 });
      expect(
        parse(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.1, 10.9.0.254] }] }\n`).dhcp.subnets[0],
      ).toMatchObject({ rangeStart: 0x0a090001, rangeEnd: 0x0a0900fe });
      // The router is checked whatever the range.
      expect(range('10.9.0.21, 10.9.0.20', ', router: 10.9.1.1')).toEqual([
        '2:60 dhcp.subnets[0].range: expected [first, last] with first <= last, got [10.9.0.21, 10.9.0.20]',
        '2:92 dhcp.subnets[0].router: expected an address inside 10.9.0.0/24, got 10.9.1.1',
      ]);
      expect(
        parse(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.2, 10.9.0.9], router: 10.9.0.254 }] }\n`).dhcp
          .subnets[0]?.router,
      ).toBe('10.9.0.254');
    },
    T,
  );

  it(
    'router advertisements need dhcp.interface',
    () => {
      expect(lines(`${BASE}dhcp: { mode: off, routerAdvertisements: true }\n`)).toEqual([
        '2:42 dhcp.routerAdvertisements: expected dhcp.interface to be set too: advertisements are sent on that interface',
      ]);
      expect(parse(`${BASE}dhcp: { mode: off, routerAdvertisements: true, interface: br0 }\n`).dhcp.routerAdvertisements).toBe(true);
      expect(parse(`${BASE}dhcp: { mode: off, routerAdvertisements: false }\n`).dhcp.routerAdvertisements).toBe(false);
    },
    T,
  );

  it(
    "http's headers deadline may equal the request deadline, not pass it; the key named is the one set",
    () => {
      expect(parse(`${BASE}http: { headersTimeoutSeconds: 20, requestTimeoutSeconds: 20 }\n`).http.headersTimeoutSeconds).toBe(20);
      expect(parse(`${BASE}http: { headersTimeoutSeconds: 30 }\n`).http.headersTimeoutSeconds).toBe(30);
      expect(parse(`${BASE}http: { requestTimeoutSeconds: 10 }\n`).http.requestTimeoutSeconds).toBe(10);
      expect(lines(`${BASE}http: { requestTimeoutSeconds: 9 }\n`)).toEqual([
        '2:32 http.requestTimeoutSeconds: expected http.headersTimeoutSeconds (10) <= http.requestTimeoutSeconds (9)',
      ]);
      expect(lines(`${BASE}http: { requestTimeoutSeconds: 9, headersTimeoutSeconds: 10 }\n`)).toEqual([
        '2:58 http.headersTimeoutSeconds: expected http.headersTimeoutSeconds (10) <= http.requestTimeoutSeconds (9)',
      ]);
    },
    T,
  );

  it(
    'full DHCP needs a subnet (the refusal points at the dhcp section when subnets is absent); proxy does not',
    () => {
      expect(lines(`${BASE}dhcp:\n  mode: full\n`)).toEqual(['3:3 dhcp.subnets: expected at least one subnet when dhcp.mode is full']);
      expect(lines(`${BASE}dhcp:\n  mode: full\n  subnets: []\n`)).toEqual([
        '4:12 dhcp.subnets: expected at least one subnet when dhcp.mode is full',
      ]);
      expect(parse(`${BASE}dhcp: { mode: proxy }\n`).dhcp.subnets).toEqual([]);
    },
    T,
  );

  it(
    'node addresses in full mode must be in some subnet (not every one); in proxy mode any address goes',
    () => {
      const subnets =
        'subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.10, 10.9.0.20] }, { cidr: 10.9.1.0/24, range: [10.9.1.10, 10.9.1.20] }]';
      const c = parse(`${BASE}dhcp: { mode: full, ${subnets} }\nnodes: [{ mac: "52:54:00:00:00:01", hostname: a, ip: 10.9.1.5 }]\n`);
      expect(c.nodes[0]?.ip).toBe('10.9.1.5');
      expect(lines(`${BASE}dhcp: { mode: full, ${subnets} }\nnodes: [{ mac: "52:54:00:00:00:01", hostname: a, ip: 10.9.2.5 }]\n`)).toEqual([
        '3:54 nodes[0].ip: expected an address inside one of dhcp.subnets, got 10.9.2.5',
      ]);
      expect(
        parse(`${BASE}dhcp: { mode: proxy, ${subnets} }\nnodes: [{ mac: "52:54:00:00:00:01", hostname: a, ip: 192.168.5.5 }]\n`).nodes[0]
          ?.ip,
      ).toBe('192.168.5.5');
    },
    T,
  );

  it(
    'duplicates: a MAC in another spelling, a hostname in another case, an address; each names the first holder',
    () => {
      expect(
        lines(`${BASE}nodes:
  - { mac: "52:54:00:00:00:01", hostname: web, ip: 10.9.0.5 }
  - { mac: "52:54:00:00:00:02", hostname: db }
  - { mac: "52:54:00:00:00:03", hostname: x, ip: 10.9.0.6 }
  - { mac: "52-54-00-00-00-02", hostname: WEB, ip: 10.9.0.6 }
  - { mac: "52:54:00:00:00:05", hostname: y }
`),
      ).toEqual([
        '6:12 nodes[3].mac: expected a unique MAC, but nodes[1] has 52:54:00:00:00:02 too',
        '6:43 nodes[3].hostname: expected a unique hostname, but nodes[0] is web too',
        '6:52 nodes[3].ip: expected a unique address, but nodes[2] has 10.9.0.6 too',
      ]);
      // The latest holder is named for a third copy.
      expect(
        lines(`${BASE}nodes:
  - { mac: "52:54:00:00:00:01", hostname: a }
  - { mac: "52:54:00:00:00:01", hostname: b }
  - { mac: "52:54:00:00:00:01", hostname: c }
`),
      ).toEqual([
        '4:12 nodes[1].mac: expected a unique MAC, but nodes[0] has 52:54:00:00:00:01 too',
        '5:12 nodes[2].mac: expected a unique MAC, but nodes[1] has 52:54:00:00:00:01 too',
      ]);
    },
    T,
  );

  it(
    "profile names are unique; a node's profile must be one of them, the refusal lists them (or says none are defined)",
    () => {
      expect(lines(`${BASE}profiles: [{ name: a }, { name: b }, { name: a }]\n`)).toEqual([
        '2:46 profiles[2].name: expected a unique profile name, but profiles[0] is a too',
      ]);
      expect(
        lines(`${BASE}profiles: [{ name: a }, { name: b }]\nnodes: [{ mac: "52:54:00:00:00:01", hostname: n, profile: c }]\n`),
      ).toEqual(['3:59 nodes[0].profile: expected the name of a profile (a, b), got "c"']);
      expect(lines(`${BASE}nodes: [{ mac: "52:54:00:00:00:01", hostname: n, profile: c }]\n`)).toEqual([
        '2:59 nodes[0].profile: expected the name of a profile (none are defined), got "c"',
      ]);
      expect(
        parse(`${BASE}profiles: [{ name: a }, { name: b }]\nnodes: [{ mac: "52:54:00:00:00:01", hostname: n, profile: b }]\n`).nodes[0]
          ?.profile,
      ).toBe('b');
    },
    T,
  );

  it(
    'Raspberry Pi nodes: piBoot http without a serial, and a serial whose model is unsettled, are refused at load',
    () => {
      expect(lines(`${BASE}nodes: [{ mac: "dc:a6:32:00:00:01", hostname: p, piModel: 4, piBoot: http }]\n`)[0]).toBe(
        "2:70 nodes[0].piBoot: piBoot: http needs piSerial (the node's HTTP_PATH is pi/<serial>)",
      );
      expect(lines(`${BASE}nodes: [{ mac: "dc:a6:32:00:00:01", hostname: p, piSerial: "0000abcd" }]\n`)).toEqual([
        '2:9 nodes[0].piModel: expected 3, 4 or 5 for this Raspberry Pi (piSerial 0000abcd): its MAC dc:a6:32:00:00:01 does not settle the model (only b8:27:eb does, the Pi 3B+), and each model boots different files',
      ]);
    },
    T,
  );
});

describe('config loader: lts.conf import', () => {
  it(
    'a file that cannot be read names the key that imports it and the error code',
    () => {
      expect(lines(`${BASE}defaults: { ltsFile: missing.conf }\n`)).toEqual([
        '2:22 defaults.ltsFile: expected a readable lts.conf file, got "missing.conf" (ENOENT)',
      ]);
      expect(lines(`${BASE}profiles: [{ name: a }, { name: b, ltsFile: templates }]\n`)).toEqual([
        '2:45 profiles[1].ltsFile: expected a readable lts.conf file, got "templates" (EISDIR)',
      ]);
    },
    T,
  );

  it(
    "a malformed lts.conf: the problem names the lts.conf file and its line, after the configuration's own problems",
    () => {
      const ps = refusal(
        `${BASE}dhcp: { mode: full }\ndefaults: { ltsFile: bad.lts.conf }\nprofiles: [{ name: p, ltsFile: bad.lts.conf }]\n`,
      );
      expect(ps).toStrictEqual([
        { file: cfgPath, line: 2, column: 7, key: 'dhcp.subnets', message: 'expected at least one subnet when dhcp.mode is full' },
        {
          file: at('bad.lts.conf'),
          line: 3,
          column: 1,
          key: '',
          message: 'expected "[section]", "KEY = value" or a # comment, got "not an assignment"',
        },
        {
          file: at('bad.lts.conf'),
          line: 3,
          column: 1,
          key: '',
          message: 'expected "[section]", "KEY = value" or a # comment, got "not an assignment"',
        },
      ]);
      // lts.conf problems alone refuse the file too.
      expect(refusal(`${BASE}defaults: { ltsFile: bad.lts.conf }\n`).map((p) => p.file)).toEqual([at('bad.lts.conf')]);
    },
    T,
  );
});

describe('config loader: schema problems, located', () => {
  it(
    'no server section: one problem at the top saying a value was expected; an unknown top-level key lists the known ones',
    () => {
      expect(lines('dhcp: { mode: off }\n')).toEqual(['1:1 server: missing; expected a value']);
      const unknown = lines(`${BASE}dchp: { mode: off }\n`);
      expect(unknown).toHaveLength(1);
      expect(unknown[0]).toMatch(
        /^2:1 dchp: unknown key; expected one of server, dhcp, tftp, http, nbd, boot, defaults, profiles, nodes, /,
      );
    },
    T,
  );

  it(
    'several missing keys in one map: each named once, at the map',
    () => {
      expect(lines('server: { syncWrites: true }\n')).toEqual([
        '1:9 server.address: missing; expected an IPv4 address like 10.9.0.1',
        '1:9 server.stateDir: missing; expected a directory path',
      ]);
    },
    T,
  );

  it(
    'an invalid label name says what a label name is, at the key; a bad label value under a key with a slash is located',
    () => {
      expect(lines(`${BASE}defaults:\n  labels: { rack: r1, "Bad Key!": x }\n`)).toEqual([
        '3:23 defaults.labels.Bad Key!: invalid key; expected a label name like rack or example.com/rack',
      ]);
      expect(lines(`${BASE}defaults:\n  labels:\n    rack: r1\n    example.com/zone: "not a value!"\n`)).toEqual([
        '5:23 defaults.labels.example.com/zone: expected a label value: up to 63 letters, digits, - _ . (starting and ending alphanumeric), got "not a value!"',
      ]);
    },
    T,
  );

  it(
    'what was found is described: a string quoted, a number, a boolean, null, a list, a mapping',
    () => {
      expect(lines(`${BASE}dhcp: { mode: off, port: "67" }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got "67"']);
      expect(lines(`${BASE}dhcp: { mode: off, port: 0 }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got 0']);
      expect(lines(`${BASE}dhcp: { mode: off, port: true }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got true']);
      expect(lines(`${BASE}dhcp: { mode: off, port: }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got null']);
      expect(lines(`${BASE}dhcp: { mode: off, port: [67] }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got a list']);
      expect(lines(`${BASE}dhcp: { mode: off, port: { a: 1 } }\n`)).toEqual([
        '2:26 dhcp.port: expected a port number 1-65535, got a mapping',
      ]);
      expect(lines(`${BASE}dhcp: { mode: off, port: 1.5 }\n`)).toEqual(['2:26 dhcp.port: expected a port number 1-65535, got 1.5']);
    },
    T,
  );

  it(
    'a value under a scalar where a mapping was expected is described as what is there',
    () => {
      // A section with no phrase of its own is expected to be a mapping.
      expect(lines(`${BASE}dhcp: off\n`)).toEqual(['2:7 dhcp: expected a mapping, got "off"']);
      expect(lines(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.5] }] }\n`)).toEqual([
        '2:60 dhcp.subnets[0].range: expected [first, last] addresses of the dynamic pool, got a list',
      ]);
    },
    T,
  );

  it(
    'one problem per key even when the schema reports several there',
    () => {
      expect(lines(`${BASE}dhcp: { mode: fulll }\n`)).toEqual(['2:15 dhcp.mode: expected one of full, proxy, off, got "fulll"']);
      expect(lines(`${BASE}http: { maxConection: 5, maxConection2: 6 }\n`)).toHaveLength(2);
    },
    T,
  );
});

describe('config loader: text that is no configuration', () => {
  it(
    'YAML syntax errors name their line; a duplicate key names the line of its second copy',
    () => {
      const dup = refusal('server:\n  address: 10.9.0.1\n  stateDir: s\n  address: 10.9.0.2\n');
      expect(dup).toHaveLength(1);
      expect(dup[0]).toMatchObject({ file: cfgPath, line: 4, column: 3, key: '' });
      expect(dup[0]?.message).toMatch(/^YAML syntax: Map keys must be unique$/);
      const two = refusal('a: [\nb: "x\n');
      expect(two.length).toBeGreaterThan(1);
      for (const p of two) {
        expect(p.message.startsWith('YAML syntax: ')).toBe(true);
        expect(p.message).not.toContain('\n');
        expect(p.line).toBeGreaterThan(0);
      }
    },
    T,
  );

  it(
    'an empty file, a bare scalar and a list are refused as not a mapping, at line 1',
    () => {
      const notMap = { file: cfgPath, line: 1, column: 1, key: '', message: 'expected a mapping with at least a "server" section' };
      expect(refusal('')).toStrictEqual([notMap]);
      expect(refusal('# only a comment\n')).toStrictEqual([notMap]);
      expect(refusal('hello\n')).toStrictEqual([notMap]);
      expect(refusal('42\n')).toStrictEqual([notMap]);
      expect(refusal('[server]\n')).toStrictEqual([notMap]);
    },
    T,
  );

  it(
    'loadConfig: a file that cannot be read is one problem with its error code and no line; a readable one loads',
    () => {
      let err: unknown;
      try {
        loadConfig(at('no-such.yaml'));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toStrictEqual([
        { file: at('no-such.yaml'), line: undefined, column: undefined, key: '', message: 'cannot read the file (ENOENT)' },
      ]);
      writeFileSync(cfgPath, BASE);
      expect(loadConfig(cfgPath).server.stateDir).toBe(at('state'));
    },
    T,
  );
});

describe('config loader: key paths and locations of schema problems', () => {
  it(
    'a key that ends in a digit, one that starts with digits, and a list index of two digits each keep their spelling',
    () => {
      expect(lines(`${BASE}boot: { uefiArm64: "" }\n`)).toEqual(['2:20 boot.uefiArm64: expected a boot file path under tftp.root, got ""']);
      expect(lines(`${BASE}defaults: { labels: { 5abc: "not ok!" } }\n`)).toEqual([
        '2:29 defaults.labels.5abc: expected a label value: up to 63 letters, digits, - _ . (starting and ending alphanumeric), got "not ok!"',
      ]);
      const nodes = Array.from({ length: 11 }, (_, i) => `  - { mac: "52:54:00:00:00:${String(i + 10)}", hostname: n${i} }\n`).join('');
      expect(lines(`${BASE}nodes:\n${nodes.replace('hostname: n10', 'hostname: n_10')}`)).toEqual([
        '13:43 nodes[10].hostname: expected a host name: letters, digits and inner hyphens, at most 63, got "n_10"',
      ]);
    },
    T,
  );

  it(
    'a boot.templatesDir that does not exist at all is refused like one that is a file',
    () => {
      expect(lines(`${BASE}boot: { templatesDir: no-such-dir }\n`)).toEqual([
        `2:23 boot.templatesDir: expected an existing directory of .hbs templates, got "no-such-dir" (resolved to ${at('no-such-dir')})`,
      ]);
    },
    T,
  );
});
