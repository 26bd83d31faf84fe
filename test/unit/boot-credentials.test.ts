// A boot's nonce and phone-home secret (server/join/boot-credentials.ts): what
// is handed out, what is kept (its digest only), what a presented credential
// must look like to be compared at all, and the Bearer header it comes in.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerOf, credentialMatches, issueCredential } from '../../server/join/boot-credentials.js';

const TEST_TIMEOUT_MS = 5_000;
const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

describe('boot credentials', () => {
  it(
    'an issued credential is 192 random bits in base64url; bootfarm keeps its SHA-256 only',
    () => {
      const a = issueCredential();
      const b = issueCredential();
      expect(a.value).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(Buffer.from(a.value, 'base64url')).toHaveLength(24);
      expect(a.digest).toBe(sha256(a.value));
      expect(b.value).not.toBe(a.value);
      expect(credentialMatches(a.value, a.digest)).toBe(true);
      expect(credentialMatches(b.value, a.digest)).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'nothing matches a missing digest; a missing, empty or over-long credential matches nothing, even its own digest',
    () => {
      expect(credentialMatches(undefined, sha256(''))).toBe(false);
      expect(credentialMatches('abc', undefined)).toBe(false);
      expect(credentialMatches('', sha256(''))).toBe(false);
      expect(credentialMatches('x', sha256('x'))).toBe(true);
      expect(credentialMatches('x'.repeat(256), sha256('x'.repeat(256)))).toBe(true);
      expect(credentialMatches('x'.repeat(257), sha256('x'.repeat(257)))).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a digest that is not a SHA-256 (a damaged state record) matches nothing and does not throw',
    () => {
      const full = sha256('x');
      expect(credentialMatches('x', full.slice(0, 32))).toBe(false);
      expect(credentialMatches('x', `${full}00`)).toBe(false);
      expect(credentialMatches('x', '')).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'Bearer: one token of base64url characters, 1 to 256 of them, the scheme in any case; anything else is no credential',
    () => {
      expect(bearerOf('Bearer abc_-9Z')).toBe('abc_-9Z');
      expect(bearerOf('bearer abc')).toBe('abc');
      expect(bearerOf('BEARER abc')).toBe('abc');
      expect(bearerOf(`Bearer ${'a'.repeat(256)}`)).toBe('a'.repeat(256));
      expect(bearerOf(`Bearer ${'a'.repeat(257)}`)).toBeUndefined();
      expect(bearerOf('Bearer ')).toBeUndefined();
      expect(bearerOf('Bearer a b')).toBeUndefined();
      expect(bearerOf('Bearer a=')).toBeUndefined();
      expect(bearerOf('Bearer a\n')).toBeUndefined();
      expect(bearerOf('xBearer a')).toBeUndefined();
      expect(bearerOf(' Bearer a')).toBeUndefined();
      expect(bearerOf('Bearera')).toBeUndefined();
      expect(bearerOf('Basic YTpi')).toBeUndefined();
      expect(bearerOf(undefined)).toBeUndefined();
      expect(bearerOf('')).toBeUndefined();
    },
    TEST_TIMEOUT_MS,
  );
});
