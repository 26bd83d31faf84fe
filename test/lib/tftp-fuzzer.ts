// A stateful TFTP wire fuzzer, run as its own process inside a test namespace.
// It sends from many source endpoints (every local address given; ports 1, 68,
// 69, 65535 and ephemeral ones; port 0 through test/lib/udp-forge.py, since
// no socket can bind it), learns transfer ports from the server's OACK and DATA
// replies and aims junk at them, from their owner and from strangers, sometimes
// ACKing properly so transfers advance into windowed and retransmission paths.
// Usage: node --import tsx test/lib/tftp-fuzzer.ts SERVER_IP COUNT SEED LOCAL_IPS FILES
//   LOCAL_IPS and FILES are comma-separated; prints one JSON summary line.
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeAck, encodeError, encodeOack, encodeRequest, parseTftpPacket } from '../../server/tftp/packet.js';
import { mulberry32 } from './dhcp-fuzz-corpus.js';

const [serverIp = '10.9.0.1', countText = '100000', seedText = '1', localText = '10.9.0.2', filesText = 'small.bin'] =
  process.argv.slice(2);
const total = Number(countText);
const rnd = mulberry32(Number(seedText));
const localIps = localText.split(',');
const files = filesText.split(',');
const RAW_SENDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'udp-forge.py');

const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
const chance = (p: number) => rnd() < p;
const randomBytes = (n: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
};

interface Endpoint {
  socket: dgram.Socket;
  address: string;
  port: number;
}
/** A transfer the server opened for one of our endpoints: its port and the endpoint that asked. */
interface Learned {
  port: number;
  owner: Endpoint;
}

const EXTREME_VALUES = [
  '0',
  '1',
  '7',
  '8',
  '255',
  '256',
  '511',
  '512',
  '1428',
  '1468',
  '1469',
  '65464',
  '65465',
  '65535',
  '65536',
  '-1',
  '+5',
  '1e3',
  ' 8',
  '99999999999999999999',
  '',
  'abc',
  '\u00ff\u00fe',
];
const OPTION_NAMES = [
  'blksize',
  'BLKSIZE',
  'tsize',
  'timeout',
  'TimeOut',
  'windowsize',
  'multicast',
  'rollover',
  'utimeout',
  '\u00e9t\u00e9',
  'x'.repeat(300),
];

function options(): Array<[string, string]> {
  const n = chance(0.1) ? 50 + int(200) : int(6);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < n; i++)
    out.push([
      chance(0.05)
        ? randomBytes(1 + int(20))
            .toString('latin1')
            .replace(/\0/g, '')
        : pick(OPTION_NAMES),
      chance(0.8) ? pick(EXTREME_VALUES) : String(int(70000)),
    ]);
  return out;
}

function filename(): string {
  if (chance(0.7)) return pick(files);
  return pick(['../etc/passwd', 'nope.bin', '/', '', 'a'.repeat(400), '\u00ff\u00fe.bin', 'sub\\..\\..\\x', `${pick(files)}\u0001`]);
}

const validRrq = () =>
  encodeRequest('rrq', filename(), chance(0.9) ? pick(['octet', 'OCTET', 'Octet']) : pick(['netascii', 'mail', '', 'bogus']), options());

function mutate(packet: Buffer): Buffer {
  const b = Buffer.from(packet);
  for (let i = 0, n = 1 + int(4); i < n && b.length > 0; i++) b[int(b.length)] = int(256);
  return b;
}

/** A datagram for the request port. */
function requestPortPacket(): { kind: string; data: Buffer } {
  const r = int(100);
  if (r < 30) return { kind: 'rrq', data: validRrq() };
  if (r < 40) return { kind: 'rrq-truncated', data: validRrq().subarray(0, int(40)) };
  if (r < 50) return { kind: 'rrq-mutated', data: mutate(validRrq()) };
  if (r < 55) return { kind: 'wrq', data: encodeRequest('wrq', filename(), 'octet', options()) };
  if (r < 70) {
    const op = pick([3, 4, 5, 6, 0, 7, 255, 65535]);
    const data = Buffer.concat([Buffer.from([op >> 8, op & 0xff]), randomBytes(int(30))]);
    return { kind: 'other-opcode', data };
  }
  return { kind: 'random', data: randomBytes(int(chance(0.1) ? 1500 : 60)) };
}

/** A datagram for a transfer port. */
function transferPortPacket(): { kind: string; data: Buffer } {
  const r = int(100);
  if (r < 35) return { kind: 'ack', data: encodeAck(int(65536)) };
  if (r < 45) return { kind: 'ack-short', data: Buffer.from([0, 4, int(256)]) };
  if (r < 55) return { kind: 'data', data: Buffer.concat([Buffer.from([0, 3, int(256), int(256)]), randomBytes(int(600))]) };
  if (r < 60) return { kind: 'error', data: encodeError(int(9), 'fuzz') };
  if (r < 65) return { kind: 'oack', data: encodeOack(options()) };
  if (r < 75) return { kind: 'rrq', data: validRrq() };
  return { kind: 'random', data: randomBytes(int(100)) };
}

async function bindEndpoint(address: string, port: number): Promise<Endpoint | undefined> {
  const socket = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch {
    socket.close();
    return undefined;
  }
  socket.on('error', () => undefined);
  return { socket, address, port: socket.address().port };
}

async function main(): Promise<void> {
  const endpoints: Endpoint[] = [];
  for (const [i, address] of localIps.entries()) {
    const ports = i === 0 ? [1, 68, 69, 65535, 0, 0, 0, 0] : [0, 0, 0, 0];
    for (const port of ports) {
      const e = await bindEndpoint(address, port);
      if (e) endpoints.push(e);
    }
  }
  const learned: Learned[] = [];
  const counts: Record<string, number> = {};
  let replies = 0;
  let sendErrors = 0;
  for (const owner of endpoints) {
    owner.socket.on('message', (msg, rinfo) => {
      replies++;
      if (rinfo.port === 69) return;
      const p = parseTftpPacket(msg);
      if (!p.ok || (p.packet.op !== 'oack' && p.packet.op !== 'data')) return;
      if (!learned.some((l) => l.port === rinfo.port)) {
        learned.push({ port: rinfo.port, owner });
        if (learned.length > 64) learned.shift();
      }
      // Play the client now and then, so transfers advance past their first block.
      if (chance(0.3)) owner.socket.send(encodeAck(p.packet.op === 'oack' ? 0 : p.packet.block), rinfo.port, serverIp, () => undefined);
    });
  }

  const raw = spawn('python3', [RAW_SENDER], { stdio: ['pipe', 'pipe', 'inherit'] });
  let rawSummary = '';
  raw.stdout.on('data', (d: Buffer) => {
    rawSummary += d.toString();
  });
  const rawDone = new Promise<void>((resolve) => raw.on('close', () => resolve()));
  const sendPort0 = async (line: string) => {
    if (!raw.stdin.write(`${line}\n`)) await new Promise((r) => raw.stdin.once('drain', r));
  };

  let sent = 0;
  while (sent < total) {
    for (let batch = 0; batch < 100 && sent < total; batch++, sent++) {
      const toTransfer = learned.length > 0 && chance(0.4);
      const { kind, data } = toTransfer ? transferPortPacket() : requestPortPacket();
      const target = toTransfer ? pick(learned) : undefined;
      const port = target ? target.port : 69;
      if (chance(0.05)) {
        // Source port 0, from one of our addresses (replies could not come back anyway).
        counts[`port0-${toTransfer ? 'transfer' : 'request'}`] = (counts[`port0-${toTransfer ? 'transfer' : 'request'}`] ?? 0) + 1;
        await sendPort0(`${pick(localIps)} 0 ${serverIp} ${port} ${data.toString('hex') || '00'}`);
        continue;
      }
      const from = target && chance(0.5) ? target.owner : pick(endpoints);
      const key = `${toTransfer ? (from === target?.owner ? 'owner' : 'stranger') : 'request'}-${kind}`;
      counts[key] = (counts[key] ?? 0) + 1;
      from.socket.send(data, port, serverIp, (err) => {
        if (err) sendErrors++;
      });
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  raw.stdin.end();
  await rawDone;
  await new Promise((r) => setTimeout(r, 300));
  for (const e of endpoints) e.socket.close();
  const port0 = JSON.parse(rawSummary.trim() || '{}') as { sent?: number; errors?: number };
  process.stdout.write(
    `${JSON.stringify({ sent, port0Sent: port0.sent ?? 0, port0Errors: port0.errors ?? 0, sendErrors, replies, transferPortsLearned: learned.length, sourcePorts: endpoints.map((e) => e.port), counts })}\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`tftp-fuzzer: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
