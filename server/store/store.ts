// Inventory and state behind one small interface: nodes, leases, boot events.
// FileStore keeps everything in memory and persists it through a DurableLog under
// server.stateDir. Leases are committed (fsync) before a client is told about them.
import type { ResolvedNode } from '../config/load.js';
import { DurableLog } from './durable-log.js';

export type LeaseState = 'bound' | 'released' | 'declined';

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

export interface Store {
  nodes(): ResolvedNode[];
  nodeByMac(mac: string): ResolvedNode | undefined;
  nodeByPiSerial(serial: string): ResolvedNode | undefined;
  /** Adds or replaces a node; resolves once it is durable. */
  putNode(node: ResolvedNode): Promise<void>;

  leases(): LeaseRecord[];
  leaseByIp(ip: string): LeaseRecord | undefined;
  /** Records a lease change; resolves once it is durable. */
  putLease(lease: LeaseRecord): Promise<void>;

  /** Appends to a node's boot timeline (kept to the last EVENTS_PER_NODE). */
  recordEvent(event: NodeEvent): void;
  events(mac: string): NodeEvent[];

  close(): Promise<void>;
}

export const EVENTS_PER_NODE = 200;

type JournalRecord =
  | { t: 'node'; node: ResolvedNode }
  | { t: 'lease'; lease: LeaseRecord }
  | { t: 'event'; event: NodeEvent };

export class FileStore implements Store {
  private readonly nodeMap = new Map<string, ResolvedNode>();
  private readonly leaseMap = new Map<string, LeaseRecord>();
  private readonly eventMap = new Map<string, NodeEvent[]>();
  private readonly log: DurableLog<JournalRecord>;

  private constructor(dir: string, sync: boolean) {
    this.log = new DurableLog<JournalRecord>({
      dir,
      name: 'state',
      compactAfter: 20000,
      snapshot: () => this.snapshot(),
      sync,
    });
  }

  /**
   * Opens the store under `dir`; nodes from the configuration replace stored ones
   * of the same MAC. `sync` (server.syncWrites): see DurableLogOptions.sync.
   */
  static async open(dir: string, configNodes: ResolvedNode[], sync = true): Promise<{ store: FileStore; skippedLines: number }> {
    const store = new FileStore(dir, sync);
    const loaded = await store.log.open();
    for (const rec of loaded.records) store.apply(rec);
    for (const node of configNodes) store.nodeMap.set(node.mac, node);
    return { store, skippedLines: loaded.skippedLines };
  }

  private apply(rec: JournalRecord): void {
    if (rec.t === 'node') this.nodeMap.set(rec.node.mac, rec.node);
    else if (rec.t === 'lease') this.leaseMap.set(rec.lease.ip, rec.lease);
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
    for (const node of this.nodeMap.values()) out.push({ t: 'node', node });
    for (const lease of this.leaseMap.values()) out.push({ t: 'lease', lease });
    for (const list of this.eventMap.values()) for (const event of list) out.push({ t: 'event', event });
    return out;
  }

  nodes(): ResolvedNode[] {
    return [...this.nodeMap.values()];
  }

  nodeByMac(mac: string): ResolvedNode | undefined {
    return this.nodeMap.get(mac);
  }

  nodeByPiSerial(serial: string): ResolvedNode | undefined {
    for (const node of this.nodeMap.values()) if (node.piSerial === serial) return node;
    return undefined;
  }

  putNode(node: ResolvedNode): Promise<void> {
    this.nodeMap.set(node.mac, node);
    return this.log.append({ t: 'node', node });
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

  close(): Promise<void> {
    return this.log.close();
  }
}
