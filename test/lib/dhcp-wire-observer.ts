// Watches a lab segment's DHCP replies: bound to the client port (68) in a
// namespace of its own, it receives every broadcast reply the servers send (all
// but unicast renewals) and prints one JSON line per OFFER, ACK or NAK, so a test
// can judge what was given to whom from the wire, not from the servers' word.
// Usage (in a namespace): node --import tsx test/lib/dhcp-wire-observer.ts
import dgram from 'node:dgram';
import { BOOTREPLY, decodePacket } from '../../server/dhcp/codec/packet.js';
import { MESSAGE_TYPE_NAMES } from '../../server/dhcp/codec/options.js';
import { readMessageType, readServerId } from '../../server/dhcp/codec/readers.js';

export interface ObservedReply {
  type: string;
  yiaddr: string;
  mac: string;
  server: string | undefined;
  leaseSeconds: number | undefined;
  /** Arrival order at the observer. */
  seq: number;
}

let seq = 0;
const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
socket.on('message', (msg) => {
  const r = decodePacket(msg);
  if (!r.ok || r.packet.op !== BOOTREPLY) return;
  const p = r.packet;
  const type = readMessageType(p.options);
  const lease = p.options.get(51);
  const reply: ObservedReply = {
    type: type === undefined ? 'none' : (MESSAGE_TYPE_NAMES[type] ?? String(type)),
    yiaddr: p.yiaddr,
    mac: [...p.chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
    server: readServerId(p.options),
    leaseSeconds: lease?.length === 4 ? lease.readUInt32BE(0) : undefined,
    seq: seq++,
  };
  process.stdout.write(`${JSON.stringify(reply)}\n`);
});
socket.bind(68, '0.0.0.0', () => {
  socket.setBroadcast(true);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
