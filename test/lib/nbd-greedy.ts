// A client that asks for far more than it reads: GO, then COUNT READs of 1 MiB,
// and never reads a byte of the replies. Holds the connection for HOLD_MS, then
// prints {"sent":COUNT} and closes.
// Usage: node --import tsx test/lib/nbd-greedy.ts HOST PORT EXPORT COUNT HOLD_MS
import net from 'node:net';

const [host = '127.0.0.1', port = '10809', exportName = 'disk', countText = '2000', holdText = '3000'] = process.argv.slice(2);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const name = Buffer.from(exportName);
const go = Buffer.concat([Buffer.from('IHAVEOPT'), u32(7), u32(4 + name.length + 2), u32(name.length), name, u16(0)]);

const socket = net.connect(Number(port), host, () => {
  socket.pause(); // never read: replies pile up on the server's side of the connection
  socket.write(Buffer.concat([u32(3), go]));
  const count = Number(countText);
  for (let i = 0; i < count; i++) {
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 6);
    req.writeBigUInt64BE(BigInt(i), 8);
    req.writeBigUInt64BE(BigInt((i % 4) * 1048576), 16);
    req.writeUInt32BE(1048576, 24);
    socket.write(req);
  }
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ sent: count })}\n`);
    socket.destroy();
  }, Number(holdText));
});
socket.on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
