// Small scripted TFTP peers for behaviours no stock client shows on demand.
// Usage (in a namespace): node --import tsx test/lib/tftp-peers.ts MODE SERVER FILE [ARGS]
//   uefi-probe SERVER FILE      EDK2: RRQ tsize+blksize, ERROR 8 after the OACK, then
//                               RRQ without tsize and download; prints {"sha256","size","tsize"}
//   slow SERVER FILE DELAY_MS   lock-step download ACKing each block after DELAY_MS; prints
//                               {"port","sha256","size"} (port first, as soon as it is known)
//   fuzz SERVER PORT COUNT SEED sends COUNT hostile datagrams to SERVER:PORT; prints {"sent"}
//   first-reply SERVER FILE OPT=VALUE...  sends one RRQ with these options and prints the
//                               server's first reply ({"op","options"} or {"op","code","message"}) and
//                               its port; never ACKs, so the transfer is left to time out
import dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import { encodeAck, encodeError, encodeRequest, parseTftpPacket } from '../../server/tftp/packet.js';
import { mulberry32 } from './dhcp-fuzz-corpus.js';

const [mode, server = '10.9.0.1', file = '', arg3 = '', arg4 = ''] = process.argv.slice(2);
const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => s.bind(0, () => resolve(s)));
}

/** Sends and waits until the datagram left: closing right after send() can discard it. */
function sendNow(s: dgram.Socket, msg: Buffer, port: number): Promise<void> {
  return new Promise((resolve, reject) => s.send(msg, port, server, (err) => (err ? reject(err) : resolve())));
}

function next(s: dgram.Socket, timeoutMs = 5000): Promise<{ msg: Buffer; port: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off('message', on);
      reject(new Error('timeout'));
    }, timeoutMs);
    const on = (msg: Buffer, r: dgram.RemoteInfo) => {
      clearTimeout(timer);
      s.off('message', on);
      resolve({ msg, port: r.port });
    };
    s.on('message', on);
  });
}

async function download(
  options: Array<[string, string]>,
  delayMs: number,
  onPort?: (p: number) => void,
): Promise<{ data: Buffer; tsize?: number }> {
  const s = await socket();
  s.send(encodeRequest('rrq', file, 'octet', options), 69, server);
  const chunks: Buffer[] = [];
  let expected = 1;
  let blksize = 512;
  let tsize: number | undefined;
  let first = true;
  for (;;) {
    const { msg, port } = await next(s, 15_000);
    if (first) {
      onPort?.(port);
      first = false;
    }
    const p = parseTftpPacket(msg);
    if (!p.ok) continue;
    if (p.packet.op === 'oack') {
      for (const [k, v] of p.packet.options) {
        if (k.toLowerCase() === 'blksize') blksize = Number(v);
        if (k.toLowerCase() === 'tsize') tsize = Number(v);
      }
      s.send(encodeAck(0), port, server);
      continue;
    }
    if (p.packet.op === 'error') throw new Error(`server error ${p.packet.code}: ${p.packet.message}`);
    if (p.packet.op !== 'data') continue;
    if (p.packet.block === (expected & 0xffff)) {
      chunks.push(Buffer.from(p.packet.data));
      expected++;
    }
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    await sendNow(s, encodeAck(p.packet.block), port);
    if (p.packet.block === ((expected - 1) & 0xffff) && p.packet.data.length < blksize) break;
  }
  s.close();
  return { data: Buffer.concat(chunks), tsize };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function main(): Promise<void> {
  if (mode === 'uefi-probe') {
    const s = await socket();
    s.send(
      encodeRequest('rrq', file, 'octet', [
        ['tsize', '0'],
        ['blksize', '1468'],
      ]),
      69,
      server,
    );
    const { msg, port } = await next(s);
    const p = parseTftpPacket(msg);
    if (!p.ok || p.packet.op !== 'oack') throw new Error('expected an OACK');
    const tsize = Number(p.packet.options.find(([k]) => k === 'tsize')?.[1]);
    await sendNow(s, encodeError(8, 'User aborted the transfer'), port);
    s.close();
    const { data } = await download([['blksize', '1468']], 0);
    out({ tsize, size: data.length, sha256: sha(data) });
  } else if (mode === 'slow') {
    const { data } = await download([['blksize', '512']], Number(arg3), (port) => out({ port }));
    out({ size: data.length, sha256: sha(data) });
  } else if (mode === 'first-reply') {
    const options = process.argv.slice(5).map((o): [string, string] => [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)]);
    const s = await socket();
    s.send(encodeRequest('rrq', file, 'octet', options), 69, server);
    const { msg, port } = await next(s);
    const p = parseTftpPacket(msg);
    if (!p.ok) throw new Error('unparseable reply');
    s.close();
    if (p.packet.op === 'data') out({ op: 'data', block: p.packet.block, port });
    else out({ ...p.packet, port });
  } else if (mode === 'fuzz') {
    const s = await socket();
    const rnd = mulberry32(Number(arg4 || 1));
    const count = Number(arg3);
    for (let i = 0; i < count; i++) {
      const len = Math.floor(rnd() * 600);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
      // A third are well-formed opcodes with garbage: ACK/DATA/ERROR/RRQ/WRQ/OACK.
      if (len >= 2 && i % 3 === 0) b.writeUInt16BE(1 + (i % 6), 0);
      s.send(b, Number(file), server);
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
    s.close();
    out({ sent: count });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`tftp-peers: ${err.message}\n`);
  process.exit(1);
});
