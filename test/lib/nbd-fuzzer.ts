// A stateful NBD fuzzer: many connections, each playing one hostile script over
// the handshake and transmission phases, until MESSAGES protocol messages have
// been written. Scripts: option floods (random option numbers and lengths, past
// the server's option cap), repeated GOs (refused by policy from a refused
// address, unknown exports from anywhere), truncated option and request headers,
// bad client flags, huge option length claims, transmission requests with bad
// magic, types, offsets and lengths (and writes with payloads), abrupt closes at
// random points, and clients that never read; a few connections come from fixed
// low and high source ports (1, 68, 69, 1023, 65535). Prints one JSON line:
// {"messages":N,"connections":C,"noGreeting":G,"closedByServer":S,"fixedPortGreeted":F}.
// Usage: node --import tsx test/lib/nbd-fuzzer.ts HOST PORT EXPORT MESSAGES CONCURRENCY SEED
import net from 'node:net';
import { mulberry32 } from './dhcp-fuzz-corpus.js';
import { CLIENT_FLAGS, goOption, option, REQUEST_MAGIC, request, u32 } from './nbd-wire.js';

const [host = '127.0.0.1', portText = '10809', exportName = 'disk', messagesText = '100000', concurrencyText = '6', seedText = '1'] =
  process.argv.slice(2);
const port = Number(portText);
const target = Number(messagesText);
const rnd = mulberry32(Number(seedText));
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
const random = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

/** A connection's messages, in order: each one protocol message (a WRITE with its payload), a fragment of one, or garbage. */
type Script = Buffer[];

const OPTION_NUMBERS = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 0x7fffffff, 0xffffffff];
const randomOption = (): Buffer => {
  const number = rnd() < 0.7 ? pick(OPTION_NUMBERS) : int(0x100000000);
  // EXPORT_NAME and ABORT end the handshake; the flood keeps to the others mostly.
  const o = number === 1 || number === 2 ? 99 : number;
  const length = pick([0, 0, 1, 4, 6, 16, int(64), int(512), int(4200)]);
  return option(o, random(length));
};
const goTo = (name: string, infos: number[] = []) => {
  const n = Buffer.from(name);
  const tail = Buffer.alloc(2 + infos.length * 2);
  tail.writeUInt16BE(infos.length, 0);
  infos.forEach((info, i) => tail.writeUInt16BE(info & 0xffff, 2 + i * 2));
  return option(7, Buffer.concat([u32(n.length), n, tail]));
};
const EXPORT_SIZE_GUESS = 8 * 1024 * 1024;
const randomRequest = (): Buffer => {
  const type = rnd() < 0.8 ? pick([0, 0, 0, 1, 3, 4, 5, 6, 7, 8, 99]) : int(0x10000);
  const offset = pick([
    0n,
    BigInt(int(EXPORT_SIZE_GUESS)),
    BigInt(EXPORT_SIZE_GUESS - 1),
    BigInt(EXPORT_SIZE_GUESS),
    0xfffffffffffff000n,
    BigInt(int(2 ** 40)),
  ]);
  const length = pick([0, 1, 512, 4096, int(65536), 1 << 20, 32 << 20, 0xffffffff]);
  const cookie = BigInt(int(2 ** 31));
  if (type === 1) {
    const payload = int(2048);
    return Buffer.concat([request(1, cookie, offset, payload), random(payload)]);
  }
  return request(type, cookie, offset, length);
};

const scripts: Array<() => Script> = [
  // Option flood past the option cap.
  () => [CLIENT_FLAGS, ...Array.from({ length: 50 + int(300) }, randomOption)],
  // Options, then a valid GO, then a burst of transmission requests.
  () => [
    CLIENT_FLAGS,
    ...Array.from({ length: int(20) }, randomOption),
    goOption(exportName),
    ...Array.from({ length: 100 + int(300) }, randomRequest),
  ],
  // Repeated GO: refused by policy (from a refused address), unknown exports, malformed info lists.
  () => [
    CLIENT_FLAGS,
    ...Array.from({ length: 5 + int(50) }, () =>
      pick([
        goOption(exportName),
        goTo('no-such-export'),
        goTo(exportName, [0, 1, 2, 3, 0xffff]),
        option(7, random(int(20))),
        option(6, random(int(40))),
      ]),
    ),
  ],
  // Truncated option header.
  () => [CLIENT_FLAGS, ...Array.from({ length: int(10) }, randomOption), option(3).subarray(0, 1 + int(15))],
  // Truncated request header after GO.
  () => [
    CLIENT_FLAGS,
    goOption(exportName),
    ...Array.from({ length: int(50) }, randomRequest),
    request(0, 1n, 0n, 4096).subarray(0, 1 + int(27)),
  ],
  // Bad request magic in the middle of good requests.
  () => [
    CLIENT_FLAGS,
    goOption(exportName),
    ...Array.from({ length: int(100) }, randomRequest),
    request(0, 2n, 0n, 512, REQUEST_MAGIC ^ (1 << int(32))),
    ...Array.from({ length: 20 }, randomRequest),
  ],
  // Bad client flags, garbage instead of a handshake.
  () => [pick([u32(0xffffffff), u32(0), u32(4 + int(100)), random(int(64))]), ...Array.from({ length: int(20) }, randomOption)],
  // An option claiming a huge length.
  () => [CLIENT_FLAGS, Buffer.concat([Buffer.from('IHAVEOPT'), u32(pick([3, 7, 99])), u32(4300 + int(0xffff0000))]), random(int(1000))],
  // LIST floods and ABORT.
  () => [CLIENT_FLAGS, ...Array.from({ length: 10 + int(200) }, () => option(3)), option(2)],
  // EXPORT_NAME (refused, unknown or valid), then requests with DISC in the middle.
  () => [
    CLIENT_FLAGS,
    option(1, Buffer.from(pick([exportName, 'nope', '']))),
    ...Array.from({ length: int(100) }, randomRequest),
    request(2, 3n, 0n, 0),
    ...Array.from({ length: int(20) }, randomRequest),
  ],
];

const SOURCE_PORTS = [1, 68, 69, 1023, 65535];

/** Messages written (fragments and garbage count as one each). */
let messages = 0;
let connections = 0;
let noGreeting = 0;
let closedByServer = 0;
let fixedPortGreeted = 0;

function play(script: Script): Promise<void> {
  return new Promise((resolve) => {
    connections++;
    // Now and then from a fixed source port, ending with a reset (no TIME_WAIT to block its reuse).
    const localPort = rnd() < 0.03 ? pick(SOURCE_PORTS) : undefined;
    const socket = net.connect({ port, host, ...(localPort ? { localPort } : {}) });
    let received = 0;
    let serverClosed = true;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(giveUp);
      if (received === 0) noGreeting++;
      else if (localPort) fixedPortGreeted++;
      if (serverClosed) closedByServer++;
      if (localPort && !socket.destroyed && socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
      resolve();
    };
    // Some clients read every reply, some read nothing (the server must hold back), some vanish mid-script.
    const reader = rnd();
    const giveUp = setTimeout(
      () => {
        serverClosed = false;
        finish();
      },
      pick([0, 5, 20, 100, 300]),
    );
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.on('connect', () => {
      if (reader < 0.2) socket.pause();
      const cut = rnd() < 0.2 ? int(script.length) : script.length; // abrupt close part-way
      for (let i = 0; i < cut && !socket.destroyed; i++) {
        socket.write(script[i] as Buffer);
        messages++;
      }
    });
  });
}

async function worker(): Promise<void> {
  while (messages < target) await play(pick(scripts)());
}

await Promise.all(Array.from({ length: Number(concurrencyText) }, () => worker()));
process.stdout.write(`${JSON.stringify({ messages, connections, noGreeting, closedByServer, fixedPortGreeted })}\n`);
