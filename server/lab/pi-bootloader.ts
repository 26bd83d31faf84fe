// A scripted Raspberry Pi 4/5 EEPROM bootloader network client: the Pi's stand-in
// in tests and in the emulation lab (QEMU's raspi machines cannot network-boot).
// It speaks the Pi's DHCP and TFTP as the Raspberry Pi documentation (boot-net.adoc,
// eeprom-bootloader.adoc), the rpi-eeprom issue captures and RFC 1350/2347-2349
// describe them, checks everything the server sends, and fails
// loudly: exit 1 and a reason on stderr when a required file does not arrive
// intact or the server breaks the protocol.
//
// CLI (root, inside a network namespace whose interface has no IPv4 address yet):
//   node --import tsx server/lab/pi-bootloader.ts --iface eth0 --mac dc:a6:32:01:02:03 \
//     --serial 1234abcd [--model 4|5] [--out DIR] [--dhcp-timeout 45] [--files a,b]
//     [--required config.txt,@kernel] [--prefix serial|mac|none|str:NAME] [--help]
// Prints progress to stderr and, last, one line `PI_BOOT_REPORT {json}` on stdout.
// Exit 0: every required file arrived intact; 1: a failure (reasons on stderr and
// in the report's `failures`); 2: bad command line. Importable: runPiBoot(options).
//
// What goes on the wire (Pi 4 defaults; --model 5 changes the FourCC, revision,
// DTB, kernel name and blksize):
// - DISCOVER from 0.0.0.0:68 to 255.255.255.255:67, options in the order a captured
//   Pi 4 sends them (rpi-eeprom#58: 322-byte payload, no padding): 53=1,
//   55=[1,3,43,60,66,67,128..135], 93=0, 94=UNDI 2.1, 97 = 00 "RPi4" rev macLow
//   serial, 60="PXEClient:Arch:00000:UNDI:002001", END. The BROADCAST flag is set
//   by default; captures show real Pi 4s sending flags 0, which --no-broadcast-flag
//   reproduces (see the socket notes below). Retransmitted every 4 s
//   (DHCP_REQ_TIMEOUT) until --dhcp-timeout (DHCP_TIMEOUT, default 45 s).
// - The OFFER must carry option 43 whose PXE menu (sub-option 9) contains
//   "Raspberry Pi Boot" (substring, as current EEPROMs match). The TFTP server is
//   option 66 (must be a dotted quad) if present, else option 54. Offers that do
//   not qualify are recorded and ignored, and the client keeps waiting, as a Pi
//   does. A proxyDHCP offer (yiaddr 0) carrying the boot options is combined with
//   a plain address offer from another server.
// - REQUEST: 53=3, 55, 93, 94, 97, 50, 54 and deliberately no option 60 (rpi-eeprom#82).
//   If no ACK arrives within 4 s the client proceeds with the OFFER's yiaddr, as
//   the Pi ROM does. A NAK is a failure.
// - TFTP: every RRQ is octet with `tsize 0 blksize 1024` (Pi 5: 1468). Pi 4 order:
//   probe <serial>/start4.elf (abort after the OACK with ERROR 0 "Early terminate";
//   if it is not found, <serial>/start.elf; neither found drops the prefix),
//   config.txt, probes of pieeprom.sig and recover4.elf (absence tolerated),
//   start4.elf, fixup4.dat, config.txt again, the DTB, overlays named by dtoverlay=
//   (optional), cmdline.txt, the kernel (kernel= or kernel8.img) and the initramfs
//   (initramfs / auto_initramfs). Pi 5: probe <serial>/config.txt (then the DTB;
//   neither drops the prefix), config.txt, pieeprom.sig probe, cmdline.txt,
//   bcm2712-rpi-5-b.dtb, kernel_2712.img (falling back to kernel8.img) or kernel=,
//   initramfs. Lock-step transfer (no windowsize), block numbers wrap 65535 -> 0,
//   ACK retransmitted after 1 s of silence (5 times at most), duplicate DATA
//   re-ACKed, packets from a foreign address/port answered with ERROR 5 and
//   otherwise ignored, received length checked against the OACK tsize, per-file
//   limit 30 s (TFTP_FILE_TIMEOUT) after which the client sends "Early terminate".
//
// Sockets without an address (found by trying, Linux 6.x, Node 20):
// - Binding 0.0.0.0:68 with SO_BROADCAST receives broadcast replies fine, but
//   sending to 255.255.255.255 from an interface with no IPv4 address fails with
//   ENETUNREACH: there is no route. `ip route add 255.255.255.255/32 dev IFACE` is
//   enough; the kernel then sends from source 0.0.0.0 as a real DHCP client does.
// - After the OFFER/ACK the client adds yiaddr/prefix (prefix from option 1) to the
//   interface so TFTP has a source address, and a route to the TFTP server via
//   option 3 if the server is off-subnet. Everything the client added is removed
//   at the end unless --keep-address. --no-ip-config skips all `ip` calls (you
//   configure the interface yourself; the TFTP socket then binds 0.0.0.0).
// - With --no-broadcast-flag a server may unicast the OFFER to yiaddr at chaddr
//   (dnsmasq does, by writing an ARP entry). Such a packet is dropped by a host
//   that does not own yiaddr, and Node has no packet sockets, so during DHCP the
//   client also adds `local 0.0.0.0/0 dev lo table local` ("AnyIP": every address
//   is local, so the unicast reaches the socket on 0.0.0.0:68) plus a more
//   specific `broadcast 255.255.255.255 dev IFACE table local` so the DISCOVER
//   still leaves by IFACE, and sets net.ipv4.icmp_echo_ignore_all=1 in the
//   namespace so dnsmasq's pre-offer ping does not see every address as taken
//   (and arp_ignore=1 so the interface answers ARP only for its own address), and
//   accept_local=1 on IFACE because the server's own address now looks local and
//   its packets would otherwise be dropped as martians.
//   All of that is undone before TFTP. Only use this mode in a namespace of its own.
//
// Needs root (CAP_NET_ADMIN for `ip`, CAP_NET_BIND_SERVICE for port 68). Node
// built-ins only, so it runs anywhere the repo's test tooling runs.
import dgram, { type RemoteInfo, type Socket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// Models

export type PiModel = 4 | 5;

export interface PiModelProfile {
  model: PiModel;
  /** FourCC as text and as the little-endian u32 the EEPROM writes into option 97. */
  fourcc: string;
  fourccValue: number;
  /** Default board revision (option 97 bytes 4..7, LE). */
  boardRevision: number;
  dtb: string;
  /** Kernel names tried in order when config.txt has no kernel=. */
  defaultKernels: string[];
  /** TFTP blksize the EEPROM asks for. */
  blksize: number;
}

export const PI_MODELS: Readonly<Record<PiModel, PiModelProfile>> = {
  4: {
    model: 4, fourcc: 'RPi4', fourccValue: 0x34695052, boardRevision: 0x00c03111,
    dtb: 'bcm2711-rpi-4-b.dtb', defaultKernels: ['kernel8.img'], blksize: 1024,
  },
  5: {
    model: 5, fourcc: 'RPi5', fourccValue: 0x35695052, boardRevision: 0x00d04170,
    dtb: 'bcm2712-rpi-5-b.dtb', defaultKernels: ['kernel_2712.img', 'kernel8.img'], blksize: 1468,
  },
};

// ---------------------------------------------------------------------------
// Small pure helpers

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A strict dotted quad: four decimal octets, no leading zeros, nothing else. */
export function isDottedQuad(text: string): boolean {
  return IPV4_RE.test(text);
}

function ipToNumber(text: string): number {
  const p = text.split('.').map(Number);
  return (((p[0] ?? 0) << 24) >>> 0) + ((p[1] ?? 0) << 16) + ((p[2] ?? 0) << 8) + (p[3] ?? 0);
}

function readIp(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

function writeIp(buf: Buffer, offset: number, text: string): void {
  buf.writeUInt32BE(ipToNumber(text) >>> 0, offset);
}

function ipBuffer(text: string): Buffer {
  const b = Buffer.alloc(4);
  writeIp(b, 0, text);
  return b;
}

/** Netmask (dotted quad) to prefix length; undefined if it is not a contiguous mask. */
export function maskToPrefix(mask: string): number | undefined {
  if (!isDottedQuad(mask)) return undefined;
  const n = ipToNumber(mask);
  let prefix = 0;
  while (prefix < 32 && ((n << prefix) & 0x80000000) !== 0) prefix++;
  const rebuilt = prefix === 0 ? 0 : ((0xffffffff << (32 - prefix)) >>> 0);
  return rebuilt === n ? prefix : undefined;
}

function sameSubnet(a: string, b: string, prefix: number): boolean {
  if (prefix === 0) return true;
  const mask = prefix === 32 ? 0xffffffff : ((0xffffffff << (32 - prefix)) >>> 0);
  return ((ipToNumber(a) & mask) >>> 0) === ((ipToNumber(b) & mask) >>> 0);
}

/** "dc:a6:32:01:02:03" (or with dashes) to 6 bytes; throws on anything else. */
export function parseMac(text: string): Buffer {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(m.slice(1, 7).join(''), 'hex');
}

export function formatMac(mac: Buffer, sep = ':'): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(sep);
}

/** The serial as the EEPROM uses it: 8 hex digits (a 16-digit serial keeps its low 8). */
export function parseSerial(text: string): number {
  const t = text.trim().toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{1,16}$/.test(t)) throw new Error(`--serial must be hex digits (8 as in the TFTP prefix), got ${JSON.stringify(text)}`);
  return Number.parseInt(t.slice(-8), 16) >>> 0;
}

export function formatSerial(serial: number): string {
  return (serial >>> 0).toString(16).padStart(8, '0');
}

// ---------------------------------------------------------------------------
// DHCP: building the client's packets

export const DHCP_MAGIC = 0x63825363;
export const PI_PARAMETER_REQUEST_LIST: readonly number[] = [1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135];
export const PI_VENDOR_CLASS = 'PXEClient:Arch:00000:UNDI:002001';
export const DEFAULT_OPTION43_MATCH = 'Raspberry Pi Boot';

export const DhcpType = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

export interface PiIdentity {
  mac: Buffer;
  serial: number;
  model: PiModel;
  boardRevision: number;
}

export function makeIdentity(mac: string, serial: string, model: PiModel = 4, boardRevision?: number): PiIdentity {
  return { mac: parseMac(mac), serial: parseSerial(serial), model, boardRevision: boardRevision ?? PI_MODELS[model].boardRevision };
}

/** Option 97: type 0, FourCC (LE), board revision (LE), MAC bytes 2..5, serial (LE). */
export function buildOption97(id: PiIdentity): Buffer {
  const out = Buffer.alloc(17);
  out[0] = 0;
  out.writeUInt32LE(PI_MODELS[id.model].fourccValue, 1);
  out.writeUInt32LE(id.boardRevision >>> 0, 5);
  id.mac.copy(out, 9, 2, 6);
  out.writeUInt32LE(id.serial >>> 0, 13);
  return out;
}

export interface BuildDhcpOptions {
  /** Seconds since the client started (header `secs`). */
  secs?: number;
  /** Set the BROADCAST flag (0x8000). Default true. */
  broadcast?: boolean;
}

function buildBootRequest(id: PiIdentity, xid: number, options: Array<[number, Buffer]>, opts: BuildDhcpOptions): Buffer {
  const size = 240 + options.reduce((n, [, v]) => n + 2 + v.length, 0) + 1;
  const out = Buffer.alloc(size);
  out[0] = 1; // BOOTREQUEST
  out[1] = 1; // Ethernet
  out[2] = 6;
  out[3] = 0;
  out.writeUInt32BE(xid >>> 0, 4);
  out.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.floor(opts.secs ?? 0))), 8);
  out.writeUInt16BE(opts.broadcast === false ? 0 : 0x8000, 10);
  id.mac.copy(out, 28, 0, 6);
  out.writeUInt32BE(DHCP_MAGIC, 236);
  let pos = 240;
  for (const [code, value] of options) {
    if (value.length > 255) throw new Error(`option ${code} is longer than 255 bytes`);
    out[pos++] = code;
    out[pos++] = value.length;
    value.copy(out, pos);
    pos += value.length;
  }
  out[pos] = 255;
  return out;
}

/** The EEPROM's DISCOVER: 53, 55, 93, 94, 97, 60, END, unpadded (322 bytes). */
export function buildDiscover(id: PiIdentity, xid: number, opts: BuildDhcpOptions = {}): Buffer {
  return buildBootRequest(id, xid, [
    [53, Buffer.of(DhcpType.DISCOVER)],
    [55, Buffer.from(PI_PARAMETER_REQUEST_LIST)],
    [93, Buffer.of(0, 0)],
    [94, Buffer.of(1, 2, 1)],
    [97, buildOption97(id)],
    [60, Buffer.from(PI_VENDOR_CLASS, 'latin1')],
  ], opts);
}

/** The EEPROM's REQUEST (SELECTING state): like the DISCOVER plus 50 and 54, and no option 60. */
export function buildRequest(id: PiIdentity, xid: number, requestedIp: string, serverId: string, opts: BuildDhcpOptions = {}): Buffer {
  if (!isDottedQuad(requestedIp) || !isDottedQuad(serverId)) throw new Error(`bad REQUEST addresses ${requestedIp} / ${serverId}`);
  return buildBootRequest(id, xid, [
    [53, Buffer.of(DhcpType.REQUEST)],
    [55, Buffer.from(PI_PARAMETER_REQUEST_LIST)],
    [93, Buffer.of(0, 0)],
    [94, Buffer.of(1, 2, 1)],
    [97, buildOption97(id)],
    [50, ipBuffer(requestedIp)],
    [54, ipBuffer(serverId)],
  ], opts);
}

// ---------------------------------------------------------------------------
// DHCP: parsing the server's replies (independent of bootfarm's own codec)

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Options by code; repeated instances concatenated (RFC 3396). */
  options: Map<number, Buffer>;
  /** Option codes in wire order (main area, then file, then sname). */
  order: number[];
  /** A Pad (0) appeared before End: early Pi 4 EEPROMs dropped such replies (rpi-eeprom#82). */
  padBeforeEnd: boolean;
  length: number;
}

export type DhcpParseResult = { ok: true; message: DhcpMessage } | { ok: false; reason: string };

function walkArea(area: Buffer, into: Map<number, Buffer[]>, order: number[], where: string): { ok: true; pad: boolean } | { ok: false; reason: string } {
  let i = 0;
  let pad = false;
  while (i < area.length) {
    const code = area[i] as number;
    if (code === 255) return { ok: true, pad };
    if (code === 0) { pad = true; i++; continue; }
    if (i + 1 >= area.length) return { ok: false, reason: `option ${code} in ${where} has no length byte` };
    const len = area[i + 1] as number;
    if (i + 2 + len > area.length) return { ok: false, reason: `option ${code} in ${where} (length ${len}) runs past the end` };
    const list = into.get(code) ?? [];
    list.push(area.subarray(i + 2, i + 2 + len));
    into.set(code, list);
    order.push(code);
    i += 2 + len;
  }
  return { ok: false, reason: `no End option in ${where}` };
}

function cString(buf: Buffer, offset: number, length: number): string {
  const f = buf.subarray(offset, offset + length);
  const nul = f.indexOf(0);
  return f.subarray(0, nul < 0 ? f.length : nul).toString('latin1');
}

export function parseDhcpMessage(buf: Buffer): DhcpParseResult {
  if (buf.length < 241) return { ok: false, reason: `only ${buf.length} bytes` };
  if (buf.readUInt32BE(236) !== DHCP_MAGIC) return { ok: false, reason: 'no magic cookie' };
  const hlen = buf[2] as number;
  if (hlen > 16) return { ok: false, reason: `hlen ${hlen}` };
  const parts = new Map<number, Buffer[]>();
  const order: number[] = [];
  const main = walkArea(buf.subarray(240), parts, order, 'the options field');
  if (!main.ok) return { ok: false, reason: main.reason };
  let pad = main.pad;
  let overload = 0;
  const ov = parts.get(52)?.[0];
  if (ov) {
    if (ov.length !== 1 || (ov[0] as number) < 1 || (ov[0] as number) > 3) return { ok: false, reason: 'bad option 52' };
    overload = ov[0] as number;
    if (overload & 1) {
      const r = walkArea(buf.subarray(108, 236), parts, order, 'the overloaded file field');
      if (!r.ok) return { ok: false, reason: r.reason };
      pad ||= r.pad;
    }
    if (overload & 2) {
      const r = walkArea(buf.subarray(44, 108), parts, order, 'the overloaded sname field');
      if (!r.ok) return { ok: false, reason: r.reason };
      pad ||= r.pad;
    }
  }
  const options = new Map<number, Buffer>();
  for (const [code, list] of parts) options.set(code, Buffer.concat(list));
  return {
    ok: true,
    message: {
      op: buf[0] as number, htype: buf[1] as number, hlen, hops: buf[3] as number,
      xid: buf.readUInt32BE(4), secs: buf.readUInt16BE(8), flags: buf.readUInt16BE(10),
      ciaddr: readIp(buf, 12), yiaddr: readIp(buf, 16), siaddr: readIp(buf, 20), giaddr: readIp(buf, 24),
      chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
      sname: overload & 2 ? '' : cString(buf, 44, 64),
      file: overload & 1 ? '' : cString(buf, 108, 128),
      options, order, padBeforeEnd: pad, length: buf.length,
    },
  };
}

export interface PxeMenuItem {
  type: number;
  description: string;
}

export interface Option43Analysis {
  /** The sub-option TLVs parsed cleanly up to End (or the end of the option). */
  wellFormed: boolean;
  problem?: string;
  subOptions: Array<{ code: number; hex: string }>;
  menu: PxeMenuItem[];
  /** The match string is inside a sub-option 9 menu description. */
  matched: boolean;
  /** The match string appears somewhere in option 43 at all (raw-string servers). */
  containsString: boolean;
}

/**
 * Option 43 as the EEPROM reads it: PXE 2.1 sub-options; the boot menu
 * (sub-option 9, repeated {type u16, len u8, text}) must contain `match` as a
 * substring, which accepts both "Raspberry Pi Boot" and the 3-space Pi 3 form.
 */
export function parseOption43(value: Buffer, match: string = DEFAULT_OPTION43_MATCH): Option43Analysis {
  const result: Option43Analysis = {
    wellFormed: true, subOptions: [], menu: [], matched: false,
    containsString: value.toString('latin1').includes(match),
  };
  const fail = (problem: string): Option43Analysis => ({ ...result, wellFormed: false, problem });
  let i = 0;
  while (i < value.length) {
    const code = value[i] as number;
    if (code === 255) break;
    if (code === 0) { i++; continue; }
    if (i + 1 >= value.length) return fail(`sub-option ${code} has no length byte`);
    const len = value[i + 1] as number;
    if (i + 2 + len > value.length) return fail(`sub-option ${code} (length ${len}) runs past the end of option 43`);
    const body = value.subarray(i + 2, i + 2 + len);
    result.subOptions.push({ code, hex: body.toString('hex') });
    if (code === 9) {
      let j = 0;
      while (j < body.length) {
        if (j + 3 > body.length) return fail('truncated PXE boot menu item in sub-option 9');
        const type = body.readUInt16BE(j);
        const dlen = body[j + 2] as number;
        if (j + 3 + dlen > body.length) return fail(`PXE menu item description (length ${dlen}) runs past sub-option 9`);
        const description = body.subarray(j + 3, j + 3 + dlen).toString('latin1');
        result.menu.push({ type, description });
        if (description.includes(match)) result.matched = true;
        j += 3 + dlen;
      }
    }
    i += 2 + len;
  }
  return result;
}

export interface OfferSummary {
  from: string;
  messageType: number | undefined;
  yiaddr: string;
  siaddr: string;
  serverId: string | undefined;
  option66: string | undefined;
  option43Hex: string | undefined;
  option43Matched: boolean;
  option43: Option43Analysis | undefined;
  option60: string | undefined;
  subnetMask: string | undefined;
  routers: string[];
  leaseTime: number | undefined;
  file: string;
  sname: string;
  flags: number;
  length: number;
  optionOrder: number[];
  hex: string;
}

function ipOption(options: Map<number, Buffer>, code: number): string | undefined {
  const v = options.get(code);
  return v && v.length === 4 ? readIp(v, 0) : undefined;
}

export function summariseReply(msg: DhcpMessage, raw: Buffer, from: string, match: string = DEFAULT_OPTION43_MATCH): OfferSummary {
  const o43 = msg.options.get(43);
  const analysis = o43 ? parseOption43(o43, match) : undefined;
  const routers: string[] = [];
  const r = msg.options.get(3);
  if (r) for (let i = 0; i + 4 <= r.length; i += 4) routers.push(readIp(r, i));
  const lease = msg.options.get(51);
  const mt = msg.options.get(53);
  return {
    from,
    messageType: mt && mt.length === 1 ? (mt[0] as number) : undefined,
    yiaddr: msg.yiaddr,
    siaddr: msg.siaddr,
    serverId: ipOption(msg.options, 54),
    option66: msg.options.get(66)?.toString('latin1').replace(/\0+$/, ''),
    option43Hex: o43?.toString('hex'),
    option43Matched: analysis?.matched ?? false,
    option43: analysis,
    option60: msg.options.get(60)?.toString('latin1'),
    subnetMask: ipOption(msg.options, 1),
    routers,
    leaseTime: lease && lease.length === 4 ? lease.readUInt32BE(0) : undefined,
    file: msg.file,
    sname: msg.sname,
    flags: msg.flags,
    length: msg.length,
    optionOrder: msg.order,
    hex: raw.toString('hex'),
  };
}

export interface OfferVerdict {
  /** Usable as the address offer (has a yiaddr and a server id). */
  addressUsable: boolean;
  /** Carries the Pi boot options (43 matched; 66 valid if present). */
  bootUsable: boolean;
  /** Why it is not usable for booting / addressing, if not. */
  reasons: string[];
  warnings: string[];
  tftpServer: string | undefined;
  tftpServerSource: 'option66' | 'option54' | undefined;
}

/** Judges one OFFER the way the EEPROM does, plus the Pi documentation's advice as warnings. */
export function judgeOffer(s: OfferSummary, opts: { lenientOption43?: boolean; match?: string } = {}): OfferVerdict {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const match = opts.match ?? DEFAULT_OPTION43_MATCH;
  if (s.messageType !== DhcpType.OFFER) reasons.push(`option 53 is ${s.messageType ?? 'missing'}, not OFFER (2)`);
  if (!s.serverId) reasons.push('no option 54 (server identifier), a MUST in an OFFER (RFC 2131 Table 3)');
  const hasAddress = s.yiaddr !== '0.0.0.0';
  const addressUsable = reasons.length === 0 && hasAddress;

  let bootUsable = reasons.length === 0;
  if (!s.option43Hex) {
    bootUsable = false;
    reasons.push(`no option 43: the bootloader needs "${match}" in a PXE menu (boot-net.adoc)`);
  } else if (!s.option43Matched) {
    const o = s.option43;
    if (o?.containsString && opts.lenientOption43) {
      warnings.push(`"${match}" is in option 43 but not inside a sub-option 9 menu item (accepted: --lenient-option43)`);
    } else {
      bootUsable = false;
      const detail = o?.wellFormed === false ? `malformed (${o.problem})` : o?.containsString ? 'the string is present but not in a sub-option 9 menu item' : `no "${match}" in it`;
      reasons.push(`option 43 does not carry the Raspberry Pi boot menu: ${detail}; option 43 = ${s.option43Hex}`);
    }
  }
  let tftpServer: string | undefined;
  let tftpServerSource: OfferVerdict['tftpServerSource'];
  if (s.option66 !== undefined) {
    if (!isDottedQuad(s.option66)) {
      bootUsable = false;
      reasons.push(`option 66 is ${JSON.stringify(s.option66)}, not a dotted quad (Pi 4 EEPROMs want an IPv4 address, rpi-eeprom#72)`);
    } else {
      tftpServer = s.option66;
      tftpServerSource = 'option66';
    }
  } else if (s.serverId) {
    tftpServer = s.serverId;
    tftpServerSource = 'option54';
  }
  if (bootUsable) {
    // siaddr 0.0.0.0 (dnsmasq's proxy offers) names no server, so it cannot disagree.
    const distinct = new Set([s.siaddr === '0.0.0.0' ? undefined : s.siaddr, s.serverId, s.option66].filter((x): x is string => x !== undefined));
    if (distinct.size > 1) {
      warnings.push(`siaddr ${s.siaddr}, option 54 ${s.serverId ?? '-'} and option 66 ${s.option66 ?? '-'} disagree (boot-net.adoc: make them agree); using ${tftpServer} from ${tftpServerSource}`);
    }
  }
  if (hasAddress) {
    if (s.leaseTime === undefined) warnings.push('no option 51 (lease time), a MUST in an OFFER');
    if (!s.subnetMask) warnings.push('no option 1 (subnet mask) although the Pi asks for it');
  }
  if (s.length < 300) warnings.push(`reply is ${s.length} bytes, under the 300-byte minimum (dnsmasq's MIN_PACKETSZ)`);
  return { addressUsable, bootUsable: bootUsable && tftpServer !== undefined, reasons, warnings, tftpServer, tftpServerSource };
}

// ---------------------------------------------------------------------------
// TFTP packets

export const TftpOp = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export type TftpPacket =
  | { op: 'RRQ' | 'WRQ'; filename: string; mode: string; options: Array<[string, string]> }
  | { op: 'DATA'; block: number; data: Buffer }
  | { op: 'ACK'; block: number }
  | { op: 'ERROR'; code: number; message: string }
  | { op: 'OACK'; options: Array<[string, string]> }
  | { op: 'invalid'; reason: string };

/** RRQ: 00 01 path 00 mode 00 [name 00 value 00]... */
export function buildRrq(filename: string, options: ReadonlyArray<readonly [string, string]> = [], mode = 'octet'): Buffer {
  const fields = [filename, mode, ...options.flatMap(([k, v]) => [k, v])];
  for (const f of fields) if (f.includes('\0')) throw new Error('NUL in a TFTP request field');
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'latin1');
  const out = Buffer.concat([Buffer.of(0, TftpOp.RRQ), body]);
  if (out.length > 512) throw new Error(`RRQ for ${filename} is ${out.length} bytes, over RFC 2347's 512`);
  return out;
}

/** The Pi's RRQ: octet, tsize 0, blksize N. */
export function buildPiRrq(filename: string, blksize: number): Buffer {
  return buildRrq(filename, [['tsize', '0'], ['blksize', String(blksize)]]);
}

export function buildAck(block: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16BE(TftpOp.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function buildError(code: number, message: string): Buffer {
  const out = Buffer.alloc(4 + Buffer.byteLength(message, 'latin1') + 1);
  out.writeUInt16BE(TftpOp.ERROR, 0);
  out.writeUInt16BE(code, 2);
  out.write(message, 4, 'latin1');
  return out;
}

function splitNulFields(buf: Buffer): string[] | undefined {
  if (buf.length === 0) return [];
  if (buf[buf.length - 1] !== 0) return undefined;
  return buf.subarray(0, buf.length - 1).toString('latin1').split('\0');
}

export function parseTftpPacket(buf: Buffer): TftpPacket {
  if (buf.length < 2) return { op: 'invalid', reason: `${buf.length}-byte packet` };
  const op = buf.readUInt16BE(0);
  switch (op) {
    case TftpOp.DATA:
      if (buf.length < 4) return { op: 'invalid', reason: 'DATA shorter than 4 bytes' };
      return { op: 'DATA', block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case TftpOp.ACK:
      if (buf.length !== 4) return { op: 'invalid', reason: `ACK of ${buf.length} bytes` };
      return { op: 'ACK', block: buf.readUInt16BE(2) };
    case TftpOp.ERROR: {
      if (buf.length < 4) return { op: 'invalid', reason: 'ERROR shorter than 4 bytes' };
      const rest = buf.subarray(4);
      const nul = rest.indexOf(0);
      // A missing terminating NUL is tolerated in the message; the code is what matters.
      return { op: 'ERROR', code: buf.readUInt16BE(2), message: rest.subarray(0, nul < 0 ? rest.length : nul).toString('latin1') };
    }
    case TftpOp.OACK: {
      const fields = splitNulFields(buf.subarray(2));
      if (!fields) return { op: 'invalid', reason: 'OACK not NUL-terminated' };
      if (fields.length % 2 !== 0) return { op: 'invalid', reason: `OACK has an odd number of fields (${fields.length})` };
      const options: Array<[string, string]> = [];
      for (let i = 0; i < fields.length; i += 2) options.push([fields[i] as string, fields[i + 1] as string]);
      return { op: 'OACK', options };
    }
    case TftpOp.RRQ:
    case TftpOp.WRQ: {
      const fields = splitNulFields(buf.subarray(2));
      if (!fields || fields.length < 2 || fields.length % 2 !== 0) return { op: 'invalid', reason: 'malformed request' };
      const options: Array<[string, string]> = [];
      for (let i = 2; i < fields.length; i += 2) options.push([fields[i] as string, fields[i + 1] as string]);
      return { op: op === TftpOp.RRQ ? 'RRQ' : 'WRQ', filename: fields[0] as string, mode: fields[1] as string, options };
    }
    default:
      return { op: 'invalid', reason: `opcode ${op}` };
  }
}

export type OackVerdict =
  | { ok: true; blksize: number; tsize: number | undefined; accepted: string[] }
  | { ok: false; reason: string };

/**
 * RFC 2347/2348/2349 from the client side: the OACK may only carry options the
 * client asked for, each once; blksize within 8..requested; tsize a whole number.
 */
export function checkOack(requested: ReadonlyArray<readonly [string, string]>, oack: ReadonlyArray<readonly [string, string]>): OackVerdict {
  const asked = new Map(requested.map(([k, v]) => [k.toLowerCase(), v]));
  const seen = new Set<string>();
  let blksize = 512;
  let tsize: number | undefined;
  for (const [rawName, value] of oack) {
    const name = rawName.toLowerCase();
    if (!asked.has(name)) return { ok: false, reason: `OACK carries option "${rawName}" that was not requested (RFC 2347)` };
    if (seen.has(name)) return { ok: false, reason: `OACK repeats option "${rawName}"` };
    seen.add(name);
    if (!/^\d+$/.test(value)) return { ok: false, reason: `OACK ${rawName}="${value}" is not a decimal number` };
    const n = Number(value);
    if (name === 'blksize') {
      const want = Number(asked.get(name));
      if (n < 8 || n > want) return { ok: false, reason: `OACK blksize ${n} outside 8..${want} (RFC 2348)` };
      blksize = n;
    } else if (name === 'tsize') {
      tsize = n;
    } else if (name === 'timeout') {
      if (String(n) !== asked.get(name)) return { ok: false, reason: `OACK timeout ${n} differs from the requested ${asked.get(name)} (RFC 2349)` };
    }
  }
  return { ok: true, blksize, tsize, accepted: [...seen] };
}

// ---------------------------------------------------------------------------
// config.txt

export interface PiConfig {
  kernel: string | undefined;
  initramfs: string | undefined;
  autoInitramfs: boolean;
  deviceTree: string | undefined;
  cmdline: string | undefined;
  overlays: string[];
  osPrefix: string;
  overlayPrefix: string;
  arm64bit: boolean | undefined;
}

/**
 * The subset of config.txt that decides which files the firmware fetches:
 * kernel=, initramfs FILE [followkernel], auto_initramfs=, device_tree=, cmdline=,
 * dtoverlay=, os_prefix=, overlay_prefix=, arm_64bit=. Conditional sections:
 * [all], [none], [piN] (N = the model), [0xSERIAL]; other filters are treated as
 * true. The last value wins.
 */
export function parseConfigTxt(text: string, model: PiModel, serial?: number): PiConfig {
  const cfg: PiConfig = {
    kernel: undefined, initramfs: undefined, autoInitramfs: false, deviceTree: undefined, cmdline: undefined,
    overlays: [], osPrefix: '', overlayPrefix: 'overlays/', arm64bit: undefined,
  };
  let modelOk = true;
  let serialOk = true;
  let none = false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/#.*$/, '').trim();
    if (!line) continue;
    const section = /^\[([^\]]*)\]$/.exec(line);
    if (section) {
      const f = (section[1] as string).trim().toLowerCase();
      if (f === 'all') { modelOk = true; serialOk = true; none = false; }
      else if (f === 'none') none = true;
      else if (/^(pi|cm)\d/.test(f) || f === 'pi400' || f === 'pi500') modelOk = f === `pi${model}`;
      else if (/^0x[0-9a-f]+$/.test(f)) serialOk = serial !== undefined && (Number.parseInt(f, 16) >>> 0) === (serial >>> 0);
      continue;
    }
    if (none || !modelOk || !serialOk) continue;
    const ramfs = /^initramfs\s+(\S+)/i.exec(line);
    if (ramfs) { cfg.initramfs = ramfs[1] as string; continue; }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = line.slice(eq + 1).trim();
    switch (key) {
      case 'kernel': cfg.kernel = value || undefined; break;
      case 'initramfs': cfg.initramfs = value.split(/\s+/)[0] || undefined; break;
      case 'auto_initramfs': cfg.autoInitramfs = value === '1'; break;
      case 'device_tree': cfg.deviceTree = value; break;
      case 'cmdline': cfg.cmdline = value || undefined; break;
      case 'os_prefix': cfg.osPrefix = value; break;
      case 'overlay_prefix': cfg.overlayPrefix = value; break;
      case 'arm_64bit': cfg.arm64bit = value !== '0'; break;
      case 'dtoverlay': {
        const name = value.split(',')[0]?.trim() ?? '';
        if (name) cfg.overlays.push(name);
        break;
      }
      default: break;
    }
  }
  return cfg;
}

/** auto_initramfs: kernel8.img -> initramfs8, kernel_2712.img -> initramfs_2712. */
export function autoInitramfsName(kernel: string): string | undefined {
  const m = /^(.*\/)?kernel([^./]*)\.img$/.exec(kernel);
  return m ? `${m[1] ?? ''}initramfs${m[2] ?? ''}` : undefined;
}

// ---------------------------------------------------------------------------
// Report types

export type FileOutcome = 'ok' | 'not-found' | 'probe-aborted' | 'error';

export interface TftpFileReport {
  /** The path as put in the RRQ (with the prefix when one is used). */
  path: string;
  /** The name without the prefix. */
  name: string;
  role: string;
  /** probe: aborted after the OACK on purpose; fetch: full transfer. */
  mode: 'probe' | 'fetch';
  outcome: FileOutcome;
  required: boolean;
  bytes: number;
  sha256: string | undefined;
  tsize: number | undefined;
  blksize: number | undefined;
  blocks: number;
  rollovers: number;
  durationMs: number;
  serverPort: number | undefined;
  errorCode?: number;
  errorMessage?: string;
  savedTo?: string;
  /** Retransmissions we made (RRQ or ACK) after a 1 s silence. */
  retransmits: number;
  duplicateData: number;
  strayPackets: number;
}

export interface PiBootReport {
  ok: boolean;
  failures: string[];
  warnings: string[];
  iface: string;
  mac: string;
  serial: string;
  model: PiModel;
  boardRevision: string;
  dhcp: {
    xid: string;
    broadcastFlag: boolean;
    discoversSent: number;
    discoverHex: string;
    offer: OfferSummary | undefined;
    /** A proxyDHCP offer the boot options came from, when they did not come with the address. */
    proxyOffer: OfferSummary | undefined;
    /** Offers not taken, once per distinct server and reasons, with how many times each came. */
    offersIgnored: Array<{ from: string; reasons: string[]; count: number }>;
    requestHex: string | undefined;
    ackReceived: boolean;
    ack: OfferSummary | undefined;
    nak: OfferSummary | undefined;
    leasedAddress: string | undefined;
    prefixLength: number | undefined;
    durationMs: number;
  };
  tftpServer: string | undefined;
  tftpServerSource: 'option66' | 'option54' | 'override' | undefined;
  prefix: string | undefined;
  prefixUsed: boolean;
  config: PiConfig | undefined;
  files: TftpFileReport[];
  required: Array<{ name: string; satisfied: boolean; path: string | undefined }>;
  ipCommands: string[];
  durationMs: number;
}

// ---------------------------------------------------------------------------
// Options

export interface PiBootOptions {
  iface: string;
  mac: string;
  /** Serial, hex (8 digits as used in the TFTP prefix). */
  serial: string;
  model?: PiModel;
  boardRevision?: number;
  /** DHCP_TIMEOUT: the whole DHCP phase. Default 45000. */
  dhcpTimeoutMs?: number;
  /** DHCP_REQ_TIMEOUT: DISCOVER retransmit interval and ACK wait. Default 4000. */
  dhcpRetryMs?: number;
  /** Set the BOOTP broadcast flag. Default true (captured Pi 4s send 0). */
  broadcastFlag?: boolean;
  /** PXE_OPTION43. Default "Raspberry Pi Boot". */
  option43Match?: string;
  /** Accept the match string anywhere in option 43, not only in a sub-option 9 menu. */
  lenientOption43?: boolean;
  /** TFTP_IP: overrides options 66/54. */
  tftpServer?: string;
  tftpPort?: number;
  /** TFTP_PREFIX: 'serial' (default), 'mac', 'none' or 'str:NAME'. */
  prefix?: string;
  /** Replaces the file sequence after the prefix probe. Tokens: @kernel @initramfs @dtb @cmdline @overlays. */
  files?: string[];
  /** Names (unprefixed) or @role tokens whose absence fails the run. */
  required?: string[];
  outDir?: string;
  blksize?: number;
  tftpTimeoutMs?: number;
  tftpRetries?: number;
  /** TFTP_FILE_TIMEOUT per file; 0 disables. Default 30000. */
  fileTimeoutMs?: number;
  /** Emulate "probe, Early terminate, re-request" for every fetched file. */
  probeEach?: boolean;
  /** Run `ip` to add the broadcast route and the leased address. Default true. */
  configureIp?: boolean;
  keepAddress?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

const DEFAULTS = {
  dhcpTimeoutMs: 45_000,
  dhcpRetryMs: 4_000,
  tftpTimeoutMs: 1_000,
  tftpRetries: 5,
  fileTimeoutMs: 30_000,
  tftpPort: 69,
};

export function defaultRequired(model: PiModel): string[] {
  return model === 4 ? ['config.txt', 'start4.elf', 'cmdline.txt', '@kernel'] : ['config.txt', 'cmdline.txt', '@kernel'];
}

/** The TFTP_PREFIX directory, with trailing slash, or undefined for none. */
export function tftpPrefix(mode: string, id: PiIdentity): string | undefined {
  if (mode === 'none') return undefined;
  if (mode === 'serial') return `${formatSerial(id.serial)}/`;
  if (mode === 'mac') return `${formatMac(id.mac, '-')}/`;
  if (mode.startsWith('str:') && mode.length > 4) return `${mode.slice(4).replace(/\/+$/, '')}/`;
  throw new Error(`--prefix must be serial, mac, none or str:NAME, got ${JSON.stringify(mode)}`);
}

// ---------------------------------------------------------------------------
// Edge: `ip`

class Aborted extends Error {}

function runIp(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function readText(file: string): Promise<string | undefined> {
  try { return (await readFile(file, 'utf8')).trim(); } catch { return undefined; }
}

async function writeSysctl(name: string, value: string): Promise<string | undefined> {
  const file = `/proc/sys/${name.replace(/\./g, '/')}`;
  const before = await readText(file);
  await writeFile(file, value);
  return before;
}

/** Remembers what it added so cleanup removes exactly that, in reverse. */
class NetConfig {
  readonly commands: string[] = [];
  private readonly undo: Array<() => Promise<void>> = [];

  constructor(private readonly iface: string, private readonly log: (l: string) => void) {}

  /** `ip ARGS`; on success registers `ip UNDO`. "File exists" counts as already there (nothing to undo). */
  async add(args: string[], undoArgs: string[]): Promise<void> {
    const r = await runIp(args);
    this.commands.push(`ip ${args.join(' ')}${r.code === 0 ? '' : ` -> ${r.stderr.trim()}`}`);
    if (r.code === 0) {
      this.undo.push(async () => {
        const u = await runIp(undoArgs);
        // Removing an interface's last address also flushes its routes: "No such process" is fine.
        const note = u.code === 0 ? '' : /No such process|Cannot assign/i.test(u.stderr) ? ' (already gone)' : ` -> ${u.stderr.trim()}`;
        this.commands.push(`ip ${undoArgs.join(' ')}${note}`);
      });
      return;
    }
    if (/File exists|already assigned/i.test(r.stderr)) return;
    throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }

  /** `ip ARGS` with nothing to undo. */
  async run(args: string[]): Promise<void> {
    const r = await runIp(args);
    this.commands.push(`ip ${args.join(' ')}${r.code === 0 ? '' : ` -> ${r.stderr.trim()}`}`);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }

  async sysctl(name: string, value: string): Promise<void> {
    const before = await writeSysctl(name, value);
    this.commands.push(`sysctl ${name}=${value} (was ${before})`);
    if (before !== undefined && before !== value) {
      this.undo.push(async () => {
        await writeSysctl(name, before);
        this.commands.push(`sysctl ${name}=${before}`);
      });
    }
  }

  mark(): number {
    return this.undo.length;
  }

  /** Undoes everything added after `mark` (all by default). */
  async rollback(mark = 0): Promise<void> {
    while (this.undo.length > mark) {
      const step = this.undo.pop() as () => Promise<void>;
      try { await step(); } catch (e) { this.log(`cleanup step failed: ${(e as Error).message}`); }
    }
  }

  async ipv4Addresses(): Promise<string[]> {
    const r = await runIp(['-j', '-4', 'addr', 'show', 'dev', this.iface]);
    if (r.code !== 0) throw new Error(`interface ${this.iface}: ${r.stderr.trim()}`);
    const parsed = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
    return parsed.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  }
}

// ---------------------------------------------------------------------------
// Edge: sockets

function bindSocket(sock: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    sock.once('error', onError);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', onError);
      resolve();
    });
  });
}

function closeSocket(sock: Socket): void {
  try { sock.close(); } catch { /* already closed */ }
}

interface DhcpPhaseResult {
  offer: OfferSummary;
  proxyOffer: OfferSummary | undefined;
  tftpServer: string;
  tftpServerSource: 'option66' | 'option54';
  serverId: string;
}

// ---------------------------------------------------------------------------
// TFTP transfer engine (one RRQ, one socket, lock-step)

interface TransferParams {
  server: string;
  port: number;
  localAddress: string;
  path: string;
  blksize: number;
  probe: boolean;
  retransmitMs: number;
  maxRetries: number;
  fileTimeoutMs: number;
  signal: AbortSignal | undefined;
}

interface TransferResult {
  outcome: FileOutcome;
  data: Buffer | undefined;
  bytes: number;
  sha256: string | undefined;
  tsize: number | undefined;
  blksize: number | undefined;
  blocks: number;
  rollovers: number;
  durationMs: number;
  serverPort: number | undefined;
  errorCode?: number;
  errorMessage?: string;
  retransmits: number;
  duplicateData: number;
  strayPackets: number;
  warnings: string[];
  /** Resolves when the socket is closed (after dallying for a retransmitted last DATA). */
  closed: Promise<void>;
}

async function tftpTransfer(p: TransferParams): Promise<TransferResult> {
  const started = Date.now();
  const sock = dgram.createSocket({ type: 'udp4' });
  const requestOptions: Array<[string, string]> = [['tsize', '0'], ['blksize', String(p.blksize)]];
  const rrq = buildRrq(p.path, requestOptions);
  const warnings: string[] = [];
  let closedResolve: () => void = () => {};
  const closed = new Promise<void>((r) => { closedResolve = r; });
  sock.on('close', () => closedResolve());

  try {
    await bindSocket(sock, 0, p.localAddress);
  } catch (e) {
    closeSocket(sock);
    return {
      outcome: 'error', data: undefined, bytes: 0, sha256: undefined, tsize: undefined, blksize: undefined, blocks: 0,
      rollovers: 0, durationMs: 0, serverPort: undefined, errorMessage: `cannot bind a TFTP socket on ${p.localAddress}: ${(e as Error).message}`,
      retransmits: 0, duplicateData: 0, strayPackets: 0, warnings, closed,
    };
  }

  return new Promise<TransferResult>((resolve) => {
    type State = 'await-first' | 'await-data' | 'data' | 'done';
    let state: State = 'await-first';
    let tid: number | undefined;
    let blksize: number | undefined;
    let tsize: number | undefined;
    let expected = 1;
    let lastAcked = -1;
    let blocks = 0;
    let rollovers = 0;
    let bytes = 0;
    let retries = 0;
    let retransmits = 0;
    let duplicateData = 0;
    let strayPackets = 0;
    let outOfOrder = 0;
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    let lastSent: Buffer = rrq;
    let lastSentPort = p.port;

    const send = (buf: Buffer, port: number) => {
      lastSent = buf;
      lastSentPort = port;
      sock.send(buf, port, p.server);
    };

    /**
     * Ends the transfer. `last` is a final packet for the server (ERROR 0/4/5/8): the
     * socket is closed only from its send callback, because dgram sends are queued
     * and a close right after send() silently drops the datagram.
     */
    const finish = (outcome: FileOutcome, extra: { errorCode?: number; errorMessage?: string; dally?: boolean; last?: Buffer } = {}) => {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      clearTimeout(fileTimer);
      p.signal?.removeEventListener('abort', onAbort);
      const data = outcome === 'ok' ? Buffer.concat(chunks, bytes) : undefined;
      if (extra.last && tid !== undefined) {
        sock.send(extra.last, tid, p.server, () => closeSocket(sock));
      } else if (extra.dally) {
        // RFC 1350 §6: the host sending the final ACK should wait in case the final
        // DATA is retransmitted (our ACK lost). Done in the background.
        const dallyTimer = setTimeout(() => closeSocket(sock), p.retransmitMs);
        dallyTimer.unref();
      } else {
        closeSocket(sock);
      }
      resolve({
        outcome, data, bytes, sha256: outcome === 'ok' ? hash.digest('hex') : undefined, tsize, blksize, blocks, rollovers,
        durationMs: Date.now() - started, serverPort: tid, errorCode: extra.errorCode, errorMessage: extra.errorMessage,
        retransmits, duplicateData, strayPackets, warnings, closed,
      });
    };

    const abortWith = (code: number, message: string, reason: string) => {
      finish('error', { errorMessage: reason, last: buildError(code, message) });
    };

    const onTimeout = () => {
      if (state === 'done') return;
      if (retries >= p.maxRetries) {
        const waiting = state === 'await-first' ? 'a reply to the RRQ' : state === 'await-data' ? 'DATA 1 after ACKing the OACK' : `DATA block ${expected}`;
        finish('error', { errorMessage: `timed out waiting for ${waiting} (${p.maxRetries} retransmissions, ${p.retransmitMs} ms apart)` });
        return;
      }
      retries++;
      retransmits++;
      sock.send(lastSent, lastSentPort, p.server);
      timer = setTimeout(onTimeout, p.retransmitMs);
    };
    let timer = setTimeout(onTimeout, p.retransmitMs);
    const fileTimer = p.fileTimeoutMs > 0
      ? setTimeout(() => {
          finish('error', { errorMessage: `not complete within TFTP_FILE_TIMEOUT ${p.fileTimeoutMs} ms (${bytes} bytes received); sent "Early terminate"`, last: buildError(0, 'Early terminate') });
        }, p.fileTimeoutMs)
      : undefined;
    const onAbort = () => finish('error', { errorMessage: 'aborted', last: buildError(0, 'Early terminate') });
    p.signal?.addEventListener('abort', onAbort);

    const progress = () => {
      retries = 0;
      timer.refresh();
    };

    const completeIfShort = (len: number) => {
      if (len >= (blksize ?? 512)) return;
      if (tsize !== undefined && bytes !== tsize) {
        finish('error', { errorMessage: `received ${bytes} bytes but the OACK announced tsize ${tsize}`, dally: true });
        return;
      }
      finish('ok', { dally: true });
    };

    sock.on('error', (err) => finish('error', { errorMessage: `socket error: ${err.message}` }));

    sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      if (state === 'done') {
        // Dallying: re-ACK a retransmitted final DATA.
        if (rinfo.address === p.server && rinfo.port === tid && msg.length >= 4 && msg.readUInt16BE(0) === TftpOp.DATA && msg.readUInt16BE(2) === lastAcked) {
          sock.send(buildAck(lastAcked), rinfo.port, rinfo.address);
        }
        return;
      }
      if (rinfo.address !== p.server || (tid !== undefined && rinfo.port !== tid)) {
        // RFC 1350 §4: a packet from a foreign TID gets ERROR 5; the transfer goes on.
        strayPackets++;
        if (strayPackets <= 3) warnings.push(`packet from ${rinfo.address}:${rinfo.port} while talking to ${p.server}:${tid ?? p.port}: answered ERROR 5`);
        sock.send(buildError(5, 'Unknown transfer ID'), rinfo.port, rinfo.address);
        return;
      }
      const pkt = parseTftpPacket(msg);
      if (pkt.op === 'invalid') {
        tid ??= rinfo.port;
        abortWith(4, 'Illegal TFTP operation', `malformed packet from the server: ${pkt.reason} (${msg.subarray(0, 32).toString('hex')})`);
        return;
      }
      if (tid === undefined) {
        tid = rinfo.port;
        if (tid === p.port) warnings.push(`server answered from port ${p.port} itself (single-port mode; RFC 1350 expects a new TID)`);
      }
      switch (pkt.op) {
        case 'ERROR': {
          if (state === 'await-first' && pkt.code === 1) {
            finish('not-found', { errorCode: pkt.code, errorMessage: pkt.message });
          } else {
            finish('error', { errorCode: pkt.code, errorMessage: `server sent ERROR ${pkt.code} "${pkt.message}"${state === 'await-first' ? '' : ` after ${bytes} bytes`}` });
          }
          return;
        }
        case 'OACK': {
          if (state === 'await-data') { progress(); send(buildAck(0), tid); return; } // our ACK 0 was lost
          if (state !== 'await-first') { warnings.push('OACK repeated in the middle of the transfer; ignored'); return; }
          const v = checkOack(requestOptions, pkt.options);
          if (!v.ok) { abortWith(8, 'Option negotiation failed', v.reason); return; }
          blksize = v.blksize;
          tsize = v.tsize;
          if (tsize === undefined) warnings.push('OACK has no tsize although the Pi asked for it');
          if (p.probe) {
            finish('probe-aborted', { last: buildError(0, 'Early terminate') });
            return;
          }
          state = 'await-data';
          progress();
          send(buildAck(0), tid);
          return;
        }
        case 'DATA': {
          if (state === 'await-first') {
            // RFC 2347: a server that accepts no option skips the OACK.
            warnings.push('server ignored tsize/blksize (no OACK): 512-byte blocks, no size check');
            blksize = 512;
            if (p.probe) {
              finish('probe-aborted', { last: buildError(0, 'Early terminate') });
              return;
            }
            state = 'data';
          }
          if (state === 'await-data') state = 'data';
          if (pkt.block === expected) {
            const size = blksize ?? 512;
            if (pkt.data.length > size) {
              abortWith(4, 'Illegal TFTP operation', `DATA block ${pkt.block} carries ${pkt.data.length} bytes, more than blksize ${size}`);
              return;
            }
            if (tsize !== undefined && bytes + pkt.data.length > tsize) {
              abortWith(4, 'Illegal TFTP operation', `DATA runs past the announced tsize ${tsize} (block ${pkt.block}, ${bytes + pkt.data.length} bytes)`);
              return;
            }
            chunks.push(Buffer.from(pkt.data));
            hash.update(pkt.data);
            bytes += pkt.data.length;
            blocks++;
            if (pkt.block === 0xffff) rollovers++;
            lastAcked = pkt.block;
            expected = (pkt.block + 1) & 0xffff;
            progress();
            send(buildAck(pkt.block), tid);
            completeIfShort(pkt.data.length);
          } else if (expected === 0 && pkt.block === 1 && rollovers > 0) {
            abortWith(4, 'Illegal TFTP operation', 'server wrapped the block number 65535 -> 1; the Pi (and dnsmasq, iPXE) expect 65535 -> 0 (rpi-eeprom#754)');
          } else if (pkt.block === lastAcked) {
            // Our ACK was lost (or the server retransmitted early): re-ACK, RFC 1350.
            duplicateData++;
            sock.send(buildAck(lastAcked), tid, p.server);
          } else {
            outOfOrder++;
            if (outOfOrder <= 3) warnings.push(`DATA block ${pkt.block} while expecting ${expected}; ignored`);
          }
          return;
        }
        default:
          abortWith(4, 'Illegal TFTP operation', `server sent ${pkt.op} during a read`);
      }
    });

    send(rrq, p.port);
  });
}

// ---------------------------------------------------------------------------
// The run

function safeOutPath(outDir: string, requested: string): string {
  const parts = requested.split('/').filter((x) => x.length > 0);
  if (parts.some((x) => x === '..' || x === '.')) throw new Error(`refusing to save ${requested} (has . or .. components)`);
  return path.join(outDir, ...parts);
}

export async function runPiBoot(options: PiBootOptions): Promise<PiBootReport> {
  const started = Date.now();
  const model: PiModel = options.model ?? 4;
  const profile = PI_MODELS[model];
  const id = makeIdentity(options.mac, options.serial, model, options.boardRevision);
  const log = options.log ?? ((l: string) => process.stderr.write(`[pi-boot] ${l}\n`));
  const match = options.option43Match ?? DEFAULT_OPTION43_MATCH;
  const broadcastFlag = options.broadcastFlag ?? true;
  const configureIp = options.configureIp ?? true;
  const dhcpTimeoutMs = options.dhcpTimeoutMs ?? DEFAULTS.dhcpTimeoutMs;
  const dhcpRetryMs = options.dhcpRetryMs ?? DEFAULTS.dhcpRetryMs;
  const blksize = options.blksize ?? profile.blksize;
  const prefixDir = tftpPrefix(options.prefix ?? 'serial', id);
  const required = (options.required ?? defaultRequired(model)).map((x) => x.trim()).filter((x) => x.length > 0);
  if (options.tftpServer !== undefined && !isDottedQuad(options.tftpServer)) throw new Error(`--tftp-server must be a dotted quad, got ${options.tftpServer}`);
  if (!Number.isInteger(blksize) || blksize < 8 || blksize > 65464) throw new Error(`blksize ${blksize} outside 8..65464`);
  const xid = randomBytes(4).readUInt32BE(0);

  const report: PiBootReport = {
    ok: false, failures: [], warnings: [], iface: options.iface, mac: formatMac(id.mac), serial: formatSerial(id.serial), model,
    boardRevision: `0x${id.boardRevision.toString(16).padStart(8, '0')}`,
    dhcp: {
      xid: `0x${xid.toString(16).padStart(8, '0')}`, broadcastFlag, discoversSent: 0, discoverHex: '', offer: undefined, proxyOffer: undefined,
      offersIgnored: [], requestHex: undefined, ackReceived: false, ack: undefined, nak: undefined, leasedAddress: undefined,
      prefixLength: undefined, durationMs: 0,
    },
    tftpServer: undefined, tftpServerSource: undefined, prefix: prefixDir, prefixUsed: false, config: undefined, files: [],
    required: [], ipCommands: [], durationMs: 0,
  };
  const warn = (w: string) => {
    if (report.warnings.includes(w)) return; // e.g. the same OFFER flaw on every retransmission
    report.warnings.push(w);
    log(`WARNING: ${w}`);
  };
  const net = new NetConfig(options.iface, log);

  try {
    if (options.signal?.aborted) throw new Aborted('aborted');
    // --- interface checks
    const sysMac = await readText(`/sys/class/net/${options.iface}/address`);
    if (sysMac === undefined) throw new Error(`no interface ${options.iface} in this network namespace`);
    if (sysMac.toLowerCase() !== formatMac(id.mac)) {
      warn(`--mac ${formatMac(id.mac)} differs from ${options.iface}'s own ${sysMac}: unicast replies and ARP use the real one`);
    }
    if (configureIp) {
      const existing = await net.ipv4Addresses();
      if (existing.length > 0) warn(`${options.iface} already has IPv4 ${existing.join(', ')}: DISCOVER will not come from 0.0.0.0`);
      await net.run(['link', 'set', 'dev', options.iface, 'up']);
      await net.add(['route', 'add', '255.255.255.255/32', 'dev', options.iface], ['route', 'del', '255.255.255.255/32', 'dev', options.iface]);
    }

    // --- DHCP
    const dhcpStarted = Date.now();
    const anyIpMark = net.mark();
    if (!broadcastFlag && configureIp) {
      await net.sysctl('net.ipv4.icmp_echo_ignore_all', '1');
      await net.sysctl(`net.ipv4.conf.${options.iface}.arp_ignore`, '1');
      // With every address local, the server's source address is "local" too: a martian unless accept_local.
      await net.sysctl(`net.ipv4.conf.${options.iface}.accept_local`, '1');
      await net.add(['route', 'add', 'broadcast', '255.255.255.255', 'dev', options.iface, 'table', 'local'],
        ['route', 'del', 'broadcast', '255.255.255.255', 'dev', options.iface, 'table', 'local']);
      await net.add(['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local'],
        ['route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', 'local']);
    }
    const dhcp = await dhcpPhase({
      id, xid, broadcastFlag, match, lenient: options.lenientOption43 ?? false, timeoutMs: dhcpTimeoutMs, retryMs: dhcpRetryMs,
      report, log, warn, signal: options.signal, model,
    });
    await net.rollback(anyIpMark);
    report.dhcp.durationMs = Date.now() - dhcpStarted;
    if (!dhcp) {
      report.failures.push(...(report.failures.length ? [] : ['DHCP failed']));
      return report;
    }
    report.tftpServer = options.tftpServer ?? dhcp.tftpServer;
    report.tftpServerSource = options.tftpServer ? 'override' : dhcp.tftpServerSource;

    // --- address
    const lease = report.dhcp.ack ?? report.dhcp.offer;
    const address = lease?.yiaddr ?? dhcp.offer.yiaddr;
    let prefixLength = 32;
    const mask = lease?.subnetMask ?? dhcp.offer.subnetMask;
    if (mask !== undefined) {
      const pl = maskToPrefix(mask);
      if (pl === undefined) warn(`option 1 ${mask} is not a contiguous netmask; using /32`);
      else prefixLength = pl;
    }
    report.dhcp.leasedAddress = address;
    report.dhcp.prefixLength = prefixLength;
    const server = report.tftpServer;
    let localAddress = '0.0.0.0';
    if (configureIp) {
      await net.add(['addr', 'add', `${address}/${prefixLength}`, 'dev', options.iface], ['addr', 'del', `${address}/${prefixLength}`, 'dev', options.iface]);
      localAddress = address;
      if (!sameSubnet(address, server, prefixLength)) {
        const router = (lease?.routers ?? dhcp.offer.routers)[0];
        if (router && sameSubnet(address, router, prefixLength)) {
          await net.add(['route', 'add', `${server}/32`, 'via', router, 'dev', options.iface], ['route', 'del', `${server}/32`, 'via', router, 'dev', options.iface]);
        } else {
          warn(`TFTP server ${server} is outside ${address}/${prefixLength} and there is no usable router (option 3); trying it on-link`);
          await net.add(['route', 'add', `${server}/32`, 'dev', options.iface], ['route', 'del', `${server}/32`, 'dev', options.iface]);
        }
      }
    }
    log(`leased ${address}/${prefixLength}; TFTP server ${server} (${report.tftpServerSource})`);

    // --- TFTP
    await tftpPhase({ options, profile, id, report, log, warn, server, localAddress, blksize, prefixDir, required });
  } catch (e) {
    report.failures.push(e instanceof Aborted ? 'aborted' : (e as Error).message);
  } finally {
    if (!options.keepAddress) await net.rollback();
    report.ipCommands = net.commands;
    report.durationMs = Date.now() - started;
  }
  report.ok = report.failures.length === 0;
  return report;
}

interface DhcpPhaseParams {
  id: PiIdentity;
  xid: number;
  broadcastFlag: boolean;
  match: string;
  lenient: boolean;
  timeoutMs: number;
  retryMs: number;
  report: PiBootReport;
  log: (l: string) => void;
  warn: (w: string) => void;
  signal: AbortSignal | undefined;
  model: PiModel;
}

async function dhcpPhase(p: DhcpPhaseParams): Promise<DhcpPhaseResult | undefined> {
  const sock = dgram.createSocket({ type: 'udp4' });
  try {
    await bindSocket(sock, 68, '0.0.0.0');
  } catch (e) {
    p.report.failures.push(`cannot bind 0.0.0.0:68: ${(e as Error).message}`);
    closeSocket(sock);
    return undefined;
  }
  sock.setBroadcast(true);
  const started = Date.now();
  const macHex = p.id.mac.toString('hex');
  const discoverFirst = buildDiscover(p.id, p.xid, { broadcast: p.broadcastFlag, secs: 0 });
  p.report.dhcp.discoverHex = discoverFirst.toString('hex');

  type Incoming = { msg: DhcpMessage; raw: Buffer; from: string };
  const queue: Incoming[] = [];
  let wake: (() => void) | undefined;
  let socketError: Error | undefined;
  sock.on('message', (raw: Buffer, rinfo: RemoteInfo) => {
    const parsed = parseDhcpMessage(raw);
    const from = `${rinfo.address}:${rinfo.port}`;
    if (!parsed.ok) {
      if (raw.length >= 8 && raw.readUInt32BE(4) === p.xid) p.warn(`unparseable DHCP reply with our xid from ${from}: ${parsed.reason}`);
      return;
    }
    const m = parsed.message;
    if (m.op !== 2 || m.xid !== p.xid) return;
    if (m.chaddr.toString('hex') !== macHex) {
      p.warn(`reply with our xid from ${from} but chaddr ${m.chaddr.toString('hex')}; ignored`);
      return;
    }
    queue.push({ msg: m, raw: Buffer.from(raw), from });
    wake?.();
  });
  sock.on('error', (err) => { socketError = err; wake?.(); });

  const next = (deadline: number): Promise<Incoming | undefined> => {
    const ready = queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const done = (value: Incoming | undefined) => {
        clearTimeout(t);
        p.signal?.removeEventListener('abort', onAbort);
        wake = undefined;
        resolve(value);
      };
      const t = setTimeout(() => done(undefined), Math.max(0, deadline - Date.now()));
      const onAbort = () => done(undefined);
      p.signal?.addEventListener('abort', onAbort, { once: true });
      wake = () => done(queue.shift());
    });
  };
  const sendTo67 = (buf: Buffer) => new Promise<void>((resolve, reject) => {
    sock.send(buf, 67, '255.255.255.255', (err) => (err ? reject(err) : resolve()));
  });

  try {
    // SELECTING: DISCOVER every retryMs until an acceptable offer or the deadline.
    const deadline = started + p.timeoutMs;
    let nextSend = Date.now();
    type Judged = Incoming & { s: OfferSummary; v: OfferVerdict };
    let chosen: { address: Judged; boot: Judged; verdict: OfferVerdict } | undefined;
    const allOffers: Judged[] = [];
    const addressOffers: Judged[] = [];
    const whyNot = (o: Judged): string[] => {
      if (o.s.yiaddr !== '0.0.0.0') return o.v.reasons;
      return o.v.bootUsable
        ? ['proxyDHCP offer (yiaddr 0.0.0.0) with the boot options; no address offer from another server to go with it']
        : ['proxyDHCP offer (yiaddr 0.0.0.0)', ...o.v.reasons];
    };
    const proxyOffers: Judged[] = [];
    while (!chosen) {
      if (p.signal?.aborted) throw new Aborted('aborted');
      if (socketError) throw new Error(`DHCP socket: ${socketError.message}`);
      const now = Date.now();
      if (now >= deadline) break;
      if (now >= nextSend) {
        const secs = Math.floor((now - started) / 1000);
        const pkt = p.report.dhcp.discoversSent === 0 ? discoverFirst : buildDiscover(p.id, p.xid, { broadcast: p.broadcastFlag, secs });
        try {
          await sendTo67(pkt);
        } catch (e) {
          throw new Error(`cannot send DHCPDISCOVER to 255.255.255.255:67: ${(e as Error).message} (no route for the limited broadcast? see the file header)`);
        }
        p.report.dhcp.discoversSent++;
        p.log(`DHCPDISCOVER #${p.report.dhcp.discoversSent} xid ${p.report.dhcp.xid} (flags ${p.broadcastFlag ? '0x8000' : '0x0000'})`);
        nextSend = now + p.retryMs;
      }
      const got = await next(Math.min(nextSend, deadline));
      if (!got) continue;
      const s = summariseReply(got.msg, got.raw, got.from, p.match);
      if (s.messageType !== DhcpType.OFFER) continue; // a late ACK/NAK of someone else's exchange
      const v = judgeOffer(s, { lenientOption43: p.lenient, match: p.match });
      p.log(`DHCPOFFER from ${got.from}: yiaddr ${s.yiaddr} siaddr ${s.siaddr} server-id ${s.serverId ?? '-'} opt66 ${s.option66 ?? '-'} opt43 ${s.option43Matched ? 'matches' : 'does not match'}`);
      if (got.msg.padBeforeEnd) p.warn(`OFFER from ${got.from} has Pad options before End (early Pi 4 EEPROMs dropped such replies, rpi-eeprom#82)`);
      for (const w of v.warnings) p.warn(`OFFER from ${got.from}: ${w}`);
      const entry = { ...got, s, v };
      allOffers.push(entry);
      if (v.addressUsable && v.bootUsable) {
        chosen = { address: entry, boot: entry, verdict: v };
        break;
      }
      const proxy = s.yiaddr === '0.0.0.0';
      if (v.addressUsable) addressOffers.push(entry);
      else if (proxy && v.bootUsable) proxyOffers.push(entry);
      const a = addressOffers[0];
      const b = proxyOffers[0];
      if (a && b) {
        if (p.model === 4) p.warn('booting with a proxyDHCP offer: Pi 4 proxy support is unverified (rpi-eeprom#60, #103); prefer full DHCP for Pi 4');
        chosen = { address: a, boot: b, verdict: b.v };
      } else {
        p.log(`  not usable yet: ${whyNot(entry).join('; ')}`);
      }
    }
    // Offers that were neither the address nor the boot source, once per server and reasons.
    for (const o of allOffers) {
      // The chosen servers' own offers (including repeats for retransmitted DISCOVERs) were used.
      if (chosen && (o.from === chosen.address.from || o.from === chosen.boot.from)) continue;
      const why = whyNot(o);
      const same = p.report.dhcp.offersIgnored.find((x) => x.from === o.from && x.reasons.join('|') === why.join('|'));
      if (same) same.count++;
      else p.report.dhcp.offersIgnored.push({ from: o.from, reasons: why, count: 1 });
    }
    if (!chosen) {
      const seen = p.report.dhcp.offersIgnored;
      p.report.failures.push(seen.length === 0
        ? `no DHCPOFFER within ${p.timeoutMs} ms (${p.report.dhcp.discoversSent} DISCOVERs sent)`
        : `no usable DHCPOFFER within ${p.timeoutMs} ms; offers seen: ${seen.map((o) => `${o.from} (x${o.count}): ${o.reasons.join('; ')}`).join(' | ')}`);
      return undefined;
    }
    p.report.dhcp.offer = chosen.address.s;
    if (chosen.boot !== chosen.address) p.report.dhcp.proxyOffer = chosen.boot.s;
    const serverId = chosen.address.s.serverId as string;

    // REQUESTING: one REQUEST, then up to retryMs for the ACK; the Pi proceeds without one.
    const request = buildRequest(p.id, p.xid, chosen.address.s.yiaddr, serverId, { broadcast: p.broadcastFlag, secs: Math.floor((Date.now() - started) / 1000) });
    p.report.dhcp.requestHex = request.toString('hex');
    await sendTo67(request);
    p.log(`DHCPREQUEST for ${chosen.address.s.yiaddr} to server-id ${serverId} (no option 60)`);
    const ackDeadline = Date.now() + p.retryMs;
    for (;;) {
      if (p.signal?.aborted) throw new Aborted('aborted');
      const got = await next(ackDeadline);
      if (!got) break;
      const s = summariseReply(got.msg, got.raw, got.from, p.match);
      if (s.messageType === DhcpType.NAK) {
        p.report.dhcp.nak = s;
        const text = got.msg.options.get(56)?.toString('latin1');
        p.report.failures.push(`DHCPNAK from ${got.from} for ${chosen.address.s.yiaddr}${text ? `: "${text}"` : ''}`);
        return undefined;
      }
      if (s.messageType !== DhcpType.ACK) continue;
      if (s.serverId !== undefined && s.serverId !== serverId) {
        p.warn(`ACK from server-id ${s.serverId}, but the REQUEST selected ${serverId}; ignored`);
        continue;
      }
      p.report.dhcp.ackReceived = true;
      p.report.dhcp.ack = s;
      p.log(`DHCPACK from ${got.from}: yiaddr ${s.yiaddr} mask ${s.subnetMask ?? '-'} lease ${s.leaseTime ?? '-'} s`);
      if (got.msg.padBeforeEnd) p.warn(`ACK from ${got.from} has Pad options before End (rpi-eeprom#82)`);
      if (s.yiaddr !== chosen.address.s.yiaddr) p.warn(`ACK yiaddr ${s.yiaddr} differs from the OFFER's ${chosen.address.s.yiaddr}; using the ACK's`);
      if (!s.serverId) p.warn('ACK has no option 54 (server identifier), a MUST');
      if (s.leaseTime === undefined) p.warn('ACK has no option 51 (lease time), a MUST in an ACK to a REQUEST');
      break;
    }
    if (!p.report.dhcp.ackReceived) p.warn(`no DHCPACK within ${p.retryMs} ms; proceeding with the OFFER's yiaddr as the Pi does`);
    return {
      offer: chosen.address.s,
      proxyOffer: p.report.dhcp.proxyOffer,
      tftpServer: chosen.verdict.tftpServer as string,
      tftpServerSource: chosen.verdict.tftpServerSource as 'option66' | 'option54',
      serverId,
    };
  } finally {
    closeSocket(sock);
  }
}

interface TftpPhaseParams {
  options: PiBootOptions;
  profile: PiModelProfile;
  id: PiIdentity;
  report: PiBootReport;
  log: (l: string) => void;
  warn: (w: string) => void;
  server: string;
  localAddress: string;
  blksize: number;
  prefixDir: string | undefined;
  required: string[];
}

async function tftpPhase(t: TftpPhaseParams): Promise<void> {
  const { options, profile, report, log, warn } = t;
  const model = profile.model;
  const closers: Array<Promise<void>> = [];
  let config: PiConfig | undefined;
  const requiredSet = new Set(t.required);
  const isRequired = (name: string, role: string) => requiredSet.has(name) || requiredSet.has(`@${role}`);

  // The prefix is on for the probe, then stays only if the probe found it.
  let activePrefix = t.prefixDir;
  const pathFor = (name: string) => (activePrefix ? `${activePrefix}${name}` : name);

  const transfer = async (name: string, role: string, mode: 'probe' | 'fetch'): Promise<TftpFileReport> => {
    if (options.signal?.aborted) throw new Aborted('aborted');
    const requested = pathFor(name);
    const r = await tftpTransfer({
      server: t.server, port: options.tftpPort ?? DEFAULTS.tftpPort, localAddress: t.localAddress, path: requested, blksize: t.blksize,
      probe: mode === 'probe', retransmitMs: options.tftpTimeoutMs ?? DEFAULTS.tftpTimeoutMs, maxRetries: options.tftpRetries ?? DEFAULTS.tftpRetries,
      fileTimeoutMs: options.fileTimeoutMs ?? DEFAULTS.fileTimeoutMs, signal: options.signal,
    });
    closers.push(r.closed);
    const entry: TftpFileReport = {
      path: requested, name, role, mode, outcome: r.outcome, required: mode === 'fetch' && isRequired(name, role), bytes: r.bytes, sha256: r.sha256,
      tsize: r.tsize, blksize: r.blksize, blocks: r.blocks, rollovers: r.rollovers, durationMs: r.durationMs, serverPort: r.serverPort,
      retransmits: r.retransmits, duplicateData: r.duplicateData, strayPackets: r.strayPackets,
    };
    if (r.errorCode !== undefined) entry.errorCode = r.errorCode;
    if (r.errorMessage !== undefined) entry.errorMessage = r.errorMessage;
    for (const w of r.warnings) warn(`${requested}: ${w}`);
    if (r.outcome === 'ok' && r.data) {
      if (role === 'config') config = parseConfigTxt(r.data.toString('utf8'), model, t.id.serial);
      if (options.outDir) {
        const out = safeOutPath(options.outDir, requested);
        await mkdir(path.dirname(out), { recursive: true });
        await writeFile(out, r.data);
        entry.savedTo = out;
      }
    }
    report.files.push(entry);
    const rate = r.durationMs > 0 ? ` ${(r.bytes / 1048576 / (r.durationMs / 1000)).toFixed(1)} MiB/s` : '';
    log(`TFTP ${mode} ${requested}: ${r.outcome}${r.outcome === 'ok' ? ` ${r.bytes} bytes in ${r.durationMs} ms${rate}, tsize ${r.tsize ?? '-'}, blksize ${r.blksize}, rollovers ${r.rollovers}, sha256 ${r.sha256}` : ''}${r.errorMessage ? ` (${r.errorMessage})` : ''}`);
    return entry;
  };

  const fetch = async (name: string, role: string): Promise<TftpFileReport> => {
    if (options.probeEach) {
      const probe = await transfer(name, role, 'probe');
      if (probe.outcome !== 'probe-aborted') return probe;
    }
    return transfer(name, role, 'fetch');
  };

  // --- Prefix probe (TFTP_PREFIX): an existence test aborted right after the OACK.
  if (t.prefixDir) {
    const candidates = model === 4 ? [['start4.elf', 'prefix-probe'], ['start.elf', 'prefix-probe']] : [['config.txt', 'prefix-probe'], [profile.dtb, 'prefix-probe']];
    for (const [name, role] of candidates as Array<[string, string]>) {
      const probe = await transfer(name, role, 'probe');
      if (probe.outcome === 'probe-aborted') { report.prefixUsed = true; break; }
      if (probe.outcome === 'error') {
        report.failures.push(`prefix probe ${probe.path} failed: ${probe.errorMessage ?? 'error'} (expected an OACK, or ERROR 1 if the directory does not exist)`);
        break;
      }
    }
    log(report.prefixUsed ? `prefix ${t.prefixDir} exists: every path carries it` : `prefix ${t.prefixDir} not found: dropped`);
  }
  activePrefix = report.prefixUsed ? t.prefixDir : undefined;

  const kernelNames = () => {
    const cfg = config;
    if (cfg?.kernel) return [`${cfg.osPrefix}${cfg.kernel}`];
    if (model === 4 && cfg?.arm64bit === false) return [`${cfg.osPrefix}kernel7l.img`];
    return profile.defaultKernels.map((k) => `${cfg?.osPrefix ?? ''}${k}`);
  };
  const dtbName = () => {
    const cfg = config;
    if (cfg?.deviceTree === '') return undefined;
    return `${cfg?.osPrefix ?? ''}${cfg?.deviceTree ?? profile.dtb}`;
  };
  let kernelFetched: string | undefined;

  const runToken = async (token: string): Promise<void> => {
    switch (token) {
      case '@kernel': {
        for (const k of kernelNames()) {
          const e = await fetch(k, 'kernel');
          if (e.outcome !== 'not-found') { kernelFetched = k; return; }
        }
        return;
      }
      case '@initramfs': {
        const cfg = config;
        let name = cfg?.initramfs ? `${cfg.osPrefix}${cfg.initramfs}` : undefined;
        if (!name && cfg?.autoInitramfs && kernelFetched) name = autoInitramfsName(kernelFetched);
        if (name) await fetch(name, 'initramfs');
        return;
      }
      case '@dtb': {
        const d = dtbName();
        if (d) await fetch(d, 'dtb');
        return;
      }
      case '@cmdline': {
        await fetch(`${config?.osPrefix ?? ''}${config?.cmdline ?? 'cmdline.txt'}`, 'cmdline');
        return;
      }
      case '@overlays': {
        const cfg = config;
        if (!cfg || cfg.overlays.length === 0) return;
        const dir = `${cfg.osPrefix}${cfg.overlayPrefix}`;
        await fetch(`${dir}overlay_map.dtb`, 'overlay');
        for (const o of cfg.overlays) await fetch(`${dir}${o}.dtbo`, 'overlay');
        return;
      }
      case '@probe-pieeprom': {
        await transfer('pieeprom.sig', 'update-probe', 'probe');
        return;
      }
      case '@probe-recovery': {
        await transfer('recover4.elf', 'recovery-probe', 'probe');
        return;
      }
      default: {
        const role = token === 'config.txt' ? 'config' : token === 'cmdline.txt' ? 'cmdline' : token.startsWith('start') ? 'firmware' : token.startsWith('fixup') ? 'firmware' : 'file';
        await fetch(token, role);
      }
    }
  };

  const sequence = options.files ?? (model === 4
    ? ['config.txt', '@probe-pieeprom', '@probe-recovery', 'start4.elf', 'fixup4.dat', 'config.txt', '@dtb', '@overlays', '@cmdline', '@kernel', '@initramfs']
    : ['config.txt', '@probe-pieeprom', '@cmdline', '@dtb', '@overlays', '@kernel', '@initramfs']);
  if (report.failures.length === 0) {
    for (const token of sequence) await runToken(token);
  }

  await Promise.all(closers);
  report.config = config;

  // --- Verdict
  const fetches = report.files.filter((f) => f.mode === 'fetch');
  for (const f of report.files) {
    if (f.outcome === 'error') report.failures.push(`${f.path}: ${f.errorMessage ?? 'transfer failed'}`);
  }
  for (const r of t.required) {
    // Probes of the prefix / update files do not count; with --probe-each a file's probe does.
    const matching = report.files.filter((f) => !f.role.endsWith('-probe') && (f.name === r || `@${f.role}` === r));
    const good = matching.find((f) => f.mode === 'fetch' && f.outcome === 'ok');
    report.required.push({ name: r, satisfied: good !== undefined, path: good?.path ?? matching[0]?.path });
    if (!good && !(matching.length > 0 && matching.every((f) => f.outcome === 'error'))) {
      report.failures.push(matching.length === 0
        ? `required ${r} was never requested (not in the sequence)`
        : `required ${r} did not arrive: ${matching.map((f) => `${f.path} ${f.outcome}${f.errorMessage ? ` (${f.errorMessage})` : ''}`).join(', ')}`);
    }
  }
  const configs = fetches.filter((f) => f.role === 'config' && f.outcome === 'ok');
  if (configs.length > 1 && new Set(configs.map((f) => f.sha256)).size > 1) warn('the two reads of config.txt returned different content');
}

// ---------------------------------------------------------------------------
// CLI

const USAGE = `usage: node --import tsx server/lab/pi-bootloader.ts --iface IF --mac MAC --serial HEX8 [options]
  --model 4|5               Pi model (default 4)
  --board-revision HEX      option 97 board revision (default 0x00c03111 / 0x00d04170)
  --dhcp-timeout SEC        DHCP_TIMEOUT for the whole DHCP phase (default 45)
  --dhcp-retry MS           DHCP_REQ_TIMEOUT: DISCOVER retry and ACK wait (default 4000)
  --no-broadcast-flag       send flags 0x0000 like captured Pi 4s (adds an AnyIP route during DHCP)
  --option43 TEXT           PXE_OPTION43 match string (default "Raspberry Pi Boot")
  --lenient-option43        accept the string anywhere in option 43
  --tftp-server IP          TFTP_IP: override options 66/54
  --tftp-port N             (default 69)
  --prefix MODE             serial (default) | mac | none | str:NAME
  --files A,B,...           replace the sequence after the prefix probe; tokens @kernel @initramfs @dtb @cmdline @overlays
  --required A,B,...        files (unprefixed names or @kernel, @dtb, @initramfs, @cmdline) that must arrive
                            (default Pi 4: config.txt,start4.elf,cmdline.txt,@kernel; Pi 5: config.txt,cmdline.txt,@kernel)
  --out DIR                 save every fetched file as DIR/<path as requested>
  --blksize N               (default 1024; Pi 5 1468)
  --tftp-timeout MS         retransmit after this much silence (default 1000)
  --tftp-retries N          (default 5)
  --file-timeout MS         TFTP_FILE_TIMEOUT per file, 0 = none (default 30000)
  --probe-each              probe (Early terminate) then re-request every file
  --no-ip-config            do not run ip(8); the interface must already route 255.255.255.255 and have an address for TFTP
  --keep-address            leave the leased address and routes on the interface
  --quiet                   no progress lines`;

export function parseCliArgs(argv: string[]): PiBootOptions {
  const opts: Partial<PiBootOptions> & { quiet?: boolean } = {};
  const take = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
    return v;
  };
  const list = (v: string) => v.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  const int = (v: string, flag: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: not a number: ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    switch (a) {
      case '--iface': opts.iface = take(i++, a); break;
      case '--mac': opts.mac = take(i++, a); break;
      case '--serial': opts.serial = take(i++, a); break;
      case '--model': {
        const m = take(i++, a);
        if (m !== '4' && m !== '5') throw new Error('--model must be 4 or 5');
        opts.model = m === '4' ? 4 : 5;
        break;
      }
      case '--board-revision': opts.boardRevision = Number.parseInt(take(i++, a).replace(/^0x/i, ''), 16) >>> 0; break;
      case '--dhcp-timeout': opts.dhcpTimeoutMs = int(take(i++, a), a) * 1000; break;
      case '--dhcp-retry': opts.dhcpRetryMs = int(take(i++, a), a); break;
      case '--no-broadcast-flag': opts.broadcastFlag = false; break;
      case '--option43': opts.option43Match = take(i++, a); break;
      case '--lenient-option43': opts.lenientOption43 = true; break;
      case '--tftp-server': opts.tftpServer = take(i++, a); break;
      case '--tftp-port': opts.tftpPort = int(take(i++, a), a); break;
      case '--prefix': opts.prefix = take(i++, a); break;
      case '--files': opts.files = list(take(i++, a)); break;
      case '--required': opts.required = list(take(i++, a)); break;
      case '--out': opts.outDir = take(i++, a); break;
      case '--blksize': opts.blksize = int(take(i++, a), a); break;
      case '--tftp-timeout': opts.tftpTimeoutMs = int(take(i++, a), a); break;
      case '--tftp-retries': opts.tftpRetries = int(take(i++, a), a); break;
      case '--file-timeout': opts.fileTimeoutMs = int(take(i++, a), a); break;
      case '--probe-each': opts.probeEach = true; break;
      case '--no-ip-config': opts.configureIp = false; break;
      case '--keep-address': opts.keepAddress = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--help': case '-h': throw new UsageHelp();
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!opts.iface || !opts.mac || !opts.serial) throw new Error('--iface, --mac and --serial are required');
  const { quiet, ...rest } = opts;
  const out: PiBootOptions = { ...rest, iface: opts.iface, mac: opts.mac, serial: opts.serial };
  if (quiet) out.log = () => {};
  // Validate early so a typo is a usage error, not a network failure.
  makeIdentity(out.mac, out.serial, out.model ?? 4, out.boardRevision);
  tftpPrefix(out.prefix ?? 'serial', makeIdentity(out.mac, out.serial));
  return out;
}

class UsageHelp extends Error {}

async function main(): Promise<void> {
  let options: PiBootOptions;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageHelp) { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    process.stderr.write(`pi-bootloader: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const report = await runPiBoot({ ...options, signal: controller.signal });
  // undefined fields become null so every report has the same keys.
  process.stdout.write(`PI_BOOT_REPORT ${JSON.stringify(report, (_k, v: unknown) => (v === undefined ? null : v))}\n`);
  if (!report.ok) {
    for (const f of report.failures) process.stderr.write(`pi-bootloader: FAIL: ${f}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`pi-bootloader: OK: ${report.files.filter((f) => f.outcome === 'ok').length} files from ${report.tftpServer}\n`);
  }
}

const invokedAs = process.argv[1] ? path.resolve(process.argv[1]) : '';
if (invokedAs === fileURLToPath(import.meta.url)) {
  void main();
}
