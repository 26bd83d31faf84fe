// Inventory and state behind one small interface: nodes, leases, boot events.
// FileStore keeps everything in memory and persists it through a DurableLog under
// server.stateDir. Leases are committed (fsync) before a client is told about them.
import type { Logger } from 'pino';
import type { ResolvedNode } from '../config/types.js';
import { DEFAULT_MAX_DISCOVERED } from '../config/defaults.js';
import type { Metrics } from '../metrics.js';
import { DurableLog, type LoadedLog, type LogHealth } from './durable-log.js';
import { DiscoveredIndex, type DiscoveredMachine } from './discovered-index.js';

type LeaseState = 'bound' | 'released' | 'declined';

export interface LeaseRecord {
  ip: string;
  /** Client identifier (option 61, hex) or MAC: what the lease is keyed on. */
  key: string;
  mac: string;
  state: LeaseState;
  /** Epoch ms: end of the lease, or of the quarantine for a declined address. */
  expiresAt: number;
  hostname?: string | undefined;
  updatedAt: number;
}

export interface NodeEvent {
  at: string;
  mac: string;
  /** e.g. dhcp.offer, dhcp.ack, dhcp.nak, tftp.file, nbd.attach, booted, joined */
  type: string;
  detail?: Record<string, string | number | boolean | undefined>;
}

/** A node's boot in progress, as far as the agent and the join are concerned (see join/boot-sessions.ts). */
export interface BootSessionRecord {
  mac: string;
  bootId: string;
  /**
   * SHA-256 of this boot's one-time nonce (server/join/boot-credentials.ts): the
   * node's boot script carries the nonce, its first configuration fetch spends it.
   * Absent in records from before boot nonces.
   */
  nonceDigest?: string | undefined;
  /** When the nonce was spent (the configuration fetch that opened the agent's side of the boot). */
  nonceUsedAt?: number | undefined;
  /** SHA-256 of the phone-home secret handed out for the nonce; never the secret itself. */
  secretDigest?: string | undefined;
  /** Records from before digests held the secret itself; never written any more. */
  secret?: string | undefined;
  startedAt: number;
  openedAt: number;
  state: 'booting' | 'booted' | 'joined' | 'failed' | 'expired' | 'superseded' | 'revoked';
  joinServed: boolean;
  /** kubernetes.admission: approve: when an operator approved this boot, and who (the API caller or the CLI). */
  approvedAt?: number | undefined;
  approvedBy?: string | undefined;
  /** Public id of the bootstrap token minted for this boot (never the secret part). */
  tokenId: string | undefined;
  tokenExpiresAt: number | undefined;
  /** The address the node's boot script was served to: the session answers no other (absent in records from before it was kept). */
  address?: string | undefined;
}

/**
 * The image version a machine's root was last attached from (server/nbd/server.ts).
 * It stays the machine's until it attaches another: a node that is running may
 * reconnect to it at any time, so `bootfarm image gc` keeps it (server/image/gc.ts).
 */
export interface RootAttachment {
  /** The node's MAC; for a client no node is known for, `address:<ip>`. */
  key: string;
  mac?: string | undefined;
  hostname?: string | undefined;
  address: string;
  image: string;
  version: string;
  /** The export name the client asked for (`<image>/<version>/<arch>`, or `<image>/<arch>` for `current`). */
  export: string;
  /** Epoch ms of the attach. */
  at: number;
}

export interface Store {
  /** Every node: the configuration's, then those added through the API. */
  nodes(): ResolvedNode[];
  nodeByMac(mac: string): ResolvedNode | undefined;
  nodeByPiSerial(serial: string): ResolvedNode | undefined;
  /** Whether the node comes from the configuration file (read-only to the API). */
  isConfigNode(mac: string): boolean;
  /** Adds or replaces an API node; resolves once it is durable. */
  putNode(node: ResolvedNode): Promise<void>;
  removeNode(mac: string): Promise<void>;
  /** Changes whenever the set of nodes does (caches key on it). */
  readonly nodesVersion: number;

  /** Every discovered machine, oldest first: a copy, for the API (never per packet). */
  discovered(): DiscoveredMachine[];
  discoveredByMac(mac: string): DiscoveredMachine | undefined;
  discoveredByPiSerial(serial: string): DiscoveredMachine | undefined;
  /** Adds or refreshes one; past server.maxDiscovered the machine seen longest ago is evicted. */
  putDiscovered(machine: DiscoveredMachine): void;
  removeDiscovered(mac: string): Promise<void>;

  sessions(): BootSessionRecord[];
  putSession(session: BootSessionRecord): Promise<void>;

  /** Each machine's last root attachment. */
  attachments(): RootAttachment[];
  /** Records an attach (replacing the machine's previous one); resolves once it is durable. */
  putAttachment(attachment: RootAttachment): Promise<void>;

  leases(): LeaseRecord[];
  leaseByIp(ip: string): LeaseRecord | undefined;
  /** Records a lease change; resolves once it is durable. */
  putLease(lease: LeaseRecord): Promise<void>;

  /** Appends to a node's boot timeline (kept to the last EVENTS_PER_NODE). */
  recordEvent(event: NodeEvent): void;
  events(mac: string): NodeEvent[];

  /** Whether state writes succeed; unhealthy while a journal or snapshot write fails and is retried. */
  health(): LogHealth;

  close(): Promise<void>;
}

export interface StoreOpenOptions {
  /** server.maxDiscovered */
  maxDiscovered?: number | undefined;
  /** `bootfarm serve --repair`: keep the intact records of damaged state files, move them aside, start. */
  repair?: boolean | undefined;
  /** Quoted in the error that refuses damaged state (e.g. with the configuration file filled in). */
  repairCommand?: string | undefined;
  /** Journal records between snapshots (tests make it small). */
  compactAfter?: number | undefined;
  metrics?: Metrics | undefined;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'> | undefined;
}

export interface StoreOpened {
  store: FileStore;
  skippedLines: number;
  load: LoadedLog;
}

const EVENTS_PER_NODE = 200;

type JournalRecord =
  | { t: 'node'; node: ResolvedNode }
  | { t: 'node-removed'; mac: string }
  | { t: 'discovered'; machine: DiscoveredMachine }
  | { t: 'discovered-removed'; mac: string }
  | { t: 'session'; session: BootSessionRecord }
  | { t: 'lease'; lease: LeaseRecord }
  | { t: 'attach'; attachment: RootAttachment }
  | { t: 'event'; event: NodeEvent };

export class FileStore implements Store {
  /** Nodes from the configuration file: never journaled, they come from the file on every start. */
  private readonly configNodes = new Map<string, ResolvedNode>();
  /** Nodes added through the API. */
  private readonly apiNodes = new Map<string, ResolvedNode>();
  private readonly discoveredIndex: DiscoveredIndex;
  private readonly sessionMap = new Map<string, BootSessionRecord>();
  private version = 0;
  private readonly leaseMap = new Map<string, LeaseRecord>();
  private readonly attachmentMap = new Map<string, RootAttachment>();
  private readonly eventMap = new Map<string, NodeEvent[]>();
  private readonly log: DurableLog<JournalRecord>;

  private readonly metrics: Metrics | undefined;
  private readonly logger: StoreOpenOptions['logger'];

  private constructor(dir: string, sync: boolean, options: StoreOpenOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.discoveredIndex = new DiscoveredIndex(options.maxDiscovered ?? DEFAULT_MAX_DISCOVERED);
    this.log = new DurableLog<JournalRecord>({
      dir,
      name: 'state',
      compactAfter: options.compactAfter ?? 20000,
      snapshot: () => this.snapshot(),
      sync,
      repair: options.repair,
      repairCommand: options.repairCommand,
      observer: {
        writeError: (operation, err, retryInMs) => {
          this.metrics?.stateWriteErrors.inc({ operation });
          this.logger?.error(
            { operation, err: err.message, code: (err as NodeJS.ErrnoException).code, stateDir: dir, retryInMs },
            'state write failed; retrying',
          );
        },
        healthChanged: (health) => {
          this.metrics?.stateHealthy.set(health.healthy ? 1 : 0);
          if (health.healthy) this.logger?.info({ stateDir: dir }, 'state writes succeed again');
        },
      },
    });
  }

  /**
   * Opens the store under `dir`; nodes from the configuration shadow stored ones
   * of the same MAC. `sync` (server.syncWrites): see DurableLogOptions.sync.
   * Throws StateDamagedError (server/store/state-reader.ts) on damaged state unless options.repair.
   */
  static async open(dir: string, configNodes: ResolvedNode[], sync = true, options: StoreOpenOptions = {}): Promise<StoreOpened> {
    const store = new FileStore(dir, sync, options);
    const load = await store.log.open((rec) => store.apply(rec, true));
    const evicted = store.discoveredIndex.settleAfterLoad();
    await store.log.finishOpen();
    for (const node of configNodes) store.configNodes.set(node.mac, node);
    store.metrics?.stateHealthy.set(1);
    store.metrics?.discoveredMachines.set(store.discoveredIndex.size);
    if (evicted > 0) store.metrics?.discoveredEvicted.inc(evicted);
    store.reportOpen(dir, load, evicted);
    return { store, skippedLines: load.skippedLines, load };
  }

  private reportOpen(dir: string, load: LoadedLog, evicted: number): void {
    for (const note of load.permissionNotes) this.logger?.warn({ stateDir: dir }, note);
    if (evicted > 0)
      this.logger?.info(
        { evicted, kept: this.discoveredIndex.size },
        'discovered machines over server.maxDiscovered: those seen longest ago were dropped',
      );
    if (load.rewritten) this.logger?.info({ stateDir: dir }, 'state rewritten in the current format');
    if (!load.repaired) return;
    for (const d of load.repaired.damage.slice(0, 100))
      this.logger?.warn({ file: d.file, offset: d.offset, line: d.line, reason: d.reason }, 'state repair: dropped a damaged record');
    this.logger?.warn(
      {
        damaged: load.repaired.damage.length,
        movedAside: load.repaired.movedAside,
        kept: {
          nodes: this.apiNodes.size,
          leases: this.leaseMap.size,
          sessions: this.sessionMap.size,
          discovered: this.discoveredIndex.size,
        },
      },
      'state repaired: intact records kept, damaged files moved aside',
    );
  }

  private apply(rec: JournalRecord, loading = false): void {
    if (rec.t === 'node') this.apiNodes.set(rec.node.mac, rec.node);
    else if (rec.t === 'node-removed') this.apiNodes.delete(rec.mac);
    else if (rec.t === 'discovered') {
      if (loading) this.discoveredIndex.load(rec.machine);
      else this.discoveredIndex.put(rec.machine);
    } else if (rec.t === 'discovered-removed') this.discoveredIndex.delete(rec.mac);
    else if (rec.t === 'session') this.sessionMap.set(rec.session.mac, rec.session);
    else if (rec.t === 'lease') this.leaseMap.set(rec.lease.ip, rec.lease);
    else if (rec.t === 'attach') this.attachmentMap.set(rec.attachment.key, rec.attachment);
    else if (rec.t === 'event') this.pushEvent(rec.event);
  }

  private pushEvent(event: NodeEvent): void {
    let list = this.eventMap.get(event.mac);
    if (!list) {
      list = [];
      this.eventMap.set(event.mac, list);
    }
    list.push(event);
    if (list.length > EVENTS_PER_NODE) list.splice(0, list.length - EVENTS_PER_NODE);
  }

  private snapshot(): JournalRecord[] {
    const out: JournalRecord[] = [];
    for (const node of this.apiNodes.values()) out.push({ t: 'node', node });
    for (const machine of this.discoveredIndex.values()) out.push({ t: 'discovered', machine });
    for (const session of this.sessionMap.values()) out.push({ t: 'session', session });
    for (const lease of this.leaseMap.values()) out.push({ t: 'lease', lease });
    for (const attachment of this.attachmentMap.values()) out.push({ t: 'attach', attachment });
    for (const list of this.eventMap.values()) for (const event of list) out.push({ t: 'event', event });
    return out;
  }

  get nodesVersion(): number {
    return this.version;
  }

  nodes(): ResolvedNode[] {
    const out = [...this.configNodes.values()];
    for (const node of this.apiNodes.values()) if (!this.configNodes.has(node.mac)) out.push(node);
    return out;
  }

  nodeByMac(mac: string): ResolvedNode | undefined {
    return this.configNodes.get(mac) ?? this.apiNodes.get(mac);
  }

  nodeByPiSerial(serial: string): ResolvedNode | undefined {
    for (const node of this.nodes()) if (node.piSerial === serial) return node;
    return undefined;
  }

  isConfigNode(mac: string): boolean {
    return this.configNodes.has(mac);
  }

  /** A configuration reload: the file's nodes replace the previous file's (never journaled, as at open). */
  replaceConfigNodes(nodes: ResolvedNode[]): void {
    this.configNodes.clear();
    for (const node of nodes) this.configNodes.set(node.mac, node);
    this.version++;
  }

  putNode(node: ResolvedNode): Promise<void> {
    this.apiNodes.set(node.mac, node);
    this.version++;
    return this.log.append({ t: 'node', node });
  }

  removeNode(mac: string): Promise<void> {
    this.apiNodes.delete(mac);
    this.version++;
    return this.log.append({ t: 'node-removed', mac });
  }

  discovered(): DiscoveredMachine[] {
    return [...this.discoveredIndex.values()];
  }

  discoveredByMac(mac: string): DiscoveredMachine | undefined {
    return this.discoveredIndex.get(mac);
  }

  discoveredByPiSerial(serial: string): DiscoveredMachine | undefined {
    return this.discoveredIndex.byPiSerial(serial);
  }

  /**
   * Not awaited: a lost "last seen" costs nothing, and DHCP must not wait on it.
   * An eviction is not journaled: the machine's records replay into the same
   * bounded index on load, and the next snapshot leaves it out.
   */
  putDiscovered(machine: DiscoveredMachine): void {
    const evicted = this.discoveredIndex.put(machine);
    if (evicted.length > 0) this.metrics?.discoveredEvicted.inc(evicted.length);
    this.metrics?.discoveredMachines.set(this.discoveredIndex.size);
    this.log.appendLater({ t: 'discovered', machine });
  }

  removeDiscovered(mac: string): Promise<void> {
    this.discoveredIndex.delete(mac);
    this.metrics?.discoveredMachines.set(this.discoveredIndex.size);
    return this.log.append({ t: 'discovered-removed', mac });
  }

  sessions(): BootSessionRecord[] {
    return [...this.sessionMap.values()];
  }

  putSession(session: BootSessionRecord): Promise<void> {
    this.sessionMap.set(session.mac, session);
    return this.log.append({ t: 'session', session });
  }

  attachments(): RootAttachment[] {
    return [...this.attachmentMap.values()];
  }

  putAttachment(attachment: RootAttachment): Promise<void> {
    this.attachmentMap.set(attachment.key, attachment);
    return this.log.append({ t: 'attach', attachment });
  }

  leases(): LeaseRecord[] {
    return [...this.leaseMap.values()];
  }

  leaseByIp(ip: string): LeaseRecord | undefined {
    return this.leaseMap.get(ip);
  }

  putLease(lease: LeaseRecord): Promise<void> {
    this.leaseMap.set(lease.ip, lease);
    return this.log.append({ t: 'lease', lease });
  }

  recordEvent(event: NodeEvent): void {
    this.pushEvent(event);
    this.log.appendLater({ t: 'event', event });
  }

  events(mac: string): NodeEvent[] {
    return [...(this.eventMap.get(mac) ?? [])];
  }

  health(): LogHealth {
    return this.log.health();
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
