// The resolved configuration: the shapes server/config/load.ts produces and
// the rest of bootfarm reads (the inventory, the store, the services). Types
// only, so every layer can name them without depending on the loader.
import type { LtsValue, NodeEntry } from './schema.js';
import type { LtsConfFile } from './lts-conf.js';
import type { Cidr } from '../util/ipv4.js';
import type { EtcdTlsFiles } from './etcd-tls.js';

type DhcpMode = 'full' | 'proxy' | 'off';

export interface ResolvedSubnet {
  cidr: string;
  network: Cidr;
  netmask: string;
  broadcast: string;
  rangeStart: number;
  rangeEnd: number;
  router: string | undefined;
  dns: string[];
  domain: string | undefined;
  leaseSeconds: number;
}

export type NodeArch = 'amd64' | 'arm64' | 'armhf';

export interface ResolvedNode extends NodeEntry {
  mac: string;
}

type UnknownNodesPolicy = 'ignore' | 'discover' | 'boot-default';

export interface ResolvedKubernetes {
  apiServer: string;
  /** `sha256:<hex>` pins for discovery. */
  caCertHashes: string[];
  kubeconfig: string | undefined;
  /** A static token from the file (discouraged: every node gets the same one). */
  staticToken: string | undefined;
  tokenTtlSeconds: number;
  /** e.g. "v1.31" */
  version: string;
  /** kubeadm config API: v1beta4 from Kubernetes 1.31, v1beta3 before. */
  kubeadmApiVersion: 'kubeadm.k8s.io/v1beta4' | 'kubeadm.k8s.io/v1beta3';
  /** Who gets a join token: any enrolled node, an operator-approved one, or one that proved its registered TPM. */
  admission: 'auto' | 'approve' | 'tpm';
  /** kubernetes.admission: tpm; trustOnFirstUse: a node without a registered EK has its first attested EK registered. */
  tpm: { trustOnFirstUse: boolean };
}

/** Budgets of machines in no inventory (server/config/schema.ts DhcpLimitsSchema); 0 turns a rate limit off. */
export interface DhcpLimits {
  unknownClientBurst: number;
  unknownClientPerMinute: number;
  unknownGlobalBurst: number;
  unknownGlobalPerSecond: number;
  trackedClients: number;
  unknownLeasePercent: number;
  maxQuarantinedPercent: number;
}

export type SecureBootSetting = boolean | 'site';

/** A db key the site enrolled in its machines' firmware, which signs iPXE for `secureBoot: site` (server/boot/signing.ts). Paths absolute. */
export interface SigningKey {
  key: string;
  cert: string;
  passphraseFile: string | undefined;
}

/** What defaults, a profile or a node can set. */
export interface ConfigLayer {
  image?: string | undefined;
  lts?: Record<string, LtsValue> | undefined;
  /** An imported lts.conf, already parsed; evaluated for each node with LTSP5's rules. */
  ltsFile?: { path: string; parsed: LtsConfFile } | undefined;
  labels?: Record<string, string> | undefined;
  taints?: string[] | undefined;
  join?: boolean | undefined;
  kernelArgs?: string | undefined;
  /** true: UEFI nodes get shim and Debian's signed GRUB instead of iPXE; site: iPXE signed with boot.signingKey (server/boot/policy.ts). */
  secureBoot?: SecureBootSetting | undefined;
}

export interface ProfileMatch {
  arch?: NodeArch | undefined;
  /** Lower case, colon separated. */
  macPrefix?: string | undefined;
  label?: Record<string, string> | undefined;
  piModel?: 3 | 4 | 5 | undefined;
}

export interface ResolvedProfile extends ConfigLayer {
  name: string;
  /** Without a match a profile applies only to nodes that name it. */
  match?: ProfileMatch | undefined;
}

export interface LayerSet {
  defaults: ConfigLayer;
  profiles: ResolvedProfile[];
  defaultImage: string;
}

export interface ResolvedConfig {
  file: string;
  server: {
    address: string;
    stateDir: string;
    syncWrites: boolean;
    /** Machines in no inventory kept for enrolment; the one seen longest ago is evicted past it. */
    maxDiscovered: number;
    /** SIGTERM waits this long for TFTP and HTTP transfers in flight, then cuts them. */
    drainSeconds: number;
  };
  dhcp: {
    mode: DhcpMode;
    port: number;
    proxyPort: number;
    interface: string | undefined;
    subnets: ResolvedSubnet[];
    offerHoldSeconds: number;
    declineQuarantineSeconds: number;
    piProxyDelayMs: number;
    routerAdvertisements: boolean;
    limits: DhcpLimits;
  };
  tftp: {
    enabled: boolean;
    port: number;
    root: string;
    addresses: string[] | undefined;
    maxBlockSize: number;
    maxWindowSize: number;
    maxTransfers: number;
    maxTransfersPerClient: number;
    maxTimeoutSeconds: number;
    singlePort: boolean;
  };
  http: {
    enabled: boolean;
    port: number;
    host: string;
    maxConnections: number;
    maxConnectionsPerClient: number;
    headersTimeoutSeconds: number;
    requestTimeoutSeconds: number;
    keepAliveTimeoutSeconds: number;
    idleTimeoutSeconds: number;
  };
  nbd: {
    enabled: boolean;
    port: number;
    host: string;
    allow: 'leased' | 'any';
    backend: 'builtin' | 'nbd-server' | 'nbdkit';
    exports: Array<{ name: string; file: string }>;
    handshakeTimeoutSeconds: number;
    maxConnections: number;
    maxConnectionsPerClient: number;
    maxHandshakeOptions: number;
    maxBufferedReadMiB: number;
  };
  boot: {
    bios: string;
    uefiX64: string;
    uefiArm64: string;
    kernelArgs: string;
    templatesDir: string | undefined;
    signingKey: SigningKey | undefined;
    /** How long a node may stay silent after fetching its bootloader before its timeline gets a hint (server/boot/silent-boot-watch.ts). */
    silentBootloaderSeconds: number;
  };
  nodes: ResolvedNode[];
  layers: LayerSet;
  unknownNodes: UnknownNodesPolicy;
  kubernetes: ResolvedKubernetes | undefined;
  /** Bearer token for API mutations: api.token, else the BOOTFARM_API_TOKEN environment variable. */
  api: { token: string | undefined; tokenSource: 'config' | 'environment' | 'none'; protectReads: boolean };
  images: { dir: string; default: string };
  /** Pi HTTP boot: the key that signs boot.img (absolute), or undefined for the one generated into server.stateDir (server/pi/signing-key.ts). */
  pi: { signingKey: string | undefined };
  log: { level: string };
  /** Where leases are claimed: this instance's files only, or etcd shared with other instances (server/store/open-lease-claims.ts). */
  store: {
    backend: 'file' | 'etcd';
    /** claimTimeoutMs: the longest a DHCP reply waits for etcd before no new address is given. */
    /** tls: absolute paths, checked at load (server/config/etcd-tls.ts); set exactly when the endpoints are https. */
    etcd: { endpoints: string[]; prefix: string; claimTimeoutMs: number; tls: EtcdTlsFiles | undefined } | undefined;
  };
}
