// Generates hostile DHCP datagrams: random bytes, truncations and byte mutations
// of real captured packets, and valid headers followed by random option areas.
// Deterministic for a seed, so a failure can be replayed.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function loadSeeds(fixtureDir: string): Buffer[] {
  return readdirSync(fixtureDir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => readFileSync(path.join(fixtureDir, f)));
}

export type FuzzKind = 'random' | 'truncated' | 'mutated' | 'random-options' | 'long-options';

export function* fuzzPackets(seeds: Buffer[], count: number, seed: number): Generator<{ kind: FuzzKind; data: Buffer }> {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const kinds: FuzzKind[] = ['random', 'truncated', 'mutated', 'random-options', 'long-options'];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length] as FuzzKind;
    const base = seeds[int(seeds.length)] as Buffer;
    let data: Buffer;
    switch (kind) {
      case 'random': {
        data = Buffer.alloc(int(700));
        for (let j = 0; j < data.length; j++) data[j] = int(256);
        break;
      }
      case 'truncated':
        data = Buffer.from(base.subarray(0, int(base.length)));
        break;
      case 'mutated': {
        data = Buffer.from(base);
        const flips = 1 + int(8);
        // Mostly in the option area, where parsers break.
        for (let j = 0; j < flips; j++) data[rnd() < 0.8 ? 236 + int(data.length - 236) : int(data.length)] = int(256);
        break;
      }
      case 'random-options': {
        const opts = Buffer.alloc(int(400));
        for (let j = 0; j < opts.length; j++) opts[j] = int(256);
        data = Buffer.concat([base.subarray(0, 240), Buffer.from([53, 1, 1 + int(8)]), opts]);
        break;
      }
      case 'long-options': {
        // Valid framing, extreme content: many repeats of one code (RFC 3396 joins them),
        // overload pointing at garbage, zero-length options.
        const parts: number[] = [53, 1, 1 + int(8)];
        const code = int(256);
        for (let j = 0; j < 1 + int(20); j++) parts.push(code, 255, ...Array.from({ length: 255 }, () => int(256)));
        if (rnd() < 0.5) parts.push(52, 1, 1 + int(3));
        for (let j = 0; j < int(10); j++) parts.push(1 + int(254), 0);
        parts.push(255);
        data = Buffer.concat([base.subarray(0, 240), Buffer.from(parts)]);
        break;
      }
    }
    yield { kind, data };
  }
}
