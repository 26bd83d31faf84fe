// Dotted-quad arithmetic for the DHCP packets and the interface set-up. Pure.

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A strict dotted quad: four decimal octets, no leading zeros, nothing else. */
export function isDottedQuad(text: string): boolean {
  return IPV4_RE.test(text);
}

function ipToNumber(text: string): number {
  const p = text.split('.').map(Number);
  return (((p[0] ?? 0) << 24) >>> 0) + ((p[1] ?? 0) << 16) + ((p[2] ?? 0) << 8) + (p[3] ?? 0);
}

export function readIp(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

function writeIp(buf: Buffer, offset: number, text: string): void {
  buf.writeUInt32BE(ipToNumber(text) >>> 0, offset);
}

export function ipBuffer(text: string): Buffer {
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
  const rebuilt = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return rebuilt === n ? prefix : undefined;
}

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  if (prefix === 0) return true;
  const mask = prefix === 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
  return (ipToNumber(a) & mask) >>> 0 === (ipToNumber(b) & mask) >>> 0;
}
