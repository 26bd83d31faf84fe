// Raw NBD clients that misbehave on purpose, one per mode; each prints one JSON
// line with what it observed. A guard ends any wait the server never ends, so a
// server without the limit under test shows up as {"closed":false}.
// Usage: node --import tsx test/lib/nbd-attacker.ts MODE HOST PORT [ARGS...]
//   refused-flood EXPORT N   GO (refused by policy), then N LISTs: replies seen, closed?
//   idle                     connects and sends nothing: closed?
//   options N                N unknown options: replies seen, closed?
//   big-option LENGTH        an option header claiming LENGTH bytes, then 100 of them: replies, closed?
//   probe                    connects only: bytes received (the greeting or nothing), closed?
//   hold EXPORT COUNT        COUNT connections that GO and stay; prints {"held":[...]}, holds them until SIGTERM
//   flood EXPORT COUNT       GO, then COUNT requests (FLUSH, TRIM, READ past the end, unknown command) never
//                            reading a reply; prints {"sent":n,"stalled":bool}, holds it until SIGTERM
import net from 'node:net';
import { CLIENT_FLAGS, Cmd, goOption, GREETING_LENGTH, listOption, option, parseOptionReplies, request, u32 } from './nbd-wire.js';

const [mode = '', host = '127.0.0.1', portText = '10809', ...args] = process.argv.slice(2);
const port = Number(portText);
/** How long a wait for the server to close may last before it counts as "not closed". */
const GUARD_MS = 8000;

interface Observed {
  bytes: Buffer;
  closed: boolean;
}

/** Connects, sends `parts` (when connected), collects what comes back until the server closes or the guard ends. */
function converse(parts: Buffer[]): Promise<Observed> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, host);
    const finish = (closed: boolean) => {
      clearTimeout(guard);
      socket.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed });
    };
    const guard = setTimeout(() => finish(false), GUARD_MS);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      for (const p of parts) socket.write(p);
    });
  });
}

function optionSummary(o: Observed): { closed: boolean; replies: number[]; greeting: boolean } {
  const greeting = o.bytes.length >= GREETING_LENGTH && o.bytes.subarray(0, 8).toString('latin1') === 'NBDMAGIC';
  return { closed: o.closed, greeting, replies: parseOptionReplies(o.bytes.subarray(GREETING_LENGTH)).replies.map((r) => r.type) };
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
/** Held connections stay until the test stops this process (SIGTERM, by PID). */
const untilStopped = () => new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));

/** Opens one connection and GOes; resolves once the GO's ACK (or anything else final) arrived. */
function attach(exportName: string): Promise<{ socket: net.Socket; attached: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let bytes = Buffer.alloc(0);
    let settled = false;
    const done = (attached: boolean) => {
      if (!settled) {
        settled = true;
        resolve({ socket, attached });
      }
    };
    socket.on('data', (c: Buffer) => {
      bytes = Buffer.concat([bytes, c]);
      const replies = parseOptionReplies(bytes.subarray(GREETING_LENGTH)).replies;
      const last = replies.at(-1);
      if (last && last.type !== 3) done(last.type === 1);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('connect', () => socket.write(Buffer.concat([CLIENT_FLAGS, goOption(exportName)])));
  });
}

async function flood(exportName: string, count: number): Promise<void> {
  const socket = net.connect(port, host);
  socket.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.pause(); // never read: every reply stays on the server's side
  socket.write(Buffer.concat([CLIENT_FLAGS, goOption(exportName)]));
  const batch: Buffer[] = [];
  for (let i = 0; i < 4096; i++) {
    const kind = i % 4;
    if (kind === 0) batch.push(request(Cmd.FLUSH, BigInt(i), 0n, 0));
    if (kind === 1) batch.push(request(Cmd.TRIM, BigInt(i), 0n, 4096));
    if (kind === 2) batch.push(request(Cmd.READ, BigInt(i), 0xffffffff0000n, 4096));
    if (kind === 3) batch.push(request(99, BigInt(i), 0n, 0));
  }
  const chunk = Buffer.concat(batch);
  let sent = 0;
  let stalled = false;
  while (sent < count) {
    const n = Math.min(batch.length, count - sent);
    const more = socket.write(n === batch.length ? chunk : chunk.subarray(0, n * 28));
    sent += n;
    if (!more) {
      // The server stopped reading if our own buffer does not drain within the guard.
      const drained = await new Promise<boolean>((resolve) => {
        const guard = setTimeout(() => resolve(false), 3000);
        socket.once('drain', () => {
          clearTimeout(guard);
          resolve(true);
        });
      });
      if (!drained) {
        stalled = true;
        break;
      }
    }
  }
  print({ sent, stalled });
  await untilStopped();
  socket.destroy();
}

switch (mode) {
  case 'refused-flood': {
    const [exportName = 'disk', n = '100'] = args;
    print(optionSummary(await converse([CLIENT_FLAGS, goOption(exportName), ...Array.from({ length: Number(n) }, () => listOption())])));
    break;
  }
  case 'idle':
    print(optionSummary(await converse([])));
    break;
  case 'options': {
    const n = Number(args[0] ?? '100');
    print(optionSummary(await converse([CLIENT_FLAGS, ...Array.from({ length: n }, (_, i) => option(1000 + i))])));
    break;
  }
  case 'big-option': {
    const length = Number(args[0] ?? '60000');
    print(optionSummary(await converse([CLIENT_FLAGS, Buffer.from('IHAVEOPT'), u32(99), u32(length), Buffer.alloc(100)])));
    break;
  }
  case 'probe': {
    const o = await converse([]);
    print({ bytes: o.bytes.length, closed: o.closed });
    break;
  }
  case 'hold': {
    const [exportName = 'disk', count = '1'] = args;
    const conns = await Promise.all(Array.from({ length: Number(count) }, () => attach(exportName)));
    print({ held: conns.map((c) => c.attached) });
    await untilStopped();
    for (const c of conns) c.socket.destroy();
    break;
  }
  case 'flood':
    await flood(args[0] ?? 'disk', Number(args[1] ?? '1000000'));
    break;
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
