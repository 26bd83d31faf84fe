// The TPM's key derivation functions (TPM 2.0 Part 1 §11.4.10): KDFa, the
// SP800-108 counter-mode KDF with HMAC, and KDFe, the SP800-56A concatenation KDF
// used with ECDH. Labels are NUL-terminated on the wire; callers pass them bare.
import { createHash, createHmac } from 'node:crypto';
import { u32 } from './marshal.js';
import type { HashAlg } from './algorithms.js';

function label(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'latin1'), Buffer.alloc(1)]);
}

/** Keeps the leftmost `bits` bits (the spec truncates the high-order bits of the first octet when bits is not a multiple of 8). */
function truncate(out: Buffer, bits: number): Buffer {
  const bytes = Math.ceil(bits / 8);
  const result = Buffer.from(out.subarray(0, bytes));
  if (bits % 8 !== 0) result[0] = (result[0] as number) & ((1 << (bits % 8)) - 1);
  return result;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 0xffff * 8) throw new RangeError(`KDF output of ${bits} bits`);
}

/** KDFa(hashAlg, key, label, contextU, contextV, bits). */
export function kdfa(hash: HashAlg, key: Buffer, text: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  checkBits(bits);
  const blocks: Buffer[] = [];
  const tail = Buffer.concat([label(text), contextU, contextV, u32(bits)]);
  for (let i = 1, have = 0; have * 8 < bits; i++) {
    const block = createHmac(hash.node, key).update(u32(i)).update(tail).digest();
    blocks.push(block);
    have += block.length;
  }
  return truncate(Buffer.concat(blocks), bits);
}

/** KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits). */
export function kdfe(hash: HashAlg, z: Buffer, text: string, partyU: Buffer, partyV: Buffer, bits: number): Buffer {
  checkBits(bits);
  const blocks: Buffer[] = [];
  const tail = Buffer.concat([label(text), partyU, partyV]);
  for (let i = 1, have = 0; have * 8 < bits; i++) {
    const block = createHash(hash.node).update(u32(i)).update(z).update(tail).digest();
    blocks.push(block);
    have += block.length;
  }
  return truncate(Buffer.concat(blocks), bits);
}
