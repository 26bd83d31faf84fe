// Proxy mode: which address a DHCP REQUEST may assert for a node
// (server/dhcp/server/observed-address.ts). The agent's access check trusts
// what is recorded, so everything off the served network is refused.
import { describe, expect, it } from 'vitest';
import type { NetworkInterfaceInfo } from 'node:os';
import { judgeObservedAddress, servedNetworks } from '../../server/dhcp/server/observed-address.js';
import { parseCidr, type Cidr } from '../../server/util/ipv4.js';

const entry = (address: string, cidr: string): NetworkInterfaceInfo => ({
  address,
  netmask: '255.255.255.0',
  family: 'IPv4',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr,
});
const INTERFACES = {
  lo: [entry('127.0.0.1', '127.0.0.1/8')],
  eth0: [entry('10.9.0.1', '10.9.0.1/24')],
  eth1: [entry('192.168.5.1', '192.168.5.1/24')],
};
const SERVED = [parseCidr('10.9.0.0/24') as Cidr];

describe('the served networks', () => {
  it('are dhcp.subnets when configured, otherwise the network server.address has on the interface', () => {
    const subnets = [parseCidr('10.20.0.0/16') as Cidr];
    expect(servedNetworks({ serverAddress: '10.9.0.1', interfaceName: 'eth0', subnets }, INTERFACES)).toEqual(subnets);
    expect(servedNetworks({ serverAddress: '10.9.0.1', interfaceName: 'eth0', subnets: [] }, INTERFACES)).toEqual(SERVED);
    expect(servedNetworks({ serverAddress: '10.9.0.1', interfaceName: undefined, subnets: [] }, INTERFACES)).toEqual(SERVED);
    // server.address is not on dhcp.interface (or not local at all): nothing is served, nothing recorded.
    expect(servedNetworks({ serverAddress: '10.9.0.1', interfaceName: 'eth1', subnets: [] }, INTERFACES)).toEqual([]);
  });
});

describe('an address a REQUEST asserts', () => {
  it('is kept inside a served network, from 0.0.0.0 or from that same address', () => {
    expect(judgeObservedAddress('10.9.0.57', '0.0.0.0', false, SERVED, '10.9.0.1')).toEqual({ ok: true });
    expect(judgeObservedAddress('10.9.0.57', '10.9.0.57', false, SERVED, '10.9.0.1')).toEqual({ ok: true });
  });

  it("is refused off the served networks, as their network or broadcast address, or as bootfarm's own", () => {
    for (const claimed of ['10.77.0.5', '192.168.5.20', '10.9.0.0', '10.9.0.255', '10.9.0.1']) {
      expect(judgeObservedAddress(claimed, '0.0.0.0', false, SERVED, '10.9.0.1')).toEqual({ ok: false, reason: 'off-subnet' });
    }
  });

  it('is refused when the REQUEST came from another address, unless a relay sent it', () => {
    expect(judgeObservedAddress('10.9.0.57', '10.9.0.40', false, SERVED, '10.9.0.1')).toEqual({ ok: false, reason: 'source-mismatch' });
    expect(judgeObservedAddress('10.9.0.57', '10.9.0.254', true, SERVED, '10.9.0.1')).toEqual({ ok: true });
  });

  it('is refused when no served network is known', () => {
    expect(judgeObservedAddress('10.9.0.57', '0.0.0.0', false, [], '10.9.0.1')).toEqual({ ok: false, reason: 'no-served-network' });
  });
});
