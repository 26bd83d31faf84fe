// Proxy mode: which addresses a REQUEST to the site's DHCP server may assert
// for a node. The agent's access check (server/inventory/inventory.ts
// isNodeAddress) trusts the recorded address, so a forged REQUEST must not be
// able to name any host: only an address on a network bootfarm serves is kept.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { cidrBroadcast, cidrContains, ipv4ToNumber, parseCidr, type Cidr } from '../../util/ipv4.js';

export type ObservedAddressVerdict = { ok: true } | { ok: false; reason: 'off-subnet' | 'source-mismatch' | 'no-served-network' };

export interface ServedNetworkSettings {
  serverAddress: string;
  interfaceName: string | undefined;
  /** dhcp.subnets, parsed: when any are configured they are the served networks. */
  subnets: Cidr[];
}

/**
 * The networks bootfarm serves: dhcp.subnets if any are configured; otherwise the
 * network of server.address as the host's interfaces carry it (on dhcp.interface
 * when that is set). Empty when neither is known: then nothing is recorded.
 */
export function servedNetworks(
  settings: ServedNetworkSettings,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): Cidr[] {
  if (settings.subnets.length > 0) return settings.subnets;
  const names = settings.interfaceName ? [settings.interfaceName] : Object.keys(interfaces);
  const out: Cidr[] = [];
  for (const name of names) {
    for (const entry of interfaces[name] ?? []) {
      if (entry.family !== 'IPv4' || entry.address !== settings.serverAddress) continue;
      const network = entry.cidr ? parseCidr(entry.cidr) : undefined;
      if (network) out.push(network);
    }
  }
  return out;
}

/**
 * Is `claimed` (option 50 or ciaddr) an address a node of this segment may have?
 * Inside a served network, not its network or broadcast address, not bootfarm's
 * own; and a REQUEST sent from an address (RENEWING, REBINDING) claims that one.
 * A relayed REQUEST comes from the relay, so its source says nothing of the client.
 */
export function judgeObservedAddress(
  claimed: string,
  source: string,
  relayed: boolean,
  networks: Cidr[],
  serverAddress: string,
): ObservedAddressVerdict {
  if (networks.length === 0) return { ok: false, reason: 'no-served-network' };
  if (!relayed && source !== '0.0.0.0' && source !== claimed) return { ok: false, reason: 'source-mismatch' };
  const value = ipv4ToNumber(claimed);
  const inside = networks.some((n) => cidrContains(n, value) && (n.prefix >= 31 || (value !== n.network && value !== cidrBroadcast(n))));
  if (!inside || claimed === serverAddress) return { ok: false, reason: 'off-subnet' };
  return { ok: true };
}
