// Hostile NBD clients: malformed handshakes, unknown options, wrong magic, huge
// lengths, reads past the end, abrupt disconnects. Every case is its own
// connection; prints {"cases":N} when all are done.
// Usage: node --import tsx test/lib/nbd-fuzzer.ts HOST PORT EXPORT ROUNDS SEED
import net from 'node:net';
import { mulberry32 } from './dhcp-fuzz-corpus.js';

const [host = '127.0.0.1', portText = '10809', exportName = 'disk', roundsText = '50', seedText = '1'] = process.argv.slice(2);
const port = Number(portText);
const rnd = mulberry32(Number(seedText));
const int = (n: number) => Math.floor(rnd() * n);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };
const opt = (o: number, data: Buffer) => Buffer.concat([Buffer.from('IHAVEOPT'), u32(o), u32(data.length), data]);
const go = (name: string) => { const n = Buffer.from(name); return opt(7, Buffer.concat([u32(n.length), n, u16(0)])); };
const request = (type: number, offset: bigint, length: number, magic = 0x25609513) => Buffer.concat([u32(magic), u16(0), u16(type), u64(BigInt(int(1e9))), u64(offset), u32(length)]);
const random = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

const cases: Array<() => Buffer[]> = [
  () => [random(int(64))], // garbage instead of client flags
  () => [u32(0xffffffff)], // unknown client flags
  () => [u32(3), random(int(200))], // garbage options
  () => [u32(3), Buffer.concat([Buffer.from('IHAVEOPT'), u32(7), u32(0xfffffff0)])], // huge option length
  () => [u32(3), opt(99, random(int(50))), opt(8, Buffer.alloc(0)), opt(5, Buffer.alloc(0)), go(exportName)], // unknown options, then a valid GO
  () => [u32(3), opt(7, random(int(30)))], // malformed GO data
  () => [u32(3), opt(1, Buffer.from('no-such-export'))], // EXPORT_NAME unknown
  () => [u32(3), go(exportName), request(0, 0xffffffffffff0000n, 4096)], // read past the end
  () => [u32(3), go(exportName), request(0, 0n, 0xffffffff)], // huge read
  () => [u32(3), go(exportName), request(0, 0n, 512, 0xdeadbeef)], // wrong request magic
  () => [u32(3), go(exportName), request(1, 0n, 0x7fffffff)], // write with a huge payload claim
  () => [u32(3), go(exportName), request(1, 0n, 16), random(16), request(4, 0n, 4096), request(99, 0n, 1)], // write, trim, unknown command
  () => [u32(3), go(exportName), ...Array.from({ length: 200 }, () => request(0, BigInt(int(1000)) * 4096n, 4096))], // many pipelined reads, then vanish
  () => [u32(3), go(exportName), request(0, 0n, 4096).subarray(0, 13)], // half a request, then disconnect
];

async function runCase(parts: Buffer[]): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = net.connect(port, host);
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.on('data', () => undefined);
    socket.on('connect', () => {
      for (const p of parts) socket.write(p);
      // Sometimes wait for answers, sometimes drop the connection at once.
      setTimeout(() => socket.destroy(), rnd() < 0.5 ? 0 : 50);
    });
  });
}

let done = 0;
for (let round = 0; round < Number(roundsText); round++) {
  await Promise.all(cases.map((c) => runCase(c())));
  done += cases.length;
}
process.stdout.write(`${JSON.stringify({ cases: done })}\n`);
