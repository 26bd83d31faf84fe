// How file resolvers find the node behind a request: by MAC or Pi serial in the
// path, or by the address the client holds a lease on (TFTP carries no MAC).
import type { EffectiveNode } from '../../inventory/effective.js';

/** Implemented by the Inventory (server/inventory/inventory.ts). */
export interface NodeDirectory {
  byMac(mac: string): EffectiveNode | undefined;
  byPiSerial(serial: string): EffectiveNode | undefined;
  byAddress(address: string): EffectiveNode | undefined;
}

const MAC_IN_PATH = /^([0-9a-f]{2}(?:[:-][0-9a-f]{2}){5})$/i;
export function macFromPath(text: string): string | undefined {
  return MAC_IN_PATH.test(text) ? text.toLowerCase().replace(/-/g, ':') : undefined;
}
