// The Node floor for the DHCP benchmark: a trivial DHCP responder with bootfarm's
// socket layout (sender bound to SERVER_IP:67, receiver on 0.0.0.0:67, replies
// broadcast to 255.255.255.255:68), no lease logic, no persistence, no logging.
// bench-dhcp accepts its OFFER/ACK (distinct yiaddr per MAC). What it costs per DORA
// is what Node + node:dgram + the kernel's UDP broadcast path cost on this machine;
// everything bootfarm adds on top is its own request path. See bench/RESULTS.md.
//
//   ip netns exec SRV-NS node bench/dgram-floor.mjs [SERVER_IP]   (default 10.77.0.1)
// Only inside a namespace wired to the client's (never on a real LAN).
import dgram from 'node:dgram';
const SERVER = process.argv[2] ?? '10.77.0.1';
let next = ((10 << 24) | (77 << 16) | (1 << 8) | 1) >>> 0;
const sid = SERVER.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
const byMac = new Map();
const mk = (addr) =>
  new Promise((res) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', onMsg);
    s.bind({ address: addr, port: 67, exclusive: true }, () => {
      s.setBroadcast(true);
      res(s);
    });
  });
let sender;
function onMsg(msg) {
  if (msg[0] !== 1) return;
  let mt = 0;
  for (let i = 240; i < msg.length;) {
    const c = msg[i];
    if (c === 255) break;
    if (c === 0) {
      i++;
      continue;
    }
    if (c === 53) mt = msg[i + 2];
    i += 2 + msg[i + 1];
  }
  const mac = msg.toString('hex', 28, 34);
  let ip = byMac.get(mac);
  if (ip === undefined) {
    ip = next++;
    byMac.set(mac, ip);
  }
  const r = Buffer.alloc(300);
  msg.copy(r, 0, 0, 236);
  r[0] = 2;
  r.writeUInt32BE(ip, 16);
  r.writeUInt32BE(sid, 20);
  r.writeUInt32BE(0x63825363, 236);
  let o = 240;
  r[o++] = 53;
  r[o++] = 1;
  r[o++] = mt === 1 ? 2 : 5;
  r[o++] = 54;
  r[o++] = 4;
  r.writeUInt32BE(sid, o);
  o += 4;
  r[o++] = 51;
  r[o++] = 4;
  r.writeUInt32BE(3600, o);
  o += 4;
  r[o++] = 1;
  r[o++] = 4;
  r.writeUInt32BE(0xffff0000, o);
  o += 4;
  r[o] = 255;
  sender.send(r, 68, '255.255.255.255');
}
sender = await mk(SERVER);
await mk('0.0.0.0');
process.on('SIGTERM', () => process.exit(0));
