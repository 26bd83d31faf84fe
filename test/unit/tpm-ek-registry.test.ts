// Which EK is a node's (server/join/tpm-ek-registry.ts), over real files in a
// temporary directory: tpm.ek as a path relative to the configuration file or as
// base64, the API's base64 only (an API client cannot make bootfarm read files),
// the trust-on-first-use file in the state directory (0600, written durably and
// one write after another), and each way a registration is unusable.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EkRegistrationError, EkRegistry } from '../../server/join/tpm-ek-registry.js';
import { objectName } from '../../server/tpm/public-area.js';

const DEADLINE_MS = 20_000;
const MAC = '52:54:00:7b:00:01';
const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/tpm/${name}`, import.meta.url));
const EK = fixture('ek-rsa.pub');
const EK_ECC = fixture('ek-ecc.pub');
const nameOf = (r: { ek: Parameters<typeof objectName>[0] } | undefined): string => (r ? objectName(r.ek).toString('hex') : 'none');
const EK_NAME = nameOf({ ek: parseEk(EK) });
const EK_ECC_NAME = nameOf({ ek: parseEk(EK_ECC) });

function parseEk(bytes: Buffer) {
  // Through the registry's own parser: a registry with the bytes as a node's base64 tpm.ek.
  const r = EkRegistry.open(path.join(tmpdir(), 'bootfarm-no-such-state-dir'), '/nonexistent/bootfarm.yaml');
  const found = r.registered({ mac: MAC, origin: 'api', tpm: { ek: bytes.toString('base64') } });
  if (!found) throw new Error('no EK');
  return found.ek;
}

/** This process's file descriptors open on `file` (renamed files included: the link follows the inode's new name). */
function openOn(file: string): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // closed between the listing and the look (the listing's own descriptor)
    }
  });
}

function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, got none');
}

describe('EK registry', () => {
  let dir: string;
  let state: string;
  let configFile: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-ek-registry-'));
    state = path.join(dir, 'state');
    mkdirSync(state);
    mkdirSync(path.join(dir, 'etc'));
    configFile = path.join(dir, 'etc', 'bootfarm.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = () => EkRegistry.open(state, configFile);
  const trustFile = () => path.join(state, 'tpm-eks.json');

  it(
    'a node with no tpm.ek and nothing kept has no EK',
    () => {
      expect(open().registered({ mac: MAC, origin: 'config', tpm: undefined })).toBeUndefined();
    },
    DEADLINE_MS,
  );

  it(
    "configuration: tpm.ek is a file relative to the configuration file's directory, or base64",
    () => {
      writeFileSync(path.join(dir, 'etc', 'node-a.pub'), EK);
      const fromFile = open().registered({ mac: MAC, origin: 'config', tpm: { ek: 'node-a.pub' } });
      expect(fromFile?.source).toBe('config');
      expect(nameOf(fromFile)).toBe(EK_NAME);
      // Relative to the configuration file's directory when that file is named relative to the working directory too.
      const relative = EkRegistry.open(state, path.relative(process.cwd(), configFile)).registered({
        mac: MAC,
        origin: 'config',
        tpm: { ek: 'node-a.pub' },
      });
      expect(nameOf(relative)).toBe(EK_NAME);
      const inline = open().registered({ mac: MAC, origin: 'config', tpm: { ek: EK_ECC.toString('base64') } });
      expect(inline).toMatchObject({ source: 'config', ek: { type: 'ecc' } });
      expect(nameOf(inline)).toBe(EK_ECC_NAME);
    },
    DEADLINE_MS,
  );

  it(
    'configuration: a tpm.ek that is neither an existing file nor base64, or a file that cannot be read, is an EkRegistrationError naming it',
    () => {
      const missing = thrown(() => open().registered({ mac: MAC, origin: 'config', tpm: { ek: 'keys/node-a.pub' } }));
      expect(missing).toBeInstanceOf(EkRegistrationError);
      expect(missing).toMatchObject({
        name: 'EkRegistrationError',
        message: 'tpm.ek "keys/node-a.pub" is neither an existing file nor base64',
      });
      // A directory exists but cannot be read as a file.
      mkdirSync(path.join(dir, 'etc', 'ekdir'));
      const unreadable = thrown(() => open().registered({ mac: MAC, origin: 'config', tpm: { ek: 'ekdir' } }));
      expect(unreadable).toBeInstanceOf(EkRegistrationError);
      expect(unreadable.message).toBe('tpm.ek ekdir: EISDIR');
    },
    DEADLINE_MS,
  );

  it(
    'the API: tpm.ek is base64 only, never a file name, even one that is there',
    () => {
      // "nodeApub" is valid base64 and names an existing file beside the configuration.
      writeFileSync(path.join(dir, 'etc', 'nodeApub'), EK);
      const err = thrown(() => open().registered({ mac: MAC, origin: 'api', tpm: { ek: 'nodeApub' } }));
      expect(err).toBeInstanceOf(EkRegistrationError);
      expect(err.message).toMatch(/^the registered tpm.ek is not a TPM2B_PUBLIC: /);
      const notBase64 = thrown(() => open().registered({ mac: MAC, origin: 'api', tpm: { ek: 'node-a.pub' } }));
      expect(notBase64).toBeInstanceOf(EkRegistrationError);
      expect(notBase64.message).toBe('tpm.ek is not base64');
      // Nodes the server only saw (origin unknown) are the API's too.
      expect(thrown(() => open().registered({ mac: MAC, origin: 'unknown', tpm: { ek: 'node-a.pub' } })).message).toBe(
        'tpm.ek is not base64',
      );
      const api = open().registered({ mac: MAC, origin: 'api', tpm: { ek: EK.toString('base64') } });
      expect(api?.source).toBe('api');
      expect(nameOf(api)).toBe(EK_NAME);
    },
    DEADLINE_MS,
  );

  it(
    'bytes that are not a TPM2B_PUBLIC: an EkRegistrationError saying which registration',
    () => {
      const config = thrown(() => open().registered({ mac: MAC, origin: 'config', tpm: { ek: 'bm90IGFuIEVL' } }));
      expect(config).toBeInstanceOf(EkRegistrationError);
      expect(config.message).toMatch(/^the configured tpm.ek is not a TPM2B_PUBLIC: \S/);
      writeFileSync(trustFile(), JSON.stringify({ version: 1, eks: { [MAC]: 'bm90IGFuIEVL' } }));
      const kept = thrown(() => open().registered({ mac: MAC, origin: 'config' }));
      expect(kept).toBeInstanceOf(EkRegistrationError);
      expect(kept.message).toMatch(/^the EK kept in tpm-eks.json is not a TPM2B_PUBLIC: \S/);
    },
    DEADLINE_MS,
  );

  it(
    'trust on first use: kept durably (0600, the whole file rewritten) before trust() resolves, and read back by the next process',
    async () => {
      const registry = open();
      await registry.trust(MAC, EK);
      expect(readFileSync(trustFile(), 'utf8')).toBe(`${JSON.stringify({ version: 1, eks: { [MAC]: EK.toString('base64') } }, null, 2)}\n`);
      expect(statSync(trustFile()).mode & 0o777).toBe(0o600);
      expect(existsSync(`${trustFile()}.tmp`)).toBe(false);
      // And closed: no descriptor of this process is left on it (Linux: /proc/self/fd).
      expect(openOn(trustFile())).toEqual([]);
      // This process sees it at once; the next one reads it.
      expect(registry.registered({ mac: MAC, origin: 'config' })).toMatchObject({ source: 'trust-on-first-use' });
      const next = open();
      const kept = next.registered({ mac: MAC, origin: 'config' });
      expect(kept?.source).toBe('trust-on-first-use');
      expect(nameOf(kept)).toBe(EK_NAME);
      expect(next.registered({ mac: '52:54:00:7b:00:02', origin: 'config' })).toBeUndefined();
      // A tpm.ek set later wins over the kept one.
      expect(nameOf(next.registered({ mac: MAC, origin: 'config', tpm: { ek: EK_ECC.toString('base64') } }))).toBe(EK_ECC_NAME);
      // A second node: both kept.
      await next.trust('52:54:00:7b:00:02', EK_ECC);
      expect(JSON.parse(readFileSync(trustFile(), 'utf8'))).toEqual({
        version: 1,
        eks: { [MAC]: EK.toString('base64'), '52:54:00:7b:00:02': EK_ECC.toString('base64') },
      });
    },
    DEADLINE_MS,
  );

  it(
    'trust() calls made together are written one after another, the last file holding every EK',
    async () => {
      const registry = open();
      const macs = Array.from({ length: 6 }, (_, i) => `52:54:00:7b:01:0${i}`);
      await Promise.all(macs.map((mac, i) => registry.trust(mac, i % 2 === 0 ? EK : EK_ECC)));
      const file = JSON.parse(readFileSync(trustFile(), 'utf8')) as { eks: Record<string, string> };
      expect(Object.keys(file.eks)).toEqual(macs);
      expect(existsSync(`${trustFile()}.tmp`)).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    'a write that fails rejects its trust(), pins nothing, and does not stop the next one',
    async () => {
      rmSync(state, { recursive: true });
      const registry = open();
      await expect(registry.trust(MAC, EK)).rejects.toMatchObject({ code: 'ENOENT' });
      // Not on disk, so not in memory: the node is not bound to an EK a restart would forget.
      expect(registry.registered({ mac: MAC, origin: 'config' })).toBeUndefined();
      mkdirSync(state);
      await registry.trust('52:54:00:7b:00:02', EK_ECC);
      expect(Object.keys((JSON.parse(readFileSync(trustFile(), 'utf8')) as { eks: object }).eks)).toEqual(['52:54:00:7b:00:02']);
      // Its retry is kept.
      await registry.trust(MAC, EK);
      expect(registry.registered({ mac: MAC, origin: 'config' })?.source).toBe('trust-on-first-use');
    },
    DEADLINE_MS,
  );

  it(
    'a state file that is not version 1, or has no eks object, is refused at open; entries that are not strings are ignored',
    () => {
      for (const body of [{ version: 2, eks: {} }, { version: 1 }, { version: 1, eks: null }, { version: 1, eks: 'x' }]) {
        writeFileSync(trustFile(), JSON.stringify(body));
        expect(() => open(), JSON.stringify(body)).toThrow(`${trustFile()}: not a bootfarm TPM registration file (version 1)`);
      }
      writeFileSync(trustFile(), JSON.stringify({ version: 1, eks: { [MAC]: 5, '52:54:00:7b:00:02': EK.toString('base64') } }));
      const registry = open();
      expect(registry.registered({ mac: MAC, origin: 'config' })).toBeUndefined();
      expect(nameOf(registry.registered({ mac: '52:54:00:7b:00:02', origin: 'config' }))).toBe(EK_NAME);
      // The state directory is not the configuration's: a kept file elsewhere is not read.
      expect(EkRegistry.open(path.join(dir, 'etc'), configFile).registered({ mac: '52:54:00:7b:00:02', origin: 'config' })).toBeUndefined();
    },
    DEADLINE_MS,
  );
});
