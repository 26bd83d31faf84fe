// A trust-on-first-use write that fails is undone in memory (server/join/tpm-ek-registry.ts
// trust()): back to the EK the MAC had before, or to none; but never over an EK a
// later trust() of the same MAC put there while the failed write was queued.
// node:fs/promises' open fails once, on demand, so the order is certain.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const failNextOpen = { armed: false };
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    open: (...args: Parameters<typeof real.open>) => {
      if (!failNextOpen.armed) return real.open(...args);
      failNextOpen.armed = false;
      return Promise.reject(Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' }));
    },
  };
});

const { EkRegistry } = await import('../../server/join/tpm-ek-registry.js');
const { objectName } = await import('../../server/tpm/public-area.js');

const MAC = '52:54:00:7b:00:0a';
const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/tpm/${name}`, import.meta.url));
const EK = fixture('ek-rsa.pub');
const EK_ECC = fixture('ek-ecc.pub');

describe('EK registry: undoing a failed trust-on-first-use write', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-ek-undo-'));
    mkdirSync(path.join(dir, 'state'));
  });
  afterEach(() => {
    failNextOpen.armed = false;
    rmSync(dir, { recursive: true, force: true });
  });
  const open = () => EkRegistry.open(path.join(dir, 'state'), path.join(dir, 'bootfarm.yaml'));
  const nameOf = (r: { ek: Parameters<typeof objectName>[0] } | undefined) => (r ? objectName(r.ek).toString('hex') : 'none');
  /** The name of `bytes` as an EK, through the registry's own parser. */
  const ekName = (bytes: Buffer) => nameOf(open().registered({ mac: MAC, origin: 'api', tpm: { ek: bytes.toString('base64') } }));

  it('a MAC that had an EK keeps that one', async () => {
    const registry = open();
    await registry.trust(MAC, EK);
    failNextOpen.armed = true;
    await expect(registry.trust(MAC, EK_ECC)).rejects.toThrow('EIO');
    expect(nameOf(registry.registered({ mac: MAC, origin: 'config' }))).toBe(ekName(EK));
  }, 20_000);

  it('a later trust() of the MAC, queued behind the failing write, is not undone', async () => {
    const registry = open();
    failNextOpen.armed = true;
    const failing = registry.trust(MAC, EK);
    const later = registry.trust(MAC, EK_ECC);
    await expect(failing).rejects.toThrow('EIO');
    await later;
    // In memory as on disk (what the next process reads): the later EK.
    expect(nameOf(registry.registered({ mac: MAC, origin: 'config' }))).toBe(ekName(EK_ECC));
    expect(nameOf(open().registered({ mac: MAC, origin: 'config' }))).toBe(ekName(EK_ECC));
  }, 20_000);
});
