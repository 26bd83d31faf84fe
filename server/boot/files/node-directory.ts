// How file resolvers find the node behind a request: by MAC or Pi serial in the
// path, or by the address the client holds a lease on (TFTP carries no MAC).
import type { ResolvedNode } from '../../config/load.js';
import type { Store } from '../../store/store.js';

export interface NodeDirectory {
  byMac(mac: string): ResolvedNode | undefined;
  byPiSerial(serial: string): ResolvedNode | undefined;
  byAddress(address: string): ResolvedNode | undefined;
}

export function storeDirectory(store: Store): NodeDirectory {
  return {
    byMac: (mac) => store.nodeByMac(mac.toLowerCase().replace(/-/g, ':')),
    byPiSerial: (serial) => store.nodeByPiSerial(serial.toLowerCase()),
    byAddress: (address) => {
      const lease = store.leaseByIp(address);
      if (lease && lease.state === 'bound') return store.nodeByMac(lease.mac);
      // A reserved address is the node's even before its lease is on record.
      return store.nodes().find((n) => n.ip === address);
    },
  };
}

const MAC_IN_PATH = /^([0-9a-f]{2}(?:[:-][0-9a-f]{2}){5})$/i;
export function macFromPath(text: string): string | undefined {
  return MAC_IN_PATH.test(text) ? text.toLowerCase().replace(/-/g, ':') : undefined;
}
