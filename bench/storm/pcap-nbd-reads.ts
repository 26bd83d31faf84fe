// The NBD_CMD_READ requests a client sent, from a pcap of the client-to-server side
// of NBD connections (bench/storm/record-lab-trace.sh captures it): one line
// "<offset> <length>" per read, in the order sent, for bench/storm/clients.ts --trace.
// tshark's NBD dissector is heuristic only (no Decode As on a port), so the TCP
// streams are reassembled here: libpcap format, Ethernet, IPv4, TCP to --port.
//
// Usage: node --import tsx bench/storm/pcap-nbd-reads.ts FILE.pcap [--port 10809] > OUT.trace
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { port: { type: 'string', default: '10809' } }, allowPositionals: true });
const file = positionals[0];
const port = Number(values.port);
if (!file || !Number.isInteger(port) || port < 1 || port > 65535) {
  throw new Error('usage: pcap-nbd-reads.ts FILE.pcap [--port 1-65535]');
}

const buf = readFileSync(file);
if (buf.length < 24) throw new Error(`${file}: expected a pcap file (24-byte header), got ${buf.length} bytes`);
const magic = buf.readUInt32LE(0);
const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
if (!le && buf.readUInt32BE(0) !== 0xa1b2c3d4 && buf.readUInt32BE(0) !== 0xa1b23c4d) {
  throw new Error(`${file}: expected the libpcap magic a1b2c3d4, got ${magic.toString(16)}`);
}
const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
if (u32(20) !== 1) throw new Error(`${file}: expected link type 1 (Ethernet), got ${u32(20)}`);

// Per TCP stream (client address:port): payload by sequence number, in capture order.
const streams = new Map<string, { order: number; segs: Map<number, Buffer> }>();
let truncated = 0;
for (let off = 24; off + 16 <= buf.length;) {
  const incl = u32(off + 8);
  const orig = u32(off + 12);
  const pkt = buf.subarray(off + 16, off + 16 + incl);
  off += 16 + incl;
  let l3 = 14;
  let type = pkt.length >= 14 ? pkt.readUInt16BE(12) : 0;
  if (type === 0x8100 && pkt.length >= 18) {
    type = pkt.readUInt16BE(16);
    l3 = 18;
  }
  if (type !== 0x0800 || pkt.length < l3 + 20) continue;
  const ihl = ((pkt[l3] ?? 0) & 15) * 4;
  if (pkt[l3 + 9] !== 6) continue;
  const totalLen = pkt.readUInt16BE(l3 + 2);
  const l4 = l3 + ihl;
  if (pkt.length < l4 + 20) continue;
  if (pkt.readUInt16BE(l4 + 2) !== port) continue;
  const dataOff = ((pkt[l4 + 12] ?? 0) >> 4) * 4;
  const payloadLen = totalLen - ihl - dataOff;
  if (payloadLen <= 0) continue;
  const payload = pkt.subarray(l4 + dataOff, Math.min(pkt.length, l4 + dataOff + payloadLen));
  if (payload.length < payloadLen || incl < orig) truncated += 1;
  const key = `${pkt[l3 + 12]}.${pkt[l3 + 13]}.${pkt[l3 + 14]}.${pkt[l3 + 15]}:${pkt.readUInt16BE(l4)}`;
  const s = streams.get(key) ?? { order: streams.size, segs: new Map<number, Buffer>() };
  streams.set(key, s);
  const seq = pkt.readUInt32BE(l4 + 4);
  if (!s.segs.has(seq)) s.segs.set(seq, payload);
}

const REQUEST_MAGIC = 0x25609513;
const lines: string[] = [];
for (const s of [...streams.values()].sort((a, b) => a.order - b.order)) {
  // Sequence numbers in one boot's connection do not wrap in practice (< 4 GiB sent).
  const data = Buffer.concat([...s.segs.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p));
  let i = data.indexOf(Buffer.from([0x25, 0x60, 0x95, 0x13]));
  while (i >= 0 && i + 28 <= data.length) {
    if (data.readUInt32BE(i) !== REQUEST_MAGIC) {
      // A lost or truncated segment: find the next request.
      i = data.indexOf(Buffer.from([0x25, 0x60, 0x95, 0x13]), i + 1);
      continue;
    }
    const cmd = data.readUInt16BE(i + 6);
    if (cmd === 0) lines.push(`${data.readBigUInt64BE(i + 16)} ${data.readUInt32BE(i + 24)}`);
    i += cmd === 1 ? 28 + data.readUInt32BE(i + 24) : 28; // a WRITE carries its data
  }
}
process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
process.stderr.write(`pcap-nbd-reads: ${streams.size} connection(s), ${lines.length} reads, ${truncated} truncated segment(s)\n`);
