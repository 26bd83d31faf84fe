// The DHCP service: datagram -> decode -> client identity -> boot plan -> the
// handler of the configured mode -> encode -> send. Nothing thrown here escapes
// to the socket: malformed input is counted, logged at a bounded rate, dropped.
import type { Logger } from 'pino';
import { BOOTREQUEST, decodePacket, encodePacket, type DhcpPacket } from '../codec/packet.js';
import { MESSAGE_TYPE_NAMES, MessageType } from '../codec/options.js';
import { describeMalformed, readMessageType, readRequestedIp } from '../codec/readers.js';
import { identifyClient, type ClientIdentity } from '../codec/identity.js';
import { planBoot, type BootPlan, type BootPolicySettings } from '../../boot/policy.js';
import type { ResolvedConfig } from '../../config/types.js';
import type { Inventory } from '../../inventory/inventory.js';
import type { EffectiveNode } from '../../inventory/effective.js';
import type { Store } from '../../store/store.js';
import type { LeaseClaims } from '../../store/lease-claims.js';
import type { Metrics } from '../../metrics.js';
import { RateLimiter } from '../../util/rate-limited-log.js';
import { KeyedTokenBuckets, TokenBucket } from '../../util/token-bucket.js';
import { LeasePool } from './lease-pool.js';
import { FullModeHandler } from './full-handler.js';
import { ProxyModeHandler } from './proxy-handler.js';
import { BootServerHandler } from './boot-server-handler.js';
import { DhcpSockets, SendQueueFullError } from './sockets.js';
import { judgeObservedAddress, servedNetworks } from './observed-address.js';
import type { Cidr } from '../../util/ipv4.js';
import type { HandlerResult, Listener, ModeHandler, RequestContext } from './context.js';
import { destinationProblem, type Destination, type OutgoingReply } from './reply.js';

export interface DhcpServiceDeps {
  config: ResolvedConfig;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  policy: BootPolicySettings;
  /** Who a client is, and what an unknown one gets (unknownNodes). */
  inventory: Inventory;
  /** A known node sent a DISCOVER: a new boot of it began. */
  onNodeDiscover?: ((node: EffectiveNode) => void) | undefined;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /** Full mode: where addresses are claimed across instances (store.backend); this instance alone by default. */
  leaseClaims?: LeaseClaims | undefined;
}

export class DhcpService {
  private sockets: DhcpSockets | undefined;
  private readonly modeHandler: ModeHandler;
  private readonly bootServerHandler: BootServerHandler;
  readonly pool: LeasePool | undefined;
  private readonly malformedLog = new RateLimiter(10, 60_000);
  private readonly errorLog = new RateLimiter(10, 60_000);
  private readonly limitLog = new RateLimiter(10, 60_000);
  private readonly unsendableLog = new RateLimiter(10, 60_000);
  private readonly observedLog = new RateLimiter(10, 60_000);
  private readonly storeUnavailableLog = new RateLimiter(10, 60_000);
  private readonly clockSkewLog = new RateLimiter(10, 60_000);
  /** Proxy mode: where a node's asserted address may lie (server/dhcp/server/observed-address.ts). */
  private readonly observableNetworks: Cidr[];
  private readonly unknownPerClient: KeyedTokenBuckets;
  private readonly unknownGlobal: TokenBucket;
  private readonly now: () => number;
  private readonly pendingTimers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private readonly packetCounters = new Map<string, { inc(): void }>();

  constructor(private readonly deps: DhcpServiceDeps) {
    const { config, store } = deps;
    this.now = deps.now ?? Date.now;
    const serverId = config.server.address;
    const limits = config.dhcp.limits;
    this.unknownPerClient = new KeyedTokenBuckets(
      { burst: limits.unknownClientBurst, perSecond: limits.unknownClientPerMinute / 60 },
      limits.trackedClients,
    );
    this.unknownGlobal = new TokenBucket({ burst: limits.unknownGlobalBurst, perSecond: limits.unknownGlobalPerSecond }, this.now());
    if (config.dhcp.mode === 'full') {
      this.pool = new LeasePool(
        config.dhcp.subnets,
        store,
        config.dhcp.offerHoldSeconds * 1000,
        config.dhcp.declineQuarantineSeconds * 1000,
        limits,
        this.now(),
      );
      const claims = deps.leaseClaims;
      if (claims) this.pool.setHeldElsewhere((ip, key, now) => claims.heldByOther(ip, key, now));
      this.modeHandler = new FullModeHandler(this.pool, serverId, claims);
    } else {
      this.pool = undefined;
      this.modeHandler = new ProxyModeHandler(serverId, config.dhcp.piProxyDelayMs);
    }
    this.bootServerHandler = new BootServerHandler(serverId);
    this.observableNetworks =
      config.dhcp.mode === 'proxy'
        ? servedNetworks({
            serverAddress: serverId,
            interfaceName: config.dhcp.interface,
            subnets: config.dhcp.subnets.map((s) => s.network),
          })
        : [];
  }

  async start(): Promise<void> {
    const { config, logger } = this.deps;
    this.sockets = await DhcpSockets.open(
      {
        serverAddress: config.server.address,
        interfaceName: config.dhcp.interface,
        port: config.dhcp.port,
        bootServerPort: config.dhcp.proxyPort,
      },
      (data, source, listener) => this.receive(data, source, listener),
      (err) => logger.warn({ err: err.message }, 'dhcp socket error'),
    );
    logger.info(
      {
        mode: config.dhcp.mode,
        port: config.dhcp.port,
        bootServerPort: config.dhcp.proxyPort,
        address: config.server.address,
        interface: config.dhcp.interface,
      },
      'dhcp listening',
    );
    if (config.dhcp.mode === 'proxy' && this.observableNetworks.length === 0) {
      logger.warn(
        { address: config.server.address, interface: config.dhcp.interface },
        'proxy mode: no served network known (no dhcp.subnets, and server.address is on no interface with a netmask): addresses nodes ask the site server for are not recorded, so only nodes with a configured ip reach their agent routes',
      );
    }
  }

  async stop(): Promise<void> {
    for (const t of this.pendingTimers) clearTimeout(t);
    this.pendingTimers.clear();
    await this.sockets?.close();
    this.sockets = undefined;
  }

  /** Requests accepted but not yet answered (waiting for a lease commit). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  private dropMalformed(reason: string, category: string, source: Destination, length: number): void {
    this.deps.metrics.dhcpMalformed.inc({ reason: category });
    const gate = this.malformedLog.take(this.now());
    if (gate.log)
      this.deps.logger.warn(
        { from: `${source.address}:${source.port}`, bytes: length, reason, suppressedSinceLast: gate.suppressed },
        'dhcp packet dropped',
      );
  }

  /**
   * Entry point for every datagram. Synchronous part validates; the rest is async
   * and caught. Nothing escapes to the socket's event: a bug triggered by one
   * packet costs that packet, not the process.
   */
  receive(data: Buffer, source: Destination, listener: Listener): void {
    try {
      this.receiveUnguarded(data, source, listener);
    } catch (err) {
      this.handlerFailed(undefined, undefined, err);
    }
  }

  private handlerFailed(mac: string | undefined, messageType: number | undefined, err: unknown): void {
    this.deps.metrics.dhcpHandlerErrors.inc();
    const gate = this.errorLog.take(this.now());
    if (gate.log)
      this.deps.logger.error(
        {
          mac,
          type: messageType === undefined ? undefined : MESSAGE_TYPE_NAMES[messageType],
          err: (err as Error)?.message ?? String(err),
          suppressedSinceLast: gate.suppressed,
        },
        'dhcp request failed; no reply sent',
      );
  }

  /**
   * Budgets for machines in no inventory (dhcp.limits): a forged MAC costs the
   * attacker nothing, so there is a budget per MAC (in a table of bounded size)
   * and one for all of them together. Inventory nodes are never limited.
   */
  private admitUnknown(mac: string, leaseKey: string, messageType: number, source: Destination): boolean {
    const now = this.now();
    let scope: 'client' | 'global' | undefined;
    // The shared budget is spent on what starts an exchange (DISCOVER, INFORM):
    // a flood from random MACs can delay a new machine's DISCOVER, but not the
    // REQUEST of a machine that already holds this server's offer or lease.
    const starts = messageType === MessageType.DISCOVER || messageType === MessageType.INFORM;
    const continuing = this.pool?.holds(leaseKey, now) ?? false;
    if (!this.unknownPerClient.take(mac, now)) scope = 'client';
    else if (starts && !continuing && !this.unknownGlobal.take(now)) scope = 'global';
    if (!scope) return true;
    this.deps.metrics.dhcpRateLimited.inc({ scope });
    const gate = this.limitLog.take(now);
    if (gate.log)
      this.deps.logger.warn(
        { mac, from: `${source.address}:${source.port}`, scope, suppressedSinceLast: gate.suppressed },
        scope === 'client'
          ? 'dhcp request dropped: this unknown machine is over its budget (dhcp.limits.unknownClient*)'
          : 'dhcp request dropped: unknown machines together are over their budget (dhcp.limits.unknownGlobal*)',
      );
    return false;
  }

  private receiveUnguarded(data: Buffer, source: Destination, listener: Listener): void {
    const started = process.hrtime.bigint();
    const decoded = decodePacket(data);
    if (!decoded.ok) return this.dropMalformed(decoded.reason, 'undecodable', source, data.length);
    const packet = decoded.packet;
    // Replies of other DHCP servers reach the broadcast receiver too: not for us.
    if (packet.op !== BOOTREQUEST) return;
    if (packet.htype !== 1 || packet.hlen !== 6)
      return this.dropMalformed(`hardware type ${packet.htype}/${packet.hlen} is not Ethernet`, 'not-ethernet', source, data.length);
    const messageType = readMessageType(packet.options);
    if (messageType === undefined) return this.dropMalformed('no valid option 53 (message type)', 'no-message-type', source, data.length);
    const malformed = describeMalformed(packet.options);
    if (malformed.length > 0) this.dropMalformedNote(malformed, source);

    const identity = identifyClient(packet);
    const inventoryNode = this.inventoryNode(identity);
    if (!inventoryNode && !this.admitUnknown(identity.mac, identity.leaseKey, messageType, source)) return;
    const node = inventoryNode ?? this.unknownNode(identity);
    const plan =
      node || this.deps.inventory.unknownNodes === 'boot-default'
        ? planBoot(identity, node, this.deps.policy)
        : this.unknownMachine(identity);
    if (node) this.noteNode(node, inventoryNode !== undefined, messageType, packet, source);
    const ctx: RequestContext = {
      packet,
      messageType,
      identity,
      node,
      known: inventoryNode !== undefined,
      plan,
      source,
      listener,
      now: this.now(),
    };
    const handler = listener === 'boot-server' ? this.bootServerHandler : this.modeHandler;
    this.inFlight++;
    handler
      .handle(ctx)
      .then(
        (result) => {
          this.inFlight--;
          this.deliver(ctx, result, started);
        },
        (err: unknown) => {
          this.inFlight--;
          this.handlerFailed(identity.mac, messageType, err);
        },
      )
      .catch((err: unknown) => this.handlerFailed(identity.mac, messageType, err));
  }

  /** Options with a bad length are ignored (treated as absent), and noted. */
  private dropMalformedNote(problems: string[], source: Destination): void {
    this.deps.metrics.dhcpMalformed.inc({ reason: 'bad-option' });
    const gate = this.malformedLog.take(this.now());
    if (gate.log)
      this.deps.logger.warn(
        { from: `${source.address}:${source.port}`, problems, suppressedSinceLast: gate.suppressed },
        'dhcp options ignored',
      );
  }

  /**
   * The node in the inventory, by MAC only. A Pi's serial (option 97) is sent in
   * the clear and is anyone's to copy: a client naming a node's serial from
   * another MAC is not that node (it would skip every budget and take its
   * reservation), so it is treated as unknown, and said so.
   */
  private inventoryNode(identity: ClientIdentity): EffectiveNode | undefined {
    const { inventory } = this.deps;
    const byMac = inventory.knownByMac(identity.mac);
    if (byMac) return byMac;
    const serial = identity.raspberryPi?.serial;
    const claimed = serial ? inventory.knownByPiSerial(serial) : undefined;
    if (claimed) {
      this.deps.metrics.dhcpIdentityMismatch.inc();
      const gate = this.limitLog.take(this.now());
      if (gate.log)
        this.deps.logger.warn(
          { mac: identity.mac, serial, node: claimed.hostname, nodeMac: claimed.mac, suppressedSinceLast: gate.suppressed },
          "dhcp client names an inventory Pi's serial from another MAC: treated as an unknown machine",
        );
    }
    return undefined;
  }

  /** A machine in no inventory: recorded when discovering, a default node under boot-default. */
  private unknownNode(identity: ClientIdentity): EffectiveNode | undefined {
    const { inventory } = this.deps;
    if (inventory.unknownNodes === 'ignore') return undefined;
    // Only machines that ask to network-boot are worth recording.
    const wantsBoot = identity.wantsNetboot || identity.ipxe !== undefined || identity.raspberryPi !== undefined;
    if (wantsBoot) inventory.discover(identity);
    return wantsBoot ? inventory.byMac(identity.mac) : undefined;
  }

  /**
   * A machine in no inventory, under unknownNodes ignore or discover: plain DHCP
   * (in full mode it still gets an address), no boot file. Recorded when discovering.
   */
  private unknownMachine(identity: ClientIdentity): BootPlan {
    return { kind: 'none', reason: `${identity.mac} is in no inventory (unknownNodes: ${this.deps.inventory.unknownNodes})` };
  }

  private noteNode(node: EffectiveNode, inInventory: boolean, messageType: number, packet: DhcpPacket, source: Destination): void {
    // Boot sessions (and their join tokens) exist for inventory nodes only.
    if (inInventory && messageType === MessageType.DISCOVER) this.deps.onNodeDiscover?.(node);
    // Proxy mode: the leases are another server's; the address a node takes is
    // what its REQUEST asks for, and the agent's access check needs it. That is
    // the client's word only: kept when plausible, never for a node with a
    // configured address (server/inventory/inventory.ts ignores it there).
    if (this.deps.config.dhcp.mode !== 'proxy' || messageType !== MessageType.REQUEST || node.ip) return;
    const address = readRequestedIp(packet.options) ?? (packet.ciaddr !== '0.0.0.0' ? packet.ciaddr : undefined);
    if (!address) return;
    const verdict = judgeObservedAddress(
      address,
      source.address,
      packet.giaddr !== '0.0.0.0',
      this.observableNetworks,
      this.deps.config.server.address,
    );
    if (verdict.ok) {
      this.deps.inventory.observeAddress(node.mac, address);
      return;
    }
    this.deps.metrics.dhcpObservedAddressRefused.inc({ reason: verdict.reason });
    const gate = this.observedLog.take(this.now());
    if (gate.log)
      this.deps.logger.warn(
        {
          mac: node.mac,
          node: node.hostname,
          claimed: address,
          from: source.address,
          reason: verdict.reason,
          suppressedSinceLast: gate.suppressed,
        },
        'dhcp request asserts an address this node cannot have here: not recorded',
      );
  }

  /** Each request refused a new address while etcd cannot be reached, at a bounded rate (a DISCOVER storm meets an outage). */
  private logStoreUnavailable(ctx: RequestContext, result: HandlerResult): void {
    this.logRefusedAddress(this.storeUnavailableLog, ctx, result, 'dhcp: no new address while the lease store (etcd) cannot be reached');
  }

  /** Clock skew stops this instance: the request went unanswered (full-handler.ts clockStopped says why). */
  private logClockSkewSilent(ctx: RequestContext, result: HandlerResult): void {
    this.deps.metrics.dhcpClockSkewSilent.inc();
    this.logRefusedAddress(
      this.clockSkewLog,
      ctx,
      result,
      'dhcp: no answer for a dynamic address while this clock is stopped by skew (a healthy instance answers)',
    );
  }

  /** One line per refused address through its own rate gate, so one cause's storm cannot hide the other's lines. */
  private logRefusedAddress(rateGate: typeof this.clockSkewLog, ctx: RequestContext, result: HandlerResult, message: string): void {
    const gate = rateGate.take(this.now());
    if (gate.log)
      this.deps.logger.warn(
        {
          mac: ctx.identity.mac,
          type: MESSAGE_TYPE_NAMES[ctx.messageType],
          ip: result.detail?.ip,
          reason: result.detail?.reason,
          suppressedSinceLast: gate.suppressed,
        },
        message,
      );
  }

  private deliver(ctx: RequestContext, result: HandlerResult, started: bigint): void {
    const { metrics, logger, store } = this.deps;
    const typeName = MESSAGE_TYPE_NAMES[ctx.messageType] ?? String(ctx.messageType);
    this.packetCounter(typeName, ctx.listener, result.outcome).inc();
    if (result.outcome === 'unknown-lease-cap') metrics.dhcpUnknownLeaseCap.inc();
    if (result.outcome === 'ignored-decline') metrics.dhcpDeclinesIgnored.inc({ reason: String(result.detail?.reason ?? 'unknown') });
    if (result.outcome === 'store-unavailable') this.logStoreUnavailable(ctx, result);
    if (result.outcome === 'clock-skew-stopped') this.logClockSkewSilent(ctx, result);
    for (const reply of result.replies) this.sendReply(ctx, reply);
    metrics.dhcpHandleSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);

    // One structured line, and one timeline event, per boot-relevant exchange.
    const bootRelevant = ctx.node !== undefined || ctx.plan.kind !== 'none';
    if (!ctx.node && !logger.isLevelEnabled(bootRelevant ? 'info' : 'debug')) return;
    const event = {
      mac: ctx.identity.mac,
      node: ctx.node?.hostname,
      type: typeName,
      listener: ctx.listener,
      outcome: result.outcome,
      firmware: ctx.identity.firmware,
      arch: ctx.identity.archCode,
      ipxe: ctx.identity.ipxe !== undefined,
      bootFile: ctx.plan.kind === 'file' ? ctx.plan.bootFile : undefined,
      piSerial: ctx.plan.kind === 'raspberry-pi' ? ctx.plan.serial : undefined,
      ...result.detail,
    };
    if (bootRelevant) {
      logger.info(event, `dhcp ${typeName.toLowerCase()} -> ${result.outcome}`);
      // Timelines are kept for inventory nodes only, so DHCP from random MACs cannot grow them.
      if (ctx.node && this.deps.inventory.knownByMac(ctx.node.mac) && (result.replies.length > 0 || result.outcome === 'nak')) {
        store.recordEvent({
          at: new Date(ctx.now).toISOString(),
          mac: ctx.identity.mac,
          type: `dhcp.${result.outcome}`,
          // arch (option 93) and ipxe: what server/boot/silent-boot-hint.ts reads when the node goes silent.
          detail: { ...result.detail, listener: ctx.listener, bootFile: event.bootFile, arch: event.arch, ipxe: event.ipxe },
        });
      }
    } else {
      logger.debug(event, `dhcp ${typeName.toLowerCase()} -> ${result.outcome}`);
    }
  }

  /**
   * The packet counter's child for these labels, looked up once: prom-client hashes
   * the label object on every inc(), a cost paid per packet. The key space is small
   * (message types x listeners x outcomes, all from fixed sets).
   */
  private packetCounter(type: string, listener: Listener, outcome: string): { inc(): void } {
    const key = `${type}\0${listener}\0${outcome}`;
    let child = this.packetCounters.get(key);
    if (!child) {
      child = this.deps.metrics.dhcpPackets.labels({ type, listener, outcome });
      this.packetCounters.set(key, child);
    }
    return child;
  }

  private unsendable(ctx: RequestContext, destination: Destination, reason: string, err?: string): void {
    this.deps.metrics.dhcpRepliesUnsendable.inc({ reason });
    const gate = this.unsendableLog.take(this.now());
    if (gate.log)
      this.deps.logger.warn(
        { mac: ctx.identity.mac, to: `${destination.address}:${destination.port}`, reason, err, suppressedSinceLast: gate.suppressed },
        'dhcp reply not sent',
      );
  }

  private sendReply(ctx: RequestContext, reply: OutgoingReply): void {
    const problem = destinationProblem(reply.destination);
    if (problem) return this.unsendable(ctx, reply.destination, problem);
    const { buffer, dropped } = encodePacket(reply.packet, reply.maxMessageSize);
    if (dropped.length > 0)
      this.deps.logger.warn({ mac: ctx.identity.mac, dropped }, 'dhcp reply too large for the client: options left out');
    const send = () =>
      this.sockets?.send(ctx.listener, buffer, reply.destination, (err) =>
        this.unsendable(ctx, reply.destination, err instanceof SendQueueFullError ? 'send-queue-full' : 'send-failed', err.message),
      );
    if (reply.delayMs <= 0) {
      send();
      return;
    }
    const t = setTimeout(() => {
      this.pendingTimers.delete(t);
      send();
    }, reply.delayMs);
    this.pendingTimers.add(t);
  }
}
