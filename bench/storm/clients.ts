// Boot-storm clients: N simulated amd64 BIOS machines (PXE ROM, then the iPXE it
// chainloads), each doing the whole boot sequence a real one does, from its own MAC
// and, after its lease, its own address. Runs inside the client namespace that
// bench/storm/run.ts makes (it needs root: port 68, `ip addr add`).
//
// Per machine, in order (one timeline entry per step):
//   dhcp1   DORA as the PXE ROM: option 60 PXEClient:Arch:00000:UNDI:002001, 93 = 0,
//           94 = UNDI 2.1, 97 = GUID, 55 = the PXE 2.1 request list; broadcast flag set
//   addr    the leased address added to the client interface (harness work, no server)
//   tftp    the DHCP reply's boot file from siaddr, lock-step, blksize 1468, tsize 0
//   dhcp2   DORA again as the chainloaded iPXE (77 "iPXE", 175), as undionly.kpxe does
//   script  the boot file of that reply: an http:// URL (GET) or a TFTP name
//   kernel, initrd   the `kernel` and `initrd` URLs of the iPXE script, over HTTP
//           with keep-alive (iPXE pools its connections), from the leased address
//   nbd     NBD fixed newstyle handshake + NBD_OPT_GO of the export the kernel
//           command line names (bootfarm.nbd=ADDR:PORT bootfarm.export=NAME)
//   reads   the first-boot read pattern, QD1: sequential 128 KiB reads of the first
//           --seq-mib MiB, then --rand-reads random 4 KiB reads over the export
//           (SYNTHETIC); or, with --trace FILE, the reads a lab node made in its first
//           boot (bench/storm/record-lab-trace.sh), replayed in order at QD1 (the
//           kernel had several in flight).
// The agent's config fetch, join and report are not simulated (they need a boot
// nonce spent by an agent and a Kubernetes API; left for later).
//
// Usage: node --import tsx bench/storm/clients.ts --iface cli0 --count N [--mac-base 5]
//   [--prefix 16] [--spread-ms 1000] [--seq-mib 16] [--rand-reads 256] [--trace FILE] [--deadline-s 600]
// Prints one line `STORM_CLIENTS {json}` with every machine's timeline.
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { intOption } from './int-option.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const run = promisify(execFile);

const { values: opts } = parseArgs({
  options: {
    iface: { type: 'string', default: 'cli0' },
    count: { type: 'string', default: '50' },
    'mac-base': { type: 'string', default: '5' },
    prefix: { type: 'string', default: '16' },
    'spread-ms': { type: 'string', default: '1000' },
    'seq-mib': { type: 'string', default: '16' },
    'rand-reads': { type: 'string', default: '256' },
    'deadline-s': { type: 'string', default: '600' },
    'first-index': { type: 'string', default: '1' },
    'start-at': { type: 'string' },
    trace: { type: 'string' },
  },
});

function intOpt(name: keyof typeof opts, min: number, max: number): number {
  return intOption(name, opts[name], min, max);
}

const count = intOpt('count', 1, 5000);
const macBase = intOpt('mac-base', 0, 255);
const prefix = intOpt('prefix', 8, 30);
const spreadMs = intOpt('spread-ms', 0, 60_000);
const seqMiB = intOpt('seq-mib', 0, 1024);
const randReads = intOpt('rand-reads', 0, 100_000);
const deadlineMs = intOpt('deadline-s', 1, 3600) * 1000;
// Several generator processes share a storm (bench/storm/run.ts --workers): each
// takes the machines from --first-index on, and all start at the wall-clock instant
// --start-at (ms since the epoch), so their timelines share one clock.
const firstIndex = intOpt('first-index', 1, 1 << 20);
const startAt = opts['start-at'] === undefined ? Date.now() : intOpt('start-at', 0, Number.MAX_SAFE_INTEGER);
const iface = opts.iface ?? 'cli0';
// --trace FILE: "<offset> <length>" per line, the reads a lab node made
// (bench/storm/record-lab-trace.sh); replayed in order instead of the synthetic pattern.
const trace: Array<[bigint, number]> | undefined = opts.trace === undefined ? undefined : readTrace(opts.trace);

function readTrace(file: string): Array<[bigint, number]> {
  const out: Array<[bigint, number]> = [];
  for (const [i, line] of readFileSync(file, 'utf8').split('\n').entries()) {
    if (line.trim() === '') continue;
    const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(line);
    const len = Number(m?.[2]);
    if (!m?.[1] || !Number.isInteger(len) || len < 1 || len > 32 << 20) {
      throw new Error(
        `--trace ${file}:${i + 1}: expected "<offset> <length>" with a length of 1 B to 32 MiB, got ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    out.push([BigInt(m[1]), len]);
  }
  if (out.length === 0) throw new Error(`--trace ${file}: no reads`);
  return out;
}

/** Wall-clock ms, at performance.now()'s resolution. */
const now = (): number => performance.timeOrigin + performance.now();

interface Step {
  step: string;
  start: number;
  end: number;
  bytes?: number;
}
interface Machine {
  index: number;
  mac: string;
  ip?: string;
  steps: Step[];
  error?: string;
  failedStep?: string;
  start: number;
  end?: number;
}

// ---------------------------------------------------------------- DHCP

const PXE_ROM_PRL = [
  1, 2, 3, 4, 5, 6, 11, 12, 13, 15, 16, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132,
  133, 134, 135,
];
// iPXE's own list (src/net/udp/dhcp.c dhcp_request_features + dhcp_discover).
const IPXE_PRL = [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203];

interface DhcpReply {
  type: number;
  yiaddr: string;
  siaddr: string;
  file: string;
  serverId?: string;
  opt66?: string;
  opt67?: string;
}

function option(code: number, data: Buffer): Buffer {
  if (data.length > 255) throw new Error(`DHCP option ${code} longer than 255 bytes`);
  return Buffer.concat([Buffer.from([code, data.length]), data]);
}

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function encodeDhcp(xid: number, mac: Buffer, guid: Buffer, msgType: 1 | 3, ipxe: boolean, req?: { ip: string; serverId: string }): Buffer {
  const head = Buffer.alloc(240);
  head[0] = 1; // BOOTREQUEST
  head[1] = 1; // Ethernet
  head[2] = 6;
  head.writeUInt32BE(xid, 4);
  // Broadcast flag: the client has no address yet and shares one interface with the
  // other simulated machines, so unicast to yiaddr could not reach it before `addr`.
  head.writeUInt16BE(0x8000, 10);
  mac.copy(head, 28);
  head.writeUInt32BE(0x63825363, 236);
  const opts: Buffer[] = [option(53, Buffer.from([msgType]))];
  if (req) {
    opts.push(option(50, ipBytes(req.ip)), option(54, ipBytes(req.serverId)));
  }
  opts.push(option(57, Buffer.from([0x05, 0xc0]))); // max message size 1472
  opts.push(option(93, Buffer.from([0, 0])));
  opts.push(option(94, Buffer.from([1, 2, 1])));
  opts.push(option(97, Buffer.concat([Buffer.from([0]), guid])));
  opts.push(option(60, Buffer.from('PXEClient:Arch:00000:UNDI:002001')));
  if (ipxe) {
    opts.push(option(77, Buffer.from('iPXE')));
    // 175: iPXE's feature list (encapsulated; 19 = HTTP, 21 = iSCSI... only presence matters).
    opts.push(option(175, Buffer.from([177, 5, 1, 0x10, 0xec, 0x10, 0x00, 19, 1, 1, 16, 1, 2, 17, 1, 1])));
  }
  opts.push(option(55, Buffer.from(ipxe ? IPXE_PRL : PXE_ROM_PRL)));
  opts.push(Buffer.from([255]));
  const packet = Buffer.concat([head, ...opts]);
  return packet.length < 300 ? Buffer.concat([packet, Buffer.alloc(300 - packet.length)]) : packet;
}

function ipString(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('latin1');
}

/** undefined for anything that is not a well-formed BOOTREPLY with option 53. */
function decodeDhcp(b: Buffer): (DhcpReply & { xid: number }) | undefined {
  if (b.length < 240 || b[0] !== 2 || b.readUInt32BE(236) !== 0x63825363) return undefined;
  const reply: DhcpReply & { xid: number } = {
    xid: b.readUInt32BE(4),
    type: 0,
    yiaddr: ipString(b, 16),
    siaddr: ipString(b, 20),
    file: cString(b.subarray(108, 236)),
  };
  let i = 240;
  while (i < b.length) {
    const code = b[i];
    if (code === undefined || code === 255) break;
    if (code === 0) {
      i += 1;
      continue;
    }
    const len = b[i + 1];
    if (len === undefined || i + 2 + len > b.length) return undefined;
    const data = b.subarray(i + 2, i + 2 + len);
    if (code === 53 && len === 1) reply.type = data[0] ?? 0;
    else if (code === 54 && len === 4) reply.serverId = ipString(data, 0);
    else if (code === 66) reply.opt66 = cString(data);
    else if (code === 67) reply.opt67 = cString(data);
    i += 2 + len;
  }
  return reply.type === 0 ? undefined : reply;
}

const dhcpWaiters = new Map<number, (r: DhcpReply) => void>();
let malformedDhcp = 0;
const dhcpSocket = dgram.createSocket({ type: 'udp4', reuseAddr: true });

async function openDhcp(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    dhcpSocket.once('error', reject);
    dhcpSocket.bind(68, '0.0.0.0', () => resolve());
  });
  dhcpSocket.setBroadcast(true);
  dhcpSocket.setRecvBufferSize(8 << 20);
  dhcpSocket.on('message', (msg) => {
    const r = decodeDhcp(msg);
    if (!r) {
      malformedDhcp += 1;
      return;
    }
    dhcpWaiters.get(r.xid)?.(r);
  });
}

function dhcpExchange(packet: Buffer, xid: number, want: number, timeoutMs: number): Promise<DhcpReply | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      dhcpWaiters.delete(xid);
      resolve(undefined);
    }, timeoutMs);
    dhcpWaiters.set(xid, (r) => {
      if (r.type !== want && r.type !== 6) return; // 6 = NAK ends it too
      clearTimeout(timer);
      dhcpWaiters.delete(xid);
      resolve(r);
    });
    dhcpSocket.send(packet, 67, '255.255.255.255');
  });
}

/** One DORA, retransmitting as the PXE spec says (4, 8, 16 s), bounded. */
async function dora(mac: Buffer, guid: Buffer, ipxe: boolean): Promise<DhcpReply> {
  const timeouts = [4000, 8000, 16000];
  for (const t of timeouts) {
    const xid = randomBytes(4).readUInt32BE(0);
    const offer = await dhcpExchange(encodeDhcp(xid, mac, guid, 1, ipxe), xid, 2, t);
    if (!offer || offer.type !== 2) continue;
    const serverId = offer.serverId ?? offer.siaddr;
    const ack = await dhcpExchange(encodeDhcp(xid, mac, guid, 3, ipxe, { ip: offer.yiaddr, serverId }), xid, 5, t);
    if (ack?.type === 5) return { ...ack, siaddr: ack.siaddr === '0.0.0.0' ? offer.siaddr : ack.siaddr };
  }
  throw new Error(`no DHCP ACK after ${timeouts.length} tries`);
}

// ---------------------------------------------------------------- TFTP

/** Lock-step RRQ (one ACK per block), blksize 1468 and tsize 0 as iPXE and PXE ROMs ask. */
function tftpGet(local: string, server: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    let blksize = 512;
    let expected = 1;
    let bytes = 0;
    let peerPort = 0;
    let last: Buffer = Buffer.alloc(0);
    let lastPort = 69;
    let tries = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error): void => {
      if (timer) clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(bytes);
    };
    const send = (pkt: Buffer, port: number): void => {
      last = pkt;
      lastPort = port;
      tries = 0;
      arm();
      sock.send(pkt, port, server);
    };
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        tries += 1;
        if (tries > 6) {
          finish(new Error(`TFTP ${file}: no answer after 6 retransmissions at block ${expected}`));
          return;
        }
        arm();
        sock.send(last, lastPort, server);
      }, 1000);
    };
    const ack = (block: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(4, 0);
      b.writeUInt16BE(block & 0xffff, 2);
      return b;
    };
    sock.on('error', (e) => finish(e));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== server || msg.length < 4) return;
      if (peerPort === 0) peerPort = rinfo.port;
      else if (rinfo.port !== peerPort) return;
      const op = msg.readUInt16BE(0);
      if (op === 5) {
        finish(new Error(`TFTP ${file}: error ${msg.readUInt16BE(2)} ${cString(msg.subarray(4))}`));
      } else if (op === 6) {
        const fields = msg.subarray(2).toString('latin1').split('\0');
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if (fields[i]?.toLowerCase() === 'blksize') blksize = Number(fields[i + 1]);
        }
        send(ack(0), peerPort);
      } else if (op === 3) {
        const block = msg.readUInt16BE(2);
        if (block !== (expected & 0xffff)) {
          // A duplicate of the previous block: its ACK was lost, send it again.
          if (block === ((expected - 1) & 0xffff)) sock.send(ack(block), peerPort, server);
          return;
        }
        bytes += msg.length - 4;
        expected += 1;
        if (msg.length - 4 < blksize) {
          sock.send(ack(block), peerPort, server, () => finish());
          if (timer) clearTimeout(timer);
        } else {
          send(ack(block), peerPort);
        }
      }
    });
    sock.bind(0, local, () => {
      const rrq = Buffer.from(`\0\x01${file}\0octet\0blksize\x001468\0tsize\x000\0`, 'latin1');
      send(rrq, 69);
    });
  });
}

// ---------------------------------------------------------------- HTTP

function httpGet(agent: http.Agent, local: string, url: string): Promise<{ bytes: number; body?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, localAddress: local, timeout: 120_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`HTTP GET ${url}: status ${res.statusCode}`));
        return;
      }
      const keep = url.endsWith('.ipxe');
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keep && bytes < 1 << 20) chunks.push(c);
      });
      res.on('end', () => {
        const len = res.headers['content-length'];
        if (len !== undefined && Number(len) !== bytes) {
          reject(new Error(`HTTP GET ${url}: ${bytes} bytes, Content-Length ${len}`));
          return;
        }
        resolve(keep ? { bytes, body: Buffer.concat(chunks).toString('utf8') } : { bytes });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`HTTP GET ${url}: no progress for 120 s`)));
    req.on('error', reject);
  });
}

interface BootScript {
  kernel: string;
  initrd: string;
  nbdHost: string;
  nbdPort: number;
  exportName: string;
}

/** The `kernel URL args` and `initrd [--name N] URL` lines of an iPXE script. */
function parseScript(text: string): BootScript {
  let kernel: string | undefined;
  let initrd: string | undefined;
  let args = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    for (const part of line.split('&&').map((p) => p.trim())) {
      const words = part.split(/\s+/);
      if (words[0] === 'kernel' && words[1]) {
        kernel = words[1];
        args = words.slice(2).join(' ');
      } else if (words[0] === 'initrd') {
        const url = words.slice(1).find((w, i, all) => !w.startsWith('--') && all[i - 1] !== '--name');
        if (url) initrd = url;
      }
    }
  }
  const nbd = /(?:^|\s)bootfarm\.nbd=([0-9.]+):(\d+)/.exec(args);
  const exp = /(?:^|\s)bootfarm\.export=(\S+)/.exec(args);
  if (!kernel || !initrd || !nbd?.[1] || !nbd[2] || !exp?.[1]) {
    throw new Error(`iPXE script: expected kernel, initrd and bootfarm.nbd/bootfarm.export, got ${JSON.stringify(text.slice(0, 400))}`);
  }
  return { kernel, initrd, nbdHost: nbd[1], nbdPort: Number(nbd[2]), exportName: exp[1] };
}

// ---------------------------------------------------------------- NBD

/** A socket with a "read exactly n bytes" primitive. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.pump();
    });
    const fail = (e: Error): void => {
      this.failed = e;
      this.want?.reject(e);
      this.want = undefined;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('NBD connection closed')));
  }
  private pump(): void {
    if (this.want && this.buf.length >= this.want.n) {
      const w = this.want;
      this.want = undefined;
      const out = this.buf.subarray(0, w.n);
      this.buf = this.buf.subarray(w.n);
      w.resolve(out);
    }
  }
  read(n: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.want = { n, resolve, reject };
      this.pump();
    });
  }
}

const NBD_OPT_GO = 7;
const NBD_REP_ACK = 1;
const NBD_REP_INFO = 3;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;

async function nbdAttach(local: string, s: BootScript): Promise<{ sock: net.Socket; r: Reader; size: bigint }> {
  const sock = net.connect({ host: s.nbdHost, port: s.nbdPort, localAddress: local });
  sock.setNoDelay(true);
  const r = new Reader(sock);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const hello = await r.read(18);
  if (hello.toString('latin1', 0, 16) !== 'NBDMAGICIHAVEOPT') throw new Error('NBD: expected NBDMAGICIHAVEOPT');
  const flags = hello.readUInt16BE(16);
  if ((flags & 1) === 0) throw new Error('NBD: server is not fixed newstyle');
  const noZeroes = (flags & 2) !== 0;
  const cflags = Buffer.alloc(4);
  cflags.writeUInt32BE(1 | (noZeroes ? 2 : 0));
  const name = Buffer.from(s.exportName);
  const opt = Buffer.alloc(16 + 4 + name.length + 2);
  opt.write('IHAVEOPT', 0, 'latin1');
  opt.writeUInt32BE(NBD_OPT_GO, 8);
  opt.writeUInt32BE(4 + name.length + 2, 12);
  opt.writeUInt32BE(name.length, 16);
  name.copy(opt, 20);
  opt.writeUInt16BE(0, 20 + name.length);
  sock.write(Buffer.concat([cflags, opt]));
  let size = -1n;
  for (let i = 0; i < 64; i++) {
    const head = await r.read(20);
    if (head.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) throw new Error('NBD: bad option reply magic');
    const type = head.readUInt32BE(12);
    const len = head.readUInt32BE(16);
    if (len > 1 << 16) throw new Error(`NBD: option reply of ${len} bytes`);
    const data = len > 0 ? await r.read(len) : Buffer.alloc(0);
    if (type === NBD_REP_INFO && data.length >= 12 && data.readUInt16BE(0) === 0) size = data.readBigUInt64BE(2);
    else if (type === NBD_REP_ACK) break;
    else if (type >= 0x80000000)
      throw new Error(`NBD_OPT_GO ${s.exportName}: error reply 0x${type.toString(16)} ${data.toString('utf8', 4)}`);
  }
  if (size < 0n) throw new Error('NBD_OPT_GO: no NBD_INFO_EXPORT before the ACK');
  return { sock, r, size };
}

async function nbdReads(c: { sock: net.Socket; r: Reader; size: bigint }): Promise<number> {
  let handle = 0n;
  let bytes = 0;
  const read = async (offset: bigint, length: number): Promise<void> => {
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 4); // flags
    req.writeUInt16BE(0, 6); // NBD_CMD_READ
    handle += 1n;
    req.writeBigUInt64BE(handle, 8);
    req.writeBigUInt64BE(offset, 16);
    req.writeUInt32BE(length, 24);
    c.sock.write(req);
    const head = await c.r.read(16);
    if (head.readUInt32BE(0) !== 0x67446698) throw new Error('NBD: expected a simple reply');
    const err = head.readUInt32BE(4);
    if (err !== 0) throw new Error(`NBD READ at ${offset}: error ${err}`);
    if (head.readBigUInt64BE(8) !== handle) throw new Error('NBD: reply for another handle');
    await c.r.read(length);
    bytes += length;
  };
  if (trace) {
    for (const [offset, length] of trace) {
      if (offset + BigInt(length) <= c.size) await read(offset, length);
    }
    return finishReads(c, bytes);
  }
  const seqEnd = BigInt(Math.min(seqMiB * 1048576, Number(c.size)));
  for (let off = 0n; off < seqEnd; off += 131072n) {
    const len = Number(seqEnd - off < 131072n ? seqEnd - off : 131072n);
    await read(off, len);
  }
  const blocks = Number(c.size / 4096n);
  for (let i = 0; i < randReads && blocks > 0; i++) {
    await read(BigInt(randomInt(blocks)) * 4096n, 4096);
  }
  return finishReads(c, bytes);
}

function finishReads(c: { sock: net.Socket }, bytes: number): number {
  const disc = Buffer.alloc(28);
  disc.writeUInt32BE(0x25609513, 0);
  disc.writeUInt16BE(2, 6); // NBD_CMD_DISC
  c.sock.end(disc);
  return bytes;
}

// ---------------------------------------------------------------- one machine

let addrSlots = 8;
const addrQueue: Array<() => void> = [];
async function addAddress(ip: string): Promise<void> {
  // A bounded number of `ip` children at once: 1000 forks together would starve the
  // servers under test of the machine's 2 cores.
  if (addrSlots === 0) await new Promise<void>((r) => addrQueue.push(r));
  else addrSlots -= 1;
  try {
    await run('ip', ['addr', 'add', `${ip}/${prefix}`, 'dev', iface]).catch((e: unknown) => {
      if (!String(e).includes('File exists')) throw e;
    });
  } finally {
    const next = addrQueue.shift();
    if (next) next();
    else addrSlots += 1;
  }
}

async function machine(m: Machine, delayMs: number): Promise<void> {
  await new Promise((r) => setTimeout(r, delayMs));
  m.start = now();
  const mac = Buffer.from(m.mac.split(':').map((h) => parseInt(h, 16)));
  const guid = randomBytes(16);
  let current = '';
  const step = async <T>(name: string, fn: () => Promise<T>, bytesOf?: (v: T) => number): Promise<T> => {
    current = name;
    const start = now();
    const v = await fn();
    const s: Step = { step: name, start, end: now() };
    if (bytesOf) s.bytes = bytesOf(v);
    m.steps.push(s);
    return v;
  };
  try {
    const ack1 = await step('dhcp1', () => dora(mac, guid, false));
    const ip = ack1.yiaddr;
    m.ip = ip;
    await step('addr', () => addAddress(ip));
    const bootFile = ack1.file || ack1.opt67 || '';
    if (!bootFile) throw new Error('PXE DHCP reply names no boot file');
    const tftpServer = ack1.siaddr !== '0.0.0.0' ? ack1.siaddr : (ack1.opt66 ?? ack1.serverId ?? '');
    await step(
      'tftp',
      () => tftpGet(ip, tftpServer, bootFile),
      (n) => n,
    );
    const ack2 = await step('dhcp2', () => dora(mac, guid, true));
    if (ack2.yiaddr !== ip) throw new Error(`iPXE got ${ack2.yiaddr}, the PXE ROM had ${ip}`);
    const scriptName = ack2.file || ack2.opt67 || '';
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const script = await step(
        'script',
        async () => {
          if (scriptName.startsWith('http://')) return (await httpGet(agent, ip, scriptName)).body ?? '';
          throw new Error(`iPXE boot file ${JSON.stringify(scriptName)}: expected an http:// URL`);
        },
        (t) => t.length,
      );
      const plan = parseScript(script);
      await step(
        'kernel',
        () => httpGet(agent, ip, plan.kernel),
        (v) => v.bytes,
      );
      await step(
        'initrd',
        () => httpGet(agent, ip, plan.initrd),
        (v) => v.bytes,
      );
      const conn = await step('nbd', () => nbdAttach(ip, plan));
      await step(
        'reads',
        () => nbdReads(conn),
        (n) => n,
      );
    } finally {
      agent.destroy();
    }
    m.end = now();
  } catch (e) {
    m.error = e instanceof Error ? e.message : String(e);
    m.failedStep = current;
  }
}

function macOf(i: number): string {
  return [0x52, 0x54, macBase, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

async function main(): Promise<void> {
  // The generator is one process: if its own event loop lags, the storm measures it,
  // not the server. Its lag and CPU go into the output so a reader can tell.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  await openDhcp();
  const machines: Machine[] = Array.from({ length: count }, (_, i) => ({
    index: firstIndex + i - 1,
    mac: macOf(firstIndex + i),
    steps: [],
    start: 0,
  }));
  const deadline = new Promise<'deadline'>((r) => setTimeout(() => r('deadline'), deadlineMs).unref());
  const wait = Math.max(0, startAt - now());
  const all = Promise.all(machines.map((m) => machine(m, wait + (spreadMs > 0 ? randomInt(spreadMs) : 0))));
  const outcome = await Promise.race([all.then(() => 'done' as const), deadline]);
  for (const m of machines) {
    if (m.end === undefined && m.error === undefined) {
      m.error = `not done after the ${deadlineMs / 1000} s deadline`;
      m.failedStep = 'deadline';
    }
  }
  dhcpSocket.close();
  lag.disable();
  const cpu = process.cpuUsage(cpu0);
  const client = {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    loopLagP99ms: lag.percentile(99) / 1e6,
    loopLagMaxms: lag.max / 1e6,
  };
  process.stdout.write(
    `STORM_CLIENTS ${JSON.stringify({ count, outcome, client, malformedDhcp, seqMiB, randReads, spreadMs, trace: opts.trace, traceReads: trace?.length, machines })}\n`,
  );
  // Sockets of machines past the deadline would keep the process alive.
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`storm clients: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
