// IPv4 helpers shared by the codecs and the lease pool. Addresses travel as
// dotted-quad strings at the edges and as unsigned 32-bit numbers inside pools.

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIpv4(text: string): boolean {
  return IPV4_RE.test(text);
}

/** Parses a dotted quad already known to be valid (the request path calls this often). */
export function ipv4ToNumber(text: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      value = value * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return (value * 256 + octet) >>> 0;
}

export function numberToIpv4(value: number): string {
  return `${(value >>> 24) & 0xff}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

export function readIpv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

export function writeIpv4(buf: Buffer, offset: number, text: string): void {
  buf.writeUInt32BE(ipv4ToNumber(text), offset);
}

export function ipv4ToBuffer(text: string): Buffer {
  const out = Buffer.alloc(4);
  writeIpv4(out, 0, text);
  return out;
}

export interface Cidr {
  readonly network: number;
  readonly prefix: number;
  readonly mask: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!isIpv4(addr) || !/^\d{1,2}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > 32) return undefined;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (ipv4ToNumber(addr) & mask) >>> 0, prefix, mask };
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return (address & cidr.mask) >>> 0 === cidr.network;
}

export function cidrBroadcast(cidr: Cidr): number {
  return (cidr.network | (~cidr.mask >>> 0)) >>> 0;
}

export const ZERO_IPV4 = '0.0.0.0';
