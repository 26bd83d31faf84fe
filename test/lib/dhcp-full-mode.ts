// Full-mode requests for in-process tests of server/dhcp/server/full-handler.ts:
// udhcpc's captured packets re-addressed, and the context the DHCP service
// would build for them (identity, inventory node, boot plan).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { identifyClient } from '../../server/dhcp/codec/identity.js';
import { planBoot } from '../../server/boot/policy.js';
import { FileStore } from '../../server/store/store.js';
import type { HandlerResult, ModeHandler, RequestContext } from '../../server/dhcp/server/context.js';
import { REPO_ROOT } from './bootfarm.js';

export interface FullModeState {
  config: ResolvedConfig;
  store: FileStore;
  /** Closes the store and removes its state directory. */
  close(): Promise<void>;
}

/**
 * A configuration served by `server` in a fresh state directory, and its store:
 * `body` is the YAML after the `server:` line (the dhcp section, nodes...).
 */
export async function openFullModeState(server: string, body: string): Promise<FullModeState> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-full-mode-'));
  const config = parseConfig(`server: { address: ${server}, stateDir: ${dir} }\n${body}`, 'test.yaml');
  const store = (await FileStore.open(dir, config.nodes)).store;
  return {
    config,
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RequestFields {
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  giaddr?: string;
  type?: number;
}

/** udhcpc's captured DISCOVER or REQUEST, re-addressed: no option 61, so the MAC is the lease key. */
export function udhcpcPacket(kind: 'discover' | 'request', mac: string, fields: RequestFields): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, `test/fixtures/dhcp/udhcpc-${kind}.bin`)));
  if (!r.ok) throw new Error(r.reason);
  const p = r.packet;
  p.chaddr = Buffer.from(mac.replace(/:/g, ''), 'hex');
  p.options.delete(61);
  p.options.delete(50);
  p.options.delete(54);
  if (fields.requested) p.options.set(50, Buffer.from(fields.requested.split('.').map(Number)));
  if (fields.serverId) p.options.set(54, Buffer.from(fields.serverId.split('.').map(Number)));
  p.ciaddr = fields.ciaddr ?? '0.0.0.0';
  if (fields.giaddr) p.giaddr = fields.giaddr;
  if (fields.type !== undefined) p.options.set(53, Buffer.of(fields.type));
  return p;
}

/** Hands `p` to `handler` as the DHCP service would; `known` is whether the store's inventory has the MAC. */
export function handleAt(
  handler: ModeHandler,
  store: FileStore,
  serverAddress: string,
  p: DhcpPacket,
  now: number,
): Promise<HandlerResult> {
  const identity = identifyClient(p);
  const node = store.nodeByMac(identity.mac);
  const ctx: RequestContext = {
    packet: p,
    messageType: readMessageType(p.options) as number,
    identity,
    node,
    known: node !== undefined,
    plan: planBoot(identity, node, { serverAddress, httpPort: 8080, bootFiles: { bios: 'b', uefiX64: 'x', uefiArm64: 'a' } }),
    source: { address: '0.0.0.0', port: 68 },
    listener: 'dhcp',
    now,
  };
  return handler.handle(ctx);
}

/** The first reply's packet, if the handler answered. */
export const replyOf = (r: HandlerResult): DhcpPacket | undefined => r.replies[0]?.packet;

/** A NAK's option 56 text. */
export const nakMessage = (r: HandlerResult): string | undefined => replyOf(r)?.options.get(56)?.toString('latin1');
