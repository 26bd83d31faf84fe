// A hostile DHCP client for tests, run inside a test namespace: forged REQUESTs,
// DISCOVER+DECLINE and DORA floods from random MACs, one MAC flooding, and a
// stateful fuzz mix. It listens for the server's replies on port 68 (broadcast)
// and prints one JSON line of counts when done.
// Usage: node --import tsx test/lib/dhcp-attacker.ts SCENARIO SERVER_IP COUNT [SEED] [SOURCE_PORT] [MAC ADDRESS]
//   forge-request   SELECTING REQUESTs for pool addresses, no DISCOVER before
//   forge-renew     RENEWING REQUESTs (ciaddr set, no server id), unicast
//   discover-decline DISCOVER, then DECLINE of the offered address
//   dora            full DISCOVER/OFFER/REQUEST/ACK
//   one-mac         COUNT DISCOVERs from a single MAC
//   pi-serial       DISCOVERs from random MACs naming the Pi 4 serial 1234abcd (option 97)
//   mix             COUNT packets of random types from random and victim MACs,
//                   to 67 (broadcast and unicast) and 4011
//   claim-address   COUNT broadcast REQUESTs with MAC and option 50 = ADDRESS (in
//                   proxy mode: "this node now has my address")
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { BOOTREQUEST, decodePacket, encodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { MessageType, Opt } from '../../server/dhcp/codec/options.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { ipv4ToBuffer, ipv4ToNumber, numberToIpv4 } from '../../server/util/ipv4.js';
import { mulberry32 } from './dhcp-fuzz-corpus.js';

const [
  scenario = 'dora',
  serverIp = '10.9.0.1',
  countText = '10',
  seedText = '1',
  sourcePortText = '68',
  claimedMac = '',
  claimedAddress = '',
] = process.argv.slice(2);
const count = Number(countText);
const rnd = mulberry32(Number(seedText));
const int = (n: number) => Math.floor(rnd() * n);
const VICTIM_MACS = ['52:54:00:00:00:01', '52:54:00:00:00:02'];
const PXE = Buffer.from('PXEClient:Arch:00000:UNDI:002001', 'latin1');

function randomMac(): Buffer {
  const mac = randomBytes(6);
  mac[0] = ((mac[0] ?? 0) & 0xfe) | 0x02; // locally administered, unicast
  return mac;
}

/** Option 97 as a Pi 4 EEPROM sends it: type 0, "RPi4", board revision, low 4 bytes of the MAC, serial (both LE). */
function pi4MachineId(mac: Buffer, serial: number): Buffer {
  const id = Buffer.alloc(17);
  id.write('RPi4', 1, 'latin1');
  id.writeUInt32LE(0x00c03111, 5);
  mac.copy(id, 9, 2, 6);
  id.writeUInt32LE(serial, 13);
  return id;
}

function request(
  type: number,
  mac: Buffer,
  fields: { xid?: number; ciaddr?: string; requested?: string; serverId?: string; broadcast?: boolean; piSerial?: number } = {},
): Buffer {
  const options = new Map<number, Buffer>([
    [Opt.MESSAGE_TYPE, Buffer.of(type)],
    [Opt.VENDOR_CLASS, PXE],
  ]);
  if (fields.piSerial !== undefined) options.set(Opt.CLIENT_MACHINE_ID, pi4MachineId(mac, fields.piSerial));
  if (fields.requested) options.set(Opt.REQUESTED_IP, ipv4ToBuffer(fields.requested));
  if (fields.serverId) options.set(Opt.SERVER_ID, ipv4ToBuffer(fields.serverId));
  const packet: DhcpPacket = {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: fields.xid ?? int(0xffffffff),
    secs: 0,
    flags: fields.broadcast === false ? 0 : 0x8000,
    ciaddr: fields.ciaddr ?? '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: mac,
    sname: '',
    file: '',
    options,
  };
  return encodePacket(packet).buffer;
}

const counts: Record<string, number> = { sent: 0, sendErrors: 0, offers: 0, acks: 0, naks: 0, other: 0 };
/** xid -> what the scenario does with the server's reply to it. */
const waiting = new Map<number, (reply: DhcpPacket, type: number) => void>();

const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
socket.on('message', (msg) => {
  const decoded = decodePacket(msg);
  if (!decoded.ok || decoded.packet.op !== 2) return;
  const type = readMessageType(decoded.packet.options);
  if (type === MessageType.OFFER) counts.offers = (counts.offers ?? 0) + 1;
  else if (type === MessageType.ACK) counts.acks = (counts.acks ?? 0) + 1;
  else if (type === MessageType.NAK) counts.naks = (counts.naks ?? 0) + 1;
  else counts.other = (counts.other ?? 0) + 1;
  waiting.get(decoded.packet.xid)?.(decoded.packet, type ?? 0);
});

function send(data: Buffer, address: string, port: number): Promise<void> {
  counts.sent = (counts.sent ?? 0) + 1;
  return new Promise((resolve) =>
    socket.send(data, port, address, (err) => {
      if (err) counts.sendErrors = (counts.sendErrors ?? 0) + 1;
      resolve();
    }),
  );
}

/** Waits for the reply to `xid` of one of `types`, or gives up after `ms`. */
function replyTo(xid: number, types: number[], ms: number): Promise<DhcpPacket | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiting.delete(xid);
      resolve(undefined);
    }, ms);
    waiting.set(xid, (reply, type) => {
      if (!types.includes(type)) return;
      clearTimeout(timer);
      waiting.delete(xid);
      resolve(reply);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POOL_FIRST = ipv4ToNumber(serverIp.replace(/\.\d+$/, '.100'));

async function discoverThen(mac: Buffer): Promise<{ xid: number; offered: string } | undefined> {
  const xid = int(0xffffffff);
  const answer = replyTo(xid, [MessageType.OFFER], 400);
  await send(request(MessageType.DISCOVER, mac, { xid }), '255.255.255.255', 67);
  const offer = await answer;
  return offer ? { xid, offered: offer.yiaddr } : undefined;
}

async function run(): Promise<void> {
  switch (scenario) {
    case 'forge-request':
      for (let i = 0; i < count; i++) {
        await send(
          request(MessageType.REQUEST, randomMac(), { requested: numberToIpv4(POOL_FIRST + (i % 200)), serverId: serverIp }),
          '255.255.255.255',
          67,
        );
        if (i % 20 === 19) await sleep(5);
      }
      break;
    case 'forge-renew':
      for (let i = 0; i < count; i++) {
        await send(
          request(MessageType.REQUEST, randomMac(), { ciaddr: numberToIpv4(POOL_FIRST + (i % 200)), broadcast: false }),
          serverIp,
          67,
        );
        if (i % 20 === 19) await sleep(5);
      }
      break;
    case 'discover-decline':
      for (let i = 0; i < count; i++) {
        const mac = randomMac();
        const got = await discoverThen(mac);
        if (got) await send(request(MessageType.DECLINE, mac, { requested: got.offered, serverId: serverIp }), '255.255.255.255', 67);
      }
      break;
    case 'dora':
      for (let i = 0; i < count; i++) {
        const mac = randomMac();
        const got = await discoverThen(mac);
        if (!got) continue;
        const ack = replyTo(got.xid, [MessageType.ACK, MessageType.NAK], 400);
        await send(request(MessageType.REQUEST, mac, { xid: got.xid, requested: got.offered, serverId: serverIp }), '255.255.255.255', 67);
        await ack;
      }
      break;
    case 'pi-serial':
      for (let i = 0; i < count; i++) {
        const xid = int(0xffffffff);
        const answer = replyTo(xid, [MessageType.OFFER], 400);
        await send(request(MessageType.DISCOVER, randomMac(), { xid, piSerial: 0x1234abcd }), '255.255.255.255', 67);
        await answer;
      }
      break;
    case 'one-mac': {
      const mac = randomMac();
      for (let i = 0; i < count; i++) await send(request(MessageType.DISCOVER, mac), '255.255.255.255', 67);
      await sleep(1000);
      break;
    }
    case 'mix': {
      const victims = VICTIM_MACS.map((m) => Buffer.from(m.replace(/:/g, ''), 'hex'));
      const types = [MessageType.DISCOVER, MessageType.REQUEST, MessageType.DECLINE, MessageType.RELEASE, MessageType.INFORM];
      const targets: Array<[string, number]> = [
        ['255.255.255.255', 67],
        [serverIp, 67],
        [serverIp, 4011],
      ];
      for (let i = 0; i < count; i++) {
        const mac = int(4) === 0 ? (victims[int(victims.length)] as Buffer) : randomMac();
        const type = types[int(types.length)] as number;
        const address = numberToIpv4(POOL_FIRST + int(40) - 10);
        const fields = {
          requested: int(2) ? address : undefined,
          serverId: int(2) ? serverIp : undefined,
          ciaddr: int(3) === 0 ? address : undefined,
          broadcast: int(2) === 0,
        };
        const [to, port] = targets[int(targets.length)] as [string, number];
        await send(request(type, mac, fields), to, port);
        if (i % 50 === 49) await sleep(1);
      }
      await sleep(500);
      break;
    }
    case 'claim-address': {
      const mac = Buffer.from(claimedMac.replace(/[:-]/g, ''), 'hex');
      if (mac.length !== 6 || !claimedAddress) throw new Error('claim-address needs MAC and ADDRESS');
      for (let i = 0; i < count; i++) await send(request(MessageType.REQUEST, mac, { requested: claimedAddress }), '255.255.255.255', 67);
      await sleep(200);
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

socket.bind(Number(sourcePortText), () => {
  socket.setBroadcast(true);
  socket.setSendBufferSize(4 * 1024 * 1024);
  run().then(
    async () => {
      await sleep(300);
      process.stdout.write(`${JSON.stringify({ scenario, ...counts })}\n`);
      socket.close();
    },
    (err: unknown) => {
      process.stderr.write(`dhcp-attacker: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
});
