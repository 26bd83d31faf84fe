// MAC address normalisation: every map keyed by MAC uses lower-case, colon-separated text.

const MAC_RE = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;

export function isMac(text: string): boolean {
  return MAC_RE.test(text);
}

export function normalizeMac(text: string): string {
  return text.toLowerCase().replace(/-/g, ':');
}

export function macFromBuffer(buf: Buffer): string {
  const parts: string[] = [];
  for (const byte of buf) parts.push(byte.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function macToBuffer(mac: string): Buffer {
  return Buffer.from(normalizeMac(mac).split(':').map((h) => parseInt(h, 16)));
}
