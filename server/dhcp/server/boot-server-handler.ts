// The PXE boot server on port 4011 ("BINL"): UEFI firmware that got a proxy offer
// without option 43 unicasts a REQUEST (or INFORM) here and is answered with an
// ACK carrying the boot file, unicast to where it came from (pixiecore's offerPXE,
// dnsmasq's port 4011 path; docs/protocol-notes.md §1.7).
import { MessageType } from '../codec/options.js';
import type { HandlerResult, ModeHandler, RequestContext } from './context.js';
import { addBootOptions, echoRelayAgentInfo, maxMessageSizeOf, replySkeleton } from './reply.js';

export class BootServerHandler implements ModeHandler {
  constructor(private readonly serverId: string) {}

  async handle(ctx: RequestContext): Promise<HandlerResult> {
    if (ctx.messageType !== MessageType.REQUEST && ctx.messageType !== MessageType.INFORM) {
      return { replies: [], outcome: 'ignored-boot-server-type' };
    }
    if (ctx.plan.kind === 'none') return { replies: [], outcome: 'ignored-not-netboot', detail: { reason: ctx.plan.reason } };
    const reply = replySkeleton(ctx.packet, MessageType.ACK, this.serverId);
    reply.ciaddr = ctx.packet.ciaddr;
    addBootOptions(ctx.packet, reply, ctx.plan, 'boot-server');
    echoRelayAgentInfo(ctx.packet, reply);
    return {
      replies: [{ packet: reply, destination: ctx.source, maxMessageSize: maxMessageSizeOf(ctx.packet), delayMs: 0 }],
      outcome: 'boot-server-ack',
    };
  }
}
