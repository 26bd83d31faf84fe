// A minimal Node TFTP read server: the Node/dgram floor for bench-tftp, to tell
// what bootfarm's TFTP code costs on top of Node itself. Not a real server: no
// path checks, no retransmission logic beyond one timer, files read whole into
// memory, no logging or metrics.
//
//   node bench/tftp-floor.mjs --root DIR [--addr 127.0.0.1] [--port 69]
//        [--connect] [--timer rearm|refresh|none]
//
// --connect      connect() each transfer socket to the client (send without address:
//                no per-send dns.lookup/nextTick in Node, cached route in the kernel)
// --timer rearm  clearTimeout+setTimeout per window (what bootfarm does; default)
//         refresh one Timeout per transfer, timer.refresh() per window
//         none    no retransmission timer at all
// Options honoured: blksize (8..65464), windowsize (1..64), tsize. RFC 7440 windows:
// send blocks acked+1..acked+windowsize after each ACK.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const root = opt('--root');
if (!root) {
  console.error('usage: node bench/tftp-floor.mjs --root DIR [--addr A] [--port P] [--connect] [--timer rearm|refresh|none]');
  process.exit(2);
}
const addr = opt('--addr', '127.0.0.1');
const port = Number(opt('--port', '69'));
const connect = args.includes('--connect');
const timerMode = opt('--timer', 'rearm');
const files = new Map();
const load = (name) => {
  let f = files.get(name);
  if (!f) {
    f = readFileSync(path.join(root, path.normalize('/' + name)));
    files.set(name, f);
  }
  return f;
};

const listener = dgram.createSocket('udp4');
listener.on('message', (msg, rinfo) => {
  if (msg.readUInt16BE(0) !== 1) return;
  const parts = msg.subarray(2).toString('latin1').split('\0');
  let data;
  try {
    data = load(parts[0]);
  } catch {
    listener.send(Buffer.from('\0\x05\0\x01not found\0', 'latin1'), rinfo.port, rinfo.address);
    return;
  }
  let blksize = 512;
  let ws = 1;
  const oack = [];
  for (let i = 2; i + 1 < parts.length; i += 2) {
    const k = parts[i].toLowerCase();
    const v = parts[i + 1];
    if (k === 'blksize') {
      blksize = Math.min(65464, Math.max(8, Number(v)));
      oack.push(k, String(blksize));
    } else if (k === 'windowsize') {
      ws = Math.min(64, Math.max(1, Number(v)));
      oack.push(k, String(ws));
    } else if (k === 'tsize') oack.push(k, String(data.length));
  }
  startTransfer(data, blksize, ws, oack, rinfo);
});
listener.bind(port, addr, () => console.error(`tftp-floor on ${addr}:${port} connect=${connect} timer=${timerMode}`));

function startTransfer(data, blksize, ws, oack, peer) {
  const sock = dgram.createSocket('udp4');
  const total = Math.floor(data.length / blksize) + 1;
  let acked = 0;
  let timer;
  let done = false;
  const send = connect ? (b) => sock.send(b) : (b) => sock.send(b, peer.port, peer.address);
  const arm = () => {
    if (timerMode === 'none') return;
    if (timerMode === 'refresh') {
      if (timer) timer.refresh();
      else timer = setTimeout(onTimeout, 1000);
      return;
    }
    if (timer) clearTimeout(timer);
    timer = setTimeout(onTimeout, 1000);
  };
  const sendWindow = () => {
    const last = Math.min(acked + ws, total);
    for (let b = acked + 1; b <= last; b++) {
      const off = (b - 1) * blksize;
      const len = Math.max(0, Math.min(blksize, data.length - off));
      const hdr = Buffer.allocUnsafe(4); // header + file slice, two iovecs, as bootfarm sends
      hdr.writeUInt16BE(3, 0);
      hdr.writeUInt16BE(b & 0xffff, 2);
      send([hdr, data.subarray(off, off + len)]);
    }
    arm();
  };
  function onTimeout() {
    if (done) return;
    sendWindow();
  }
  sock.on('message', (msg) => {
    if (done || msg.length < 4 || msg.readUInt16BE(0) !== 4) {
      if (msg.length >= 2 && msg.readUInt16BE(0) === 5) finish();
      return;
    }
    const wire = msg.readUInt16BE(2);
    for (let i = acked; i <= acked + ws && i <= total; i++) {
      if ((i & 0xffff) === wire) {
        if (i === acked && i !== 0) return; // duplicate ACK: ignore
        acked = i;
        if (acked >= total) return finish();
        return sendWindow();
      }
    }
  });
  function finish() {
    done = true;
    if (timer) clearTimeout(timer);
    sock.close();
  }
  sock.bind(0, addr, () => {
    if (connect) sock.connect(peer.port, peer.address, go);
    else go();
  });
  function go() {
    if (oack.length) {
      send(Buffer.concat([Buffer.from([0, 6]), Buffer.from(oack.join('\0') + '\0', 'latin1')]));
      arm();
    } else sendWindow();
  }
}
