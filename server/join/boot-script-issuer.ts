// Who may start a node's boot: the boot script (and with it the boot's one-time
// nonce) goes only to an address the inventory knows as the node's from what
// bootfarm itself observed (its own lease for the MAC in full mode, the node's
// configured address, or in proxy mode an address the node's own REQUEST
// plausibly asserted: server/inventory/inventory.ts isNodeAddress).
import type { Logger } from 'pino';
import type { BootScriptIssuer } from '../boot/files/generated.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { AgentError, type BootSessions } from './boot-sessions.js';
import { RateLimiter } from '../util/rate-limited-log.js';

export interface NodeAddresses {
  isNodeAddress(mac: string, address: string): boolean;
}

export class SessionBootScripts implements BootScriptIssuer {
  private readonly refusalLog = new RateLimiter(10, 60_000);
  constructor(
    private readonly sessions: BootSessions,
    private readonly addresses: NodeAddresses,
    private readonly logger: Logger,
  ) {}

  async issue(node: EffectiveNode, clientAddress: string): Promise<{ nonce: string } | { refused: string }> {
    if (!this.addresses.isNodeAddress(node.mac, clientAddress)) {
      // Bounded: an attacker's loop cannot flood the log (the file refusal is counted per request).
      const limit = this.refusalLog.take(Date.now());
      if (limit.log)
        this.logger.warn(
          { node: node.hostname, mac: node.mac, client: clientAddress, suppressedSinceLast: limit.suppressed },
          "boot script asked for from an address that is not the node's: refused",
        );
      return { refused: `${clientAddress} is not the address of ${node.hostname}: its boot script (and boot nonce) go to the node only` };
    }
    try {
      return { nonce: await this.sessions.issueBootNonce(node, clientAddress) };
    } catch (err) {
      if (err instanceof AgentError) return { refused: err.message };
      throw err;
    }
  }
}
