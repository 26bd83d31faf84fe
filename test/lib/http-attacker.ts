// An HTTP attacker made of raw TCP sockets, run inside a test namespace. Prints
// one JSON line per phase on stdout.
//   hold HOST PORT COUNT HOLD_MS
//     Opens COUNT connections that send nothing; once they settle prints
//     {"event":"holding","opened","refused","open"} (refused: closed by the server
//     without a byte), holds the rest until HOLD_MS after the start, closes them
//     and prints {"event":"done"}.
//   slowloris HOST PORT COUNT DEADLINE_MS
//     COUNT connections: half send a request's headers one byte a second and
//     never finish them, half send nothing. Prints {"event":"done","opened",
//     "closedByServer","timeoutReplies"} once the server closed them all or at
//     DEADLINE_MS.
//   stall HOST PORT PATH STALL_MS
//     GETs PATH and reads nothing for STALL_MS, then reads to the end. Prints
//     {"event":"done","declared","received","ended"}: a server that closes a
//     stalled reader sends fewer bytes than declared.
// Usage: node --import tsx test/lib/http-attacker.ts MODE ...
import net from 'node:net';

const [mode, host = '127.0.0.1', portText = '8080', ...rest] = process.argv.slice(2);
const port = Number(portText);
const print = (value: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(value)}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Tracked {
  socket: net.Socket;
  bytes: number;
  closedByServer: boolean;
  closedByUs: boolean;
  text: string;
}

function close(tracked: Tracked): void {
  tracked.closedByUs = true;
  tracked.socket.destroy();
}

function open(): Promise<Tracked> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const tracked: Tracked = { socket, bytes: 0, closedByServer: false, closedByUs: false, text: '' };
    socket.on('data', (chunk: Buffer) => {
      tracked.bytes += chunk.length;
      if (tracked.text.length < 200) tracked.text += chunk.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!tracked.closedByUs) tracked.closedByServer = true;
    });
    socket.once('connect', () => resolve(tracked));
    // A connection the kernel refused counts as one closed by the server.
    socket.once('error', () => resolve(tracked));
  });
}

async function hold(count: number, holdMs: number): Promise<void> {
  const start = Date.now();
  const sockets: Tracked[] = [];
  for (let i = 0; i < count; i++) sockets.push(await open());
  // Refusals are immediate; give the last of them a moment to arrive.
  await sleep(1000);
  const refused = sockets.filter((s) => s.closedByServer && s.bytes === 0).length;
  print({ event: 'holding', opened: count, refused, open: sockets.filter((s) => !s.closedByServer).length });
  await sleep(Math.max(0, holdMs - (Date.now() - start)));
  const closedLater = sockets.filter((s) => s.closedByServer).length - refused;
  for (const s of sockets) close(s);
  print({ event: 'done', closedLater });
}

async function slowloris(count: number, deadlineMs: number): Promise<void> {
  const start = Date.now();
  const sockets: Tracked[] = [];
  const header = Buffer.from('GET /healthz HTTP/1.1\r\nHost: bootfarm\r\nX-Slow: ' + 'a'.repeat(10_000));
  for (let i = 0; i < count; i++) {
    const tracked = await open();
    sockets.push(tracked);
    if (i % 2 === 1) continue; // silent: connects and sends nothing
    let offset = 0;
    const timer = setInterval(() => {
      if (tracked.socket.destroyed || offset >= header.length) {
        clearInterval(timer);
        return;
      }
      tracked.socket.write(header.subarray(offset, offset + 1));
      offset++;
    }, 1000);
  }
  while (Date.now() - start < deadlineMs && sockets.some((s) => !s.closedByServer)) await sleep(200);
  print({
    event: 'done',
    opened: count,
    closedByServer: sockets.filter((s) => s.closedByServer).length,
    timeoutReplies: sockets.filter((s) => /^HTTP\/1\.1 408/.test(s.text)).length,
  });
  for (const s of sockets) close(s);
}

async function stall(file: string, stallMs: number): Promise<void> {
  const tracked = await open();
  const socket = tracked.socket;
  socket.pause();
  socket.write(`GET /${file} HTTP/1.1\r\nHost: bootfarm\r\nConnection: close\r\n\r\n`);
  await sleep(stallMs);
  let ended = false;
  socket.on('end', () => {
    ended = true;
  });
  socket.resume();
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    // A server that never closes: stop waiting once the body would be complete.
    const check = setInterval(() => {
      const declared = Number(/content-length: (\d+)/i.exec(tracked.text)?.[1] ?? -1);
      const headerEnd = tracked.text.indexOf('\r\n\r\n');
      if (declared >= 0 && headerEnd >= 0 && tracked.bytes >= headerEnd + 4 + declared) {
        clearInterval(check);
        resolve();
      }
    }, 100);
    socket.once('close', () => clearInterval(check));
  });
  const headerEnd = tracked.text.indexOf('\r\n\r\n');
  const declared = Number(/content-length: (\d+)/i.exec(tracked.text)?.[1] ?? -1);
  print({ event: 'done', declared, received: headerEnd >= 0 ? tracked.bytes - headerEnd - 4 : 0, ended: ended || tracked.closedByServer });
  close(tracked);
}

const main = async (): Promise<void> => {
  if (mode === 'hold') return hold(Number(rest[0] ?? 10), Number(rest[1] ?? 5000));
  if (mode === 'slowloris') return slowloris(Number(rest[0] ?? 4), Number(rest[1] ?? 30_000));
  if (mode === 'stall') return stall(rest[0] ?? 'big', Number(rest[1] ?? 5000));
  throw new Error(`unknown mode ${mode ?? ''}`);
};
main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(2);
  },
);
