// The inventory: every node bootfarm knows, with its effective configuration
// (defaults, profiles, node), the machines it has seen but does not know, and
// the one place that decides what an unknown machine gets (unknownNodes).
// DHCP, the file resolvers, NBD and the API all ask it; nothing else reads nodes.
import type { ResolvedConfig, ResolvedNode } from '../config/types.js';
import type { ConfigSource } from '../config/live.js';
import type { Store } from '../store/store.js';
import type { DiscoveredMachine } from '../store/discovered-index.js';
import type { ClientIdentity } from '../dhcp/codec/identity.js';
import { effectiveNode, inferArch, type EffectiveNode } from './effective.js';
import { normalizeMac } from '../util/mac.js';

/** Proxy mode: addresses remembered from REQUESTs, for at most this many MACs. */
const MAX_OBSERVED_ADDRESSES = 10_000;

export class InventoryError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'InventoryError';
  }
}

/** What the API and CLI may set on a node (the NodeSchema of the configuration file). */
export type NodeInput = Omit<ResolvedNode, 'mac'> & { mac: string };

/** Only "last seen" moves for a machine that keeps asking; write it at most this often. */
const DISCOVERED_REFRESH_MS = 60_000;

export class Inventory {
  private cacheVersion = -1;
  /** The configuration the cache was built from: a reload changes profiles and defaults without changing nodesVersion. */
  private cacheConfig: ResolvedConfig | undefined;
  private readonly byMacCache = new Map<string, EffectiveNode>();
  /** Addresses seen in proxy mode, where another server holds the leases. */
  private readonly observed = new Map<string, string>();

  /** `source` is read per call, so a reload (server/config/live.ts) reaches every next answer. */
  constructor(
    private readonly source: ConfigSource,
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  private get config(): ResolvedConfig {
    return this.source.config;
  }

  get unknownNodes(): ResolvedConfig['unknownNodes'] {
    return this.config.unknownNodes;
  }

  private refresh(): void {
    const config = this.config;
    if (this.cacheVersion === this.store.nodesVersion && this.cacheConfig === config) return;
    this.byMacCache.clear();
    for (const node of this.store.nodes()) {
      this.byMacCache.set(node.mac, effectiveNode(node, config.layers, this.store.isConfigNode(node.mac) ? 'config' : 'api'));
    }
    this.cacheVersion = this.store.nodesVersion;
    this.cacheConfig = config;
  }

  nodes(): EffectiveNode[] {
    this.refresh();
    return [...this.byMacCache.values()];
  }

  /** A known node, or under unknownNodes: boot-default a default node for any MAC. */
  byMac(mac: string): EffectiveNode | undefined {
    this.refresh();
    const normalized = normalizeMac(mac);
    return this.byMacCache.get(normalized) ?? this.defaultNodeFor(normalized);
  }

  /** Only nodes in the inventory (never a boot-default stand-in). */
  knownByMac(mac: string): EffectiveNode | undefined {
    this.refresh();
    return this.byMacCache.get(normalizeMac(mac));
  }

  /** An inventory node (configuration or API) with this Pi serial; never a discovered machine. */
  knownByPiSerial(serial: string): EffectiveNode | undefined {
    this.refresh();
    const wanted = serial.toLowerCase();
    for (const node of this.byMacCache.values()) if (node.piSerial === wanted) return node;
    return undefined;
  }

  byPiSerial(serial: string): EffectiveNode | undefined {
    this.refresh();
    const wanted = serial.toLowerCase();
    for (const node of this.byMacCache.values()) if (node.piSerial === wanted) return node;
    if (this.config.unknownNodes !== 'boot-default') return undefined;
    const seen = this.store.discoveredByPiSerial(wanted);
    return seen ? this.defaultNodeFor(seen.mac) : undefined;
  }

  /** The node whose lease (or configured address, or address seen in proxy mode) is `address`. */
  byAddress(address: string): EffectiveNode | undefined {
    const lease = this.store.leaseByIp(address);
    if (lease && lease.state === 'bound' && lease.expiresAt > this.now()) return this.byMac(lease.mac);
    const reserved = this.nodes().find((n) => n.ip === address);
    if (reserved) return reserved;
    for (const [mac, seen] of this.observed) {
      if (seen !== address) continue;
      // A node with a configured address is reachable only there: what a REQUEST asserted never adds to it.
      const node = this.byMac(mac);
      if (node && !node.ip) return node;
    }
    return undefined;
  }

  /** Is `address` the one this node boots from right now? Answers the agent's and the join's access check. */
  isNodeAddress(mac: string, address: string): boolean {
    const node = this.byMac(mac);
    if (!node) return false;
    const lease = this.store.leaseByIp(address);
    if (lease) return lease.state === 'bound' && lease.expiresAt > this.now() && lease.mac === node.mac;
    // The observed address is what a DHCP REQUEST asserted (server/dhcp/server/observed-address.ts):
    // never trusted over, or beside, an address the operator configured.
    if (node.ip) return node.ip === address;
    return this.observed.get(node.mac) === address;
  }

  /**
   * Proxy mode: the address a node's REQUEST to the other server asked for (option 50 or ciaddr),
   * once the DHCP service found it plausible. Ignored for a node with a configured address.
   */
  observeAddress(mac: string, address: string): void {
    const key = normalizeMac(mac);
    if (this.byMac(key)?.ip) return;
    // Under boot-default any MAC is a node: the table is bounded, oldest first out.
    this.observed.delete(key);
    if (this.observed.size >= MAX_OBSERVED_ADDRESSES) {
      const oldest = this.observed.keys().next();
      if (!oldest.done) this.observed.delete(oldest.value);
    }
    this.observed.set(key, address);
  }

  private defaultNodeFor(mac: string): EffectiveNode | undefined {
    if (this.config.unknownNodes !== 'boot-default') return undefined;
    const seen = this.store.discoveredByMac(mac);
    const node: ResolvedNode = {
      mac,
      hostname: `node-${mac.replace(/:/g, '')}`,
      arch: seen?.arch,
      piSerial: seen?.piSerial,
      piModel: seen?.piModel,
      // An unknown machine boots the default image but never joins: no token for a machine nobody enrolled.
      join: false,
    };
    return effectiveNode(node, this.config.layers, 'unknown');
  }

  /** Records a machine that is in no inventory (unknownNodes: discover or boot-default). */
  discover(identity: ClientIdentity): void {
    if (this.config.unknownNodes === 'ignore' || this.knownByMac(identity.mac)) return;
    const at = new Date(this.now()).toISOString();
    // O(1) per packet: a DISCOVER flood from forged MACs must not cost a scan of every machine seen.
    const previous = this.store.discoveredByMac(identity.mac);
    if (previous && this.now() - Date.parse(previous.lastSeen) < DISCOVERED_REFRESH_MS) return;
    // BIOS PXE says only "x86": every such machine bootfarm serves runs amd64 images.
    const arch = identity.raspberryPi
      ? 'arm64'
      : identity.cpu === 'x86_64' || identity.cpu === 'x86'
        ? 'amd64'
        : identity.cpu === 'arm64'
          ? 'arm64'
          : identity.cpu === 'arm32'
            ? 'armhf'
            : undefined;
    const machine: DiscoveredMachine = {
      mac: identity.mac,
      arch: previous?.arch ?? arch,
      firmware: identity.firmware,
      piSerial: identity.raspberryPi?.serial ?? previous?.piSerial,
      piModel: identity.raspberryPi?.model ?? previous?.piModel,
      firstSeen: previous?.firstSeen ?? at,
      lastSeen: at,
    };
    this.store.putDiscovered(machine);
  }

  discovered(): DiscoveredMachine[] {
    return this.store.discovered();
  }

  isConfigNode(mac: string): boolean {
    return this.store.isConfigNode(normalizeMac(mac));
  }

  /** Checks a node about to be stored against the others: unique MAC, hostname, address; known profile. */
  private validate(node: ResolvedNode, replacing: string | undefined): void {
    for (const other of this.store.nodes()) {
      if (other.mac === replacing) continue;
      if (other.mac === node.mac) throw new InventoryError(409, `a node with MAC ${node.mac} exists already (${other.hostname})`);
      if (other.hostname.toLowerCase() === node.hostname.toLowerCase())
        throw new InventoryError(409, `hostname ${node.hostname} is taken by ${other.mac}`);
      if (node.ip && other.ip === node.ip)
        throw new InventoryError(409, `address ${node.ip} is reserved for ${other.hostname} (${other.mac})`);
      if (node.piSerial && other.piSerial === node.piSerial)
        throw new InventoryError(409, `Pi serial ${node.piSerial} belongs to ${other.hostname} (${other.mac})`);
    }
    if (node.profile && !this.config.layers.profiles.some((p) => p.name === node.profile)) {
      throw new InventoryError(
        400,
        `profile: expected one of ${this.config.layers.profiles.map((p) => p.name).join(', ') || '(no profiles are defined)'}, got ${JSON.stringify(node.profile)}`,
      );
    }
  }

  private normalize(input: NodeInput): ResolvedNode {
    return { ...input, mac: normalizeMac(input.mac), piSerial: input.piSerial?.toLowerCase() };
  }

  async create(input: NodeInput): Promise<EffectiveNode> {
    const node = this.normalize(input);
    this.validate(node, undefined);
    await this.store.putNode(node);
    if (this.store.discoveredByMac(node.mac)) await this.store.removeDiscovered(node.mac);
    return this.byMac(node.mac) as EffectiveNode;
  }

  async update(mac: string, input: NodeInput): Promise<EffectiveNode> {
    const key = normalizeMac(mac);
    this.assertWritable(key);
    const node = this.normalize(input);
    if (node.mac !== key) throw new InventoryError(400, `mac: expected ${key} (the node being updated), got ${node.mac}`);
    this.validate(node, key);
    await this.store.putNode(node);
    return this.byMac(key) as EffectiveNode;
  }

  async remove(mac: string): Promise<void> {
    const key = normalizeMac(mac);
    this.assertWritable(key);
    await this.store.removeNode(key);
  }

  /** Turns a discovered machine into a node, keeping what the firmware told us. */
  async enrol(mac: string, input: Omit<NodeInput, 'mac'>): Promise<EffectiveNode> {
    const key = normalizeMac(mac);
    const seen = this.store.discoveredByMac(key);
    if (!seen) throw new InventoryError(404, `no discovered machine with MAC ${key}`);
    return this.create({
      ...input,
      mac: key,
      arch: input.arch ?? seen.arch ?? inferArch({ arch: undefined, piSerial: seen.piSerial }),
      piSerial: input.piSerial ?? seen.piSerial,
      piModel: input.piModel ?? seen.piModel,
    });
  }

  private assertWritable(mac: string): void {
    if (this.store.isConfigNode(mac)) throw new InventoryError(409, `node ${mac} is defined in ${this.config.file}; change it there`);
    if (!this.store.nodeByMac(mac)) throw new InventoryError(404, `no node with MAC ${mac}`);
  }
}
