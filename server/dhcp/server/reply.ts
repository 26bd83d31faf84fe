// Builds replies: the header fields copied from the request, where the reply goes
// (RFC 2131 §4.1), the network options of a lease, and the boot options of a plan.
import { BOOTREPLY, BROADCAST_FLAG, type DhcpPacket } from '../codec/packet.js';
import { Opt } from '../codec/options.js';
import { readMaxMessageSize } from '../codec/readers.js';
import type { BootPlan } from '../../boot/policy.js';
import type { ResolvedSubnet } from '../../config/types.js';
import { ipv4ToBuffer, ZERO_IPV4 } from '../../util/ipv4.js';

export interface Destination {
  address: string;
  port: number;
}

export interface OutgoingReply {
  packet: DhcpPacket;
  destination: Destination;
  maxMessageSize: number;
  /** Wait this long before sending (Pi clients in proxy mode, raspberrypi/firmware#859). */
  delayMs: number;
}

const DHCP_SERVER_PORT = 67;
const DHCP_CLIENT_PORT = 68;
const BROADCAST = '255.255.255.255';

/**
 * Why a reply cannot go to `destination`, or undefined when it can. The source of a
 * datagram is the sender's to choose: a port of 0 or an address that is not a
 * host's would make node:dgram throw, and is no client bootfarm can answer.
 */
export function destinationProblem(destination: Destination): string | undefined {
  const { port, address } = destination;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return port === 0 ? 'port-0' : 'bad-port';
  const first = Number(address.split('.')[0]);
  if (address === ZERO_IPV4 || first === 127 || (first >= 224 && address !== BROADCAST)) return 'bad-address';
  return undefined;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const text = (s: string) => Buffer.from(s, 'latin1');

const MESSAGE_TYPE_BUFFERS: Record<number, Buffer> = Object.fromEntries([1, 2, 3, 4, 5, 6, 7, 8].map((t) => [t, Buffer.of(t)]));
const PXE_CLIENT = text('PXEClient');
const HTTP_CLIENT = text('HTTPClient');

/** A reply skeleton: xid, flags, giaddr and chaddr copied; message type and server id set. */
export function replySkeleton(request: DhcpPacket, messageType: number, serverId: string): DhcpPacket {
  const options = new Map<number, Buffer>();
  options.set(Opt.MESSAGE_TYPE, MESSAGE_TYPE_BUFFERS[messageType] ?? Buffer.of(messageType));
  options.set(Opt.SERVER_ID, serverIdBuffer(serverId));
  return {
    op: BOOTREPLY,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    flags: request.flags & BROADCAST_FLAG,
    ciaddr: ZERO_IPV4,
    yiaddr: ZERO_IPV4,
    siaddr: ZERO_IPV4,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    sname: '',
    file: '',
    options,
  };
}

/** Echoes option 82 unchanged in every reply (RFC 3046 §2.2); the encoder puts it last. */
export function echoRelayAgentInfo(request: DhcpPacket, reply: DhcpPacket): void {
  const relay = request.options.get(Opt.RELAY_AGENT_INFO);
  if (relay) reply.options.set(Opt.RELAY_AGENT_INFO, relay);
}

/**
 * Where a reply goes, in RFC 2131 §4.1 order. Case 5 (unicast to yiaddr with the
 * client's MAC as link destination, no ARP) is impossible from node:dgram, so it
 * falls back to broadcast, which the RFC allows ("MAY be sent as an IP broadcast").
 */
export function replyDestination(request: DhcpPacket, reply: DhcpPacket, isNak: boolean): Destination {
  if (request.giaddr !== ZERO_IPV4) {
    if (isNak) reply.flags |= BROADCAST_FLAG; // §4.3.2: a NAK via a relay has the broadcast bit set
    return { address: request.giaddr, port: DHCP_SERVER_PORT };
  }
  if (isNak) return { address: BROADCAST, port: DHCP_CLIENT_PORT };
  if (request.ciaddr !== ZERO_IPV4) return { address: request.ciaddr, port: DHCP_CLIENT_PORT };
  return { address: BROADCAST, port: DHCP_CLIENT_PORT };
}

export function maxMessageSizeOf(request: DhcpPacket): number {
  return readMaxMessageSize(request.options) ?? 576;
}

interface SubnetOptionBuffers {
  mask: Buffer;
  router: Buffer | undefined;
  dns: Buffer | undefined;
  domain: Buffer | undefined;
  broadcast: Buffer;
  lease: Buffer;
  renewal: Buffer;
  rebinding: Buffer;
}

/** A subnet's options never change: encode them once (the encoder only reads them). */
const subnetOptionCache = new WeakMap<ResolvedSubnet, SubnetOptionBuffers>();
function subnetOptions(subnet: ResolvedSubnet): SubnetOptionBuffers {
  let cached = subnetOptionCache.get(subnet);
  if (!cached) {
    cached = {
      mask: ipv4ToBuffer(subnet.netmask),
      router: subnet.router ? ipv4ToBuffer(subnet.router) : undefined,
      dns: subnet.dns.length > 0 ? Buffer.concat(subnet.dns.map(ipv4ToBuffer)) : undefined,
      domain: subnet.domain ? text(subnet.domain) : undefined,
      broadcast: ipv4ToBuffer(subnet.broadcast),
      // T1 = 0.5 and T2 = 0.875 of the lease (RFC 2131 §4.4.5).
      lease: u32(subnet.leaseSeconds),
      renewal: u32(Math.floor(subnet.leaseSeconds * 0.5)),
      rebinding: u32(Math.floor(subnet.leaseSeconds * 0.875)),
    };
    subnetOptionCache.set(subnet, cached);
  }
  return cached;
}

/** Options of an address lease (RFC 2132): mask, router, DNS, domain, broadcast, times. */
export function addLeaseOptions(
  reply: DhcpPacket,
  subnet: ResolvedSubnet,
  withLeaseTime: boolean,
  hostname: string | undefined,
  /** A lease shorter than the subnet's (what a binding has left while etcd cannot be reached). */
  leaseSeconds?: number,
): void {
  const o = reply.options;
  const c = subnetOptions(subnet);
  o.set(Opt.SUBNET_MASK, c.mask);
  if (c.router) o.set(Opt.ROUTERS, c.router);
  if (c.dns) o.set(Opt.DNS_SERVERS, c.dns);
  if (hostname) o.set(Opt.HOST_NAME, text(hostname));
  if (c.domain) o.set(Opt.DOMAIN_NAME, c.domain);
  o.set(Opt.BROADCAST_ADDRESS, c.broadcast);
  if (withLeaseTime && leaseSeconds !== undefined) {
    o.set(Opt.LEASE_TIME, u32(leaseSeconds));
    o.set(Opt.RENEWAL_TIME, u32(Math.floor(leaseSeconds * 0.5)));
    o.set(Opt.REBINDING_TIME, u32(Math.floor(leaseSeconds * 0.875)));
  } else if (withLeaseTime) {
    o.set(Opt.LEASE_TIME, c.lease);
    o.set(Opt.RENEWAL_TIME, c.renewal);
    o.set(Opt.REBINDING_TIME, c.rebinding);
  }
}

const serverIdCache = new Map<string, Buffer>();
function serverIdBuffer(address: string): Buffer {
  let b = serverIdCache.get(address);
  if (!b) {
    b = ipv4ToBuffer(address);
    serverIdCache.set(address, b);
  }
  return b;
}

/**
 * The PXE menu a Raspberry Pi bootloader looks for (Raspberry Pi documentation,
 * boot-net.adoc, and LTSP's dnsmasq config): discovery control 3,
 * prompt {0, "PXE"}, one boot item of type 0 named "Raspberry Pi Boot   ", End.
 * The three trailing spaces work around the Pi 3B ROM's string-length bug; later
 * bootloaders match a substring, so the spaced form serves every model
 * (docs/protocol-notes.md §2.2).
 */
export const RASPBERRY_PI_OPTION_43 = Buffer.concat([
  Buffer.from([0x06, 0x01, 0x03]),
  Buffer.from([0x0a, 0x04, 0x00]),
  text('PXE'),
  Buffer.from([0x09, 0x17, 0x00, 0x00, 0x14]),
  text('Raspberry Pi Boot   '),
  Buffer.from([0xff]),
]);

/** PXE discovery control 8: skip boot-server discovery, boot the DHCP `file` (PXE 2.1 spec). */
const PXE_SKIP_DISCOVERY_OPTION_43 = Buffer.from([0x06, 0x01, 0x08, 0xff]);

/** iPXE setting 175.176 (no-pxedhcp) = 1: do not wait ~2 s for ProxyDHCP offers. */
const IPXE_NO_PXEDHCP = Buffer.from([0xb0, 0x01, 0x01]);

export type BootOptionStyle = 'full' | 'proxy-offer' | 'boot-server';

/**
 * Adds what the plan says the client boots. Both `file`/siaddr and option 67/66
 * are set: many ROMs read only the header fields, and option 67 is the only place
 * for the name when `file` is overloaded (RFC 2132 §9.5).
 */
export function addBootOptions(request: DhcpPacket, reply: DhcpPacket, plan: BootPlan, style: BootOptionStyle): void {
  if (plan.kind === 'none') return;
  const o = reply.options;
  reply.siaddr = plan.bootServer;
  const machineId = request.options.get(Opt.CLIENT_MACHINE_ID);
  if (plan.kind === 'raspberry-pi') {
    // The Pi takes its TFTP server from option 66, else from option 54 once option 43
    // matched; keep siaddr, 54 and 66 in agreement and send a dotted quad, never a
    // name (the 2019-12-03 Pi 4 EEPROM mis-parsed option 66, raspberrypi/rpi-eeprom#72).
    o.set(Opt.VENDOR_CLASS, PXE_CLIENT);
    o.set(Opt.TFTP_SERVER_NAME, text(plan.bootServer));
    o.set(Opt.VENDOR_SPECIFIC, RASPBERRY_PI_OPTION_43);
    if (machineId) o.set(Opt.CLIENT_MACHINE_ID, machineId);
    return;
  }
  reply.file = plan.bootFile;
  o.set(Opt.TFTP_SERVER_NAME, text(plan.bootServer));
  o.set(Opt.BOOTFILE_NAME, text(plan.bootFile));
  if (plan.vendorClass === 'HTTPClient') {
    // UEFI HTTP boot ignores offers that do not say HTTPClient (tianocore wiki, "HTTP Boot").
    o.set(Opt.VENDOR_CLASS, HTTP_CLIENT);
  } else if (style !== 'full') {
    // ProxyDHCP and boot-server replies identify themselves as PXE (option 60
    // "PXEClient", as dnsmasq and pixiecore send it).
    o.set(Opt.VENDOR_CLASS, PXE_CLIENT);
  }
  if (style !== 'full' && machineId) o.set(Opt.CLIENT_MACHINE_ID, machineId);
  if (style === 'proxy-offer' && plan.firmware === 'bios' && !plan.ipxe) {
    // BIOS PXE ROMs boot the offered file straight away with discovery control 8.
    // UEFI firmware ignores proxy offers that bypass discovery, so it gets no
    // option 43 and comes back on port 4011 (pixiecore README.booting, "Step 1.5";
    // dnsmasq's pxe_uefi_workaround).
    o.set(Opt.VENDOR_SPECIFIC, PXE_SKIP_DISCOVERY_OPTION_43);
  }
  if (style === 'full' && plan.ipxe) o.set(Opt.IPXE_ENCAP, IPXE_NO_PXEDHCP);
  if (style === 'boot-server') echoBootItem(request, reply);
}

/** A boot-server request naming a boot item (43/71) gets it echoed (PXE 2.1 spec; dnsmasq does). */
function echoBootItem(request: DhcpPacket, reply: DhcpPacket): void {
  const vendor = request.options.get(Opt.VENDOR_SPECIFIC);
  if (!vendor) return;
  for (let i = 0; i + 1 < vendor.length;) {
    const code = vendor[i] as number;
    if (code === 0xff) break;
    if (code === 0) {
      i++;
      continue;
    }
    const len = vendor[i + 1] as number;
    if (i + 2 + len > vendor.length) break;
    if (code === 71 && len === 4) {
      reply.options.set(Opt.VENDOR_SPECIFIC, Buffer.concat([vendor.subarray(i, i + 6), Buffer.of(0xff)]));
      return;
    }
    i += 2 + len;
  }
}
