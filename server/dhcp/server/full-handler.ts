// Full DHCP mode: bootfarm leases addresses and hands out boot information in the
// same reply (RFC 2131 §4.3).
import { MessageType, Opt } from '../codec/options.js';
import { readRequestedIp, readServerId } from '../codec/readers.js';
import type { ResolvedSubnet } from '../../config/types.js';
import { ipv4ToNumber, ZERO_IPV4 } from '../../util/ipv4.js';
import type { LeasePool } from './lease-pool.js';
import type { HandlerResult, ModeHandler, RequestContext } from './context.js';
import {
  addBootOptions,
  addLeaseOptions,
  echoRelayAgentInfo,
  maxMessageSizeOf,
  replyDestination,
  replySkeleton,
  type OutgoingReply,
} from './reply.js';
import type { DhcpPacket } from '../codec/packet.js';
import { ClockSkewStop, LocalLeaseClaims, type ClaimResult, type LeaseClaims } from '../../store/lease-claims.js';

/**
 * A claim's answer; `unavailable` when the store could not say (its reason);
 * `clockStopped` when this instance's clock is not to be trusted (ClockSkewStop).
 */
type Claimed = ClaimResult | { ok: false; unavailable: string } | { ok: false; clockStopped: string };

/** Long enough for a Pi's firmware fetches; its kernel then runs its own DORA. */
const UNKNOWN_PI_OFFER_LEASE_SECONDS = 300;

/** Addresses a DISCOVER tries when other instances keep winning the claim, before it goes unanswered. */
const MAX_OFFER_CANDIDATES = 8;

export class FullModeHandler implements ModeHandler {
  constructor(
    private readonly pool: LeasePool,
    /** Our address: option 54, and what SELECTING requests must name. */
    private readonly serverId: string,
    /** Where the address is claimed before an OFFER or ACK goes out (store.backend). */
    private readonly claims: LeaseClaims = new LocalLeaseClaims(),
  ) {}

  /**
   * Claims `ip` for the client until `expiresAt`; the reply waits for it. A
   * reservation (the node's configured ip) is the same on every instance and needs none.
   */
  private async claim(ctx: RequestContext, subnet: ResolvedSubnet, ip: string, expiresAt: number): Promise<Claimed> {
    if (ctx.node?.ip === ip) return { ok: true };
    const value = { key: ctx.identity.leaseKey, mac: ctx.identity.mac, expiresAt, instance: this.serverId };
    try {
      return await this.claims.claim(subnet.cidr, ip, value, ctx.now);
    } catch (err) {
      if (err instanceof ClockSkewStop) return { ok: false, clockStopped: err.message };
      return { ok: false, unavailable: (err as Error).message };
    }
  }

  /**
   * While the shared store cannot decide (etcd without quorum, or out of reach),
   * an address may still be answered to the client whose valid binding here
   * names it, for the time that binding has left and no more. The claim in etcd
   * says the same expiry (the binding is written only after its claim), so no
   * other instance can give the address before the client's lease ends: the
   * rule of ISC DHCP failover's MCLT with nothing granted beyond what the peer
   * knows. Anything else is a new address and waits for the store. Never more
   * than the subnet's lease: a binding can only be longer if the clock was set
   * back since it was written, and the claim in etcd does not live longer for that.
   */
  private heldSeconds(subnet: ResolvedSubnet, key: string, ip: string, now: number): number {
    const binding = this.pool.binding(key, now);
    return binding?.ip === ip ? Math.min(subnet.leaseSeconds, Math.floor((binding.expiresAt - now) / 1000)) : 0;
  }

  private storeUnavailable(ip: string, reason: string): HandlerResult {
    return { replies: [], outcome: 'store-unavailable', detail: { ip, reason } };
  }

  /**
   * Stopped for clock skew, not for an etcd outage: no OFFER, no ACK and no NAK
   * for a dynamic address, not even a renewal from the local binding. Its time
   * left is counted with this clock, the one just found bad: a clock BEHIND by D
   * since the binding was written (a Pi without RTC restarting from
   * fake-hwclock, a VM snapshot restored) would grant D seconds past the etcd
   * claim's end, and a healthy instance then gives the address to another
   * client. Silence, not a NAK: the client's REBINDING broadcast reaches a
   * healthy instance, which renews it; a NAK would drop a valid lease.
   */
  private clockStopped(ip: string, reason: string): HandlerResult {
    return { replies: [], outcome: 'clock-skew-stopped', detail: { ip, reason } };
  }

  /** The subnet a request belongs to: the relay's (giaddr), else the served segment's. */
  private subnetOf(ctx: RequestContext): ResolvedSubnet | undefined {
    const anchor = ctx.packet.giaddr !== ZERO_IPV4 ? ctx.packet.giaddr : this.serverId;
    return this.pool.subnetFor(anchor);
  }

  async handle(ctx: RequestContext): Promise<HandlerResult> {
    switch (ctx.messageType) {
      case MessageType.DISCOVER:
        return this.discover(ctx);
      case MessageType.REQUEST:
        return this.request(ctx);
      case MessageType.DECLINE:
        return this.decline(ctx);
      case MessageType.RELEASE:
        return this.release(ctx);
      case MessageType.INFORM:
        return this.inform(ctx);
      default:
        return { replies: [], outcome: 'ignored-type' };
    }
  }

  private reply(
    ctx: RequestContext,
    type: number,
    yiaddr: string,
    subnet: ResolvedSubnet | undefined,
    withLease: boolean,
    leaseSeconds?: number,
  ): OutgoingReply {
    const reply = replySkeleton(ctx.packet, type, this.serverId);
    reply.yiaddr = yiaddr;
    if (type === MessageType.ACK) reply.ciaddr = ctx.packet.ciaddr;
    if (subnet) addLeaseOptions(reply, subnet, withLease, ctx.node?.hostname, leaseSeconds);
    addBootOptions(ctx.packet, reply, ctx.plan, 'full');
    echoRelayAgentInfo(ctx.packet, reply);
    return {
      packet: reply,
      destination: replyDestination(ctx.packet, reply, false),
      maxMessageSize: maxMessageSizeOf(ctx.packet),
      delayMs: 0,
    };
  }

  private nak(ctx: RequestContext, message: string): HandlerResult {
    const reply: DhcpPacket = replySkeleton(ctx.packet, MessageType.NAK, this.serverId);
    reply.options.set(Opt.MESSAGE, Buffer.from(message, 'latin1'));
    echoRelayAgentInfo(ctx.packet, reply);
    const destination = replyDestination(ctx.packet, reply, true);
    return { replies: [{ packet: reply, destination, maxMessageSize: 576, delayMs: 0 }], outcome: 'nak', detail: { reason: message } };
  }

  private async discover(ctx: RequestContext): Promise<HandlerResult> {
    const subnet = this.subnetOf(ctx);
    if (!subnet) return { replies: [], outcome: 'no-subnet', detail: { giaddr: ctx.packet.giaddr } };
    const key = ctx.identity.leaseKey;
    if (
      !ctx.known &&
      !this.pool.holds(key, ctx.now) &&
      this.pool.unknownCapReached(subnet, ctx.now) &&
      !this.pool.releaseStaleUnknownOffer(subnet, ctx.now)
    ) {
      return {
        replies: [],
        outcome: 'unknown-lease-cap',
        detail: { reason: `machines in no inventory hold dhcp.limits.unknownLeasePercent of ${subnet.cidr}` },
      };
    }
    // The Pi bootloader uses the OFFER's address without always completing the
    // exchange (raspberrypi/documentation#1067), so its offer is committed as a binding first.
    // A Pi in no inventory (boot-default) gets a short one: an option 97 is
    // anyone's to send, and random MACs must not hold durable leases for a day.
    const piSeconds =
      ctx.plan.kind === 'raspberry-pi'
        ? ctx.known
          ? subnet.leaseSeconds
          : Math.min(subnet.leaseSeconds, UNKNOWN_PI_OFFER_LEASE_SECONDS)
        : undefined;
    // An offer is claimed for its hold (never shortening a binding the client has):
    // another instance then offers the client's neighbours other addresses.
    const claimUntil = Math.max(
      ctx.now + (piSeconds === undefined ? this.pool.offerHoldMs : piSeconds * 1000),
      this.pool.binding(key, ctx.now)?.expiresAt ?? 0,
    );
    const requested = readRequestedIp(ctx.packet.options);
    let result = this.pool.allocate(subnet, key, ctx.identity.mac, requested, ctx.node?.ip, ctx.now, ctx.known);
    for (let candidates = 1; result.ok; candidates++) {
      const claim = await this.claim(ctx, subnet, result.ip, claimUntil);
      if (claim.ok) break;
      if ('clockStopped' in claim) {
        this.pool.dropOffer(key);
        return this.clockStopped(result.ip, claim.clockStopped);
      }
      if ('unavailable' in claim) {
        // The client's own bound address is offered again for what its lease has left.
        const seconds = this.heldSeconds(subnet, key, result.ip, ctx.now);
        if (seconds > 0)
          return {
            replies: [this.reply(ctx, MessageType.OFFER, result.ip, subnet, true, seconds)],
            outcome: 'offer-store-unavailable',
            detail: { ip: result.ip, leaseSeconds: seconds },
          };
        this.pool.dropOffer(key);
        return this.storeUnavailable(result.ip, claim.unavailable);
      }
      // Another instance's client holds it (the claims now say so): the next candidate.
      this.pool.dropOffer(key);
      if (candidates >= MAX_OFFER_CANDIDATES)
        return {
          replies: [],
          outcome: 'exhausted',
          detail: { reason: `${candidates} addresses in a row were claimed by other instances` },
        };
      result = this.pool.allocate(subnet, key, ctx.identity.mac, requested, ctx.node?.ip, ctx.now, ctx.known);
    }
    if (!result.ok) return { replies: [], outcome: 'exhausted', detail: { reason: result.reason } };
    if (!ctx.known) this.pool.noteUnknownHolder(result.ip, key);
    if (piSeconds !== undefined) await this.pool.bind(result.ip, key, ctx.identity.mac, piSeconds, ctx.node?.hostname, ctx.now);
    return { replies: [this.reply(ctx, MessageType.OFFER, result.ip, subnet, true)], outcome: 'offer', detail: { ip: result.ip } };
  }

  private async request(ctx: RequestContext): Promise<HandlerResult> {
    const { packet, identity, now } = ctx;
    const key = identity.leaseKey;
    const serverId = readServerId(packet.options);
    const requested = readRequestedIp(packet.options);
    const subnet = this.subnetOf(ctx);
    if (!subnet) return { replies: [], outcome: 'no-subnet' };

    if (serverId !== undefined) {
      // SELECTING (RFC 2131 §4.3.2): the client names the server it chose.
      if (serverId !== this.serverId) {
        this.pool.dropOffer(key);
        return { replies: [], outcome: 'ignored-other-server', detail: { serverId } };
      }
      if (!requested) return this.nak(ctx, 'requested address (option 50) missing');
      // Only what this server offered (or the client's own lease, or its
      // reservation) is ACKed: a REQUEST without a DISCOVER is a forgery or a
      // client that restarted mid-exchange, and a NAK sends either back to DISCOVER.
      if (!this.pool.hasClaim(key, requested) && ctx.node?.ip !== requested) return this.nak(ctx, 'no offer was made for this address');
      return this.bindOrNak(ctx, subnet, requested, key);
    }
    if (packet.ciaddr === ZERO_IPV4) {
      // INIT-REBOOT: verify the address the client remembers.
      if (!requested)
        return { replies: [], outcome: 'ignored-malformed', detail: { reason: 'REQUEST without server id, requested ip or ciaddr' } };
      if (!this.pool.subnetFor(requested) || this.pool.subnetFor(requested) !== subnet) return this.nak(ctx, 'address not on this network');
      const binding = this.pool.binding(key, now);
      const reserved = ctx.node?.ip;
      if (reserved && reserved !== requested) return this.nak(ctx, 'address is not the one reserved for this client');
      if (binding && binding.ip !== requested) return this.nak(ctx, "address is not this client's lease");
      if (!binding && !reserved) {
        // §4.3.2: with no record of the client the server MUST remain silent,
        // unless the address is plainly someone else's.
        if (!this.pool.isAvailableTo(ipv4ToNumber(requested), key, identity.mac, now)) return this.nak(ctx, 'address in use');
        return { replies: [], outcome: 'ignored-unknown-client' };
      }
      return this.bindOrNak(ctx, subnet, requested, key);
    }
    // RENEWING (unicast) or REBINDING (broadcast): the client is at ciaddr.
    if (this.pool.subnetFor(packet.ciaddr) !== subnet) return this.nak(ctx, 'address not on this network');
    // §4.3.2: a server with no record of the client's lease remains silent; it
    // does not bind whatever address a REQUEST names.
    if (!this.pool.hasClaim(key, packet.ciaddr) && ctx.node?.ip !== packet.ciaddr)
      return { replies: [], outcome: 'ignored-unknown-client', detail: { ip: packet.ciaddr } };
    return this.bindOrNak(ctx, subnet, packet.ciaddr, key);
  }

  private async bindOrNak(ctx: RequestContext, subnet: ResolvedSubnet, ip: string, key: string): Promise<HandlerResult> {
    const reserved = ctx.node?.ip;
    if (reserved && reserved !== ip) return this.nak(ctx, 'address is not the one reserved for this client');
    const ipN = ipv4ToNumber(ip);
    if (!this.pool.isAvailableTo(ipN, key, ctx.identity.mac, ctx.now)) return this.nak(ctx, 'address not available');
    if (!reserved && (ipN < subnet.rangeStart || ipN > subnet.rangeEnd)) return this.nak(ctx, 'address outside the pool');
    // The ACK is sent only once the claim is committed (another instance's client
    // may have won the address meanwhile: NAK, and the client starts over) and the
    // binding is on disk (a crash loses no lease a client holds).
    const claim = await this.claim(ctx, subnet, ip, ctx.now + subnet.leaseSeconds * 1000);
    if (!claim.ok && 'clockStopped' in claim) return this.clockStopped(ip, claim.clockStopped);
    if (!claim.ok && 'unavailable' in claim) {
      // A renewal is ACKed without extending the binding: for what it has left.
      const seconds = this.heldSeconds(subnet, key, ip, ctx.now);
      if (seconds > 0)
        return {
          replies: [this.reply(ctx, MessageType.ACK, ip, subnet, true, seconds)],
          outcome: 'ack-store-unavailable',
          detail: { ip, leaseSeconds: seconds },
        };
      return this.storeUnavailable(ip, claim.unavailable);
    }
    if (!claim.ok) return this.nak(ctx, 'address claimed by another client');
    await this.pool.bind(ip, key, ctx.identity.mac, subnet.leaseSeconds, ctx.node?.hostname, ctx.now);
    return { replies: [this.reply(ctx, MessageType.ACK, ip, subnet, true)], outcome: 'ack', detail: { ip } };
  }

  private async decline(ctx: RequestContext): Promise<HandlerResult> {
    const ip = readRequestedIp(ctx.packet.options);
    if (!ip) return { replies: [], outcome: 'ignored-malformed', detail: { reason: 'DECLINE without option 50' } };
    const result = await this.pool.decline(ip, ctx.identity.leaseKey, ctx.identity.mac, ctx.now);
    return result === 'declined'
      ? { replies: [], outcome: 'declined', detail: { ip } }
      : { replies: [], outcome: 'ignored-decline', detail: { ip, reason: result } };
  }

  private async release(ctx: RequestContext): Promise<HandlerResult> {
    const done = await this.pool.release(ctx.packet.ciaddr, ctx.identity.leaseKey, ctx.now);
    const subnet = this.pool.subnetFor(ctx.packet.ciaddr);
    if (done && subnet) await this.claims.release(subnet.cidr, ctx.packet.ciaddr, ctx.identity.leaseKey);
    return { replies: [], outcome: done ? 'released' : 'ignored-release', detail: { ip: ctx.packet.ciaddr } };
  }

  private async inform(ctx: RequestContext): Promise<HandlerResult> {
    // §4.3.5: configuration only; no yiaddr and no lease time, sent to ciaddr.
    const subnet = ctx.packet.ciaddr !== ZERO_IPV4 ? this.pool.subnetFor(ctx.packet.ciaddr) : this.subnetOf(ctx);
    // ciaddr is the sender's word: answering one off every served network would
    // make bootfarm a reflector towards any address.
    if (!subnet) return { replies: [], outcome: 'ignored-off-network', detail: { ciaddr: ctx.packet.ciaddr } };
    return { replies: [this.reply(ctx, MessageType.ACK, ZERO_IPV4, subnet, false)], outcome: 'ack-inform' };
  }
}
