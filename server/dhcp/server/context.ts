// What a mode handler is given for one decoded request, and what it returns.
import type { DhcpPacket } from '../codec/packet.js';
import type { ClientIdentity } from '../codec/identity.js';
import type { BootPlan } from '../../boot/policy.js';
import type { ResolvedNode } from '../../config/types.js';
import type { Destination, OutgoingReply } from './reply.js';

export type Listener = 'dhcp' | 'boot-server';

export interface RequestContext {
  packet: DhcpPacket;
  messageType: number;
  identity: ClientIdentity;
  node: ResolvedNode | undefined;
  /** The client is in the inventory (not a default node under boot-default, not discovered). */
  known: boolean;
  plan: BootPlan;
  source: Destination;
  listener: Listener;
  now: number;
}

/** What a handler decided, for the log line and metrics. */
export interface HandlerResult {
  replies: OutgoingReply[];
  /** e.g. offer, ack, nak, ignored-other-server, exhausted, released, declined */
  outcome: string;
  detail?: Record<string, string | number | boolean | undefined>;
}

export interface ModeHandler {
  handle(ctx: RequestContext): Promise<HandlerResult>;
}
