// Who may read a root image: the one policy behind `nbd.allow`, shared by the NBD
// server and by the HTTP/TFTP file routes, so a root image cannot be fetched over
// another protocol by a client NBD would refuse.
import type { Store } from '../store/store.js';

/** undefined: admitted; otherwise the reason the address is refused. */
export type RootAccessPolicy = (address: string) => string | undefined;

export interface RootAccessDeps {
  allow: 'leased' | 'any';
  store: Pick<Store, 'leaseByIp'>;
  /**
   * Nodes with a configured address are admitted from it. An address only
   * observed in a proxy-mode REQUEST is not: any machine can claim one.
   */
  nodes: { nodes(): ReadonlyArray<{ ip?: string | undefined }> };
  now?: () => number;
}

export function rootAccessPolicy(deps: RootAccessDeps): RootAccessPolicy {
  const now = deps.now ?? Date.now;
  return (address) => {
    if (deps.allow === 'any') return undefined;
    const lease = deps.store.leaseByIp(address);
    if (lease && lease.state === 'bound' && lease.expiresAt > now()) return undefined;
    if (deps.nodes.nodes().some((n) => n.ip === address)) return undefined;
    return `${address} holds no lease and is no node's address (nbd.allow: leased)`;
  };
}
