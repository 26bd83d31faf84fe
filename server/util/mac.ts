// MAC address normalisation: every map keyed by MAC uses lower-case, colon-separated text.

export function normalizeMac(text: string): string {
  return text.toLowerCase().replace(/-/g, ':');
}

export function macFromBuffer(buf: Buffer): string {
  const parts: string[] = [];
  for (const byte of buf) parts.push(byte.toString(16).padStart(2, '0'));
  return parts.join(':');
}
