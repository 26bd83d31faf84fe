// ProxyDHCP mode: another server leases addresses; bootfarm answers only clients
// that want to netboot, with boot information and no address (PXE 2.1 ProxyDHCP,
// as dnsmasq's proxy branch and pixiecore implement it; docs/protocol-notes.md §1.7).
import { MessageType } from '../codec/options.js';
import { BROADCAST_FLAG } from '../codec/packet.js';
import { ZERO_IPV4 } from '../../util/ipv4.js';
import type { HandlerResult, ModeHandler, RequestContext } from './context.js';
import { addBootOptions, echoRelayAgentInfo, maxMessageSizeOf, replyDestination, replySkeleton } from './reply.js';

export class ProxyModeHandler implements ModeHandler {
  constructor(
    private readonly serverId: string,
    private readonly piReplyDelayMs: number,
  ) {}

  async handle(ctx: RequestContext): Promise<HandlerResult> {
    // Only DISCOVER is answered on port 67; a REQUEST there is for the site DHCP
    // server ("if we're just a proxy server, go no further", dnsmasq).
    if (ctx.messageType !== MessageType.DISCOVER) return { replies: [], outcome: 'ignored-proxy-not-discover' };
    if (ctx.plan.kind === 'none') return { replies: [], outcome: 'ignored-not-netboot', detail: { reason: ctx.plan.reason } };
    // U-Boot requests the first offer's yiaddr and merges no second offer (net/bootp.c),
    // so an addressless proxy offer would break its boot: the site DHCP server names
    // bootfarm as next-server instead (docs/configuration.md, U-Boot boards).
    if (ctx.plan.kind === 'file' && ctx.plan.firmware === 'u-boot')
      return { replies: [], outcome: 'ignored-not-netboot', detail: { reason: 'U-Boot cannot use a proxy offer' } };

    const reply = replySkeleton(ctx.packet, MessageType.OFFER, this.serverId);
    reply.yiaddr = ZERO_IPV4;
    // Broadcast: the client has no address yet and the site server's offer may
    // not be accepted until ours arrives (dnsmasq sets 0x8000 here too).
    reply.flags |= BROADCAST_FLAG;
    addBootOptions(ctx.packet, reply, ctx.plan, 'proxy-offer');
    echoRelayAgentInfo(ctx.packet, reply);
    // A Pi 3 ROM takes the first offer and can stall if the proxy's arrives before
    // the site server's; a 1-2 s delay for Pis only (iPXE waits just 2 s for
    // proxy offers, so nobody else is delayed) (raspberrypi/firmware#859, #862).
    const delayMs = ctx.plan.kind === 'raspberry-pi' ? this.piReplyDelayMs : 0;
    return {
      replies: [
        { packet: reply, destination: replyDestination(ctx.packet, reply, false), maxMessageSize: maxMessageSizeOf(ctx.packet), delayMs },
      ],
      outcome: 'proxy-offer',
      detail: { delayMs },
    };
  }
}
