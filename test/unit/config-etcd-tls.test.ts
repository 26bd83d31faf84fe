// store.etcd.tls in the configuration (server/config/etcd-tls.ts): https
// endpoints need a CA, client certificate and key come together, http and https
// do not mix, and the files must exist, be PEM, match, and the key must not be
// readable by others. Each refusal is file:line:column key: message, in process
// and through `bootfarm config check`. Certificates made by openssl.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import { ConfigError } from '../../server/config/errors.js';
import { run } from '../../server/lab/proc.js';
import { SetupError } from '../../server/errors.js';
import { loadEtcdTls } from '../../server/store/etcd-tls.js';
import { CLI, nodeArgs } from '../lib/bootfarm.js';
import { makeTestCa } from '../lib/test-ca.js';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-tls-cfg-'));
  const ca = await makeTestCa(dir, 'ca');
  await ca.issue('client', { usage: 'client' });
  await ca.issue('other', { usage: 'client' });
  writeFileSync(path.join(dir, 'garbage.pem'), 'not a certificate\n');
  writeFileSync(path.join(dir, 'garbage.key'), 'not a key\n', { mode: 0o600 });
  copyFileSync(path.join(dir, 'client.key'), path.join(dir, 'open.key'));
  chmodSync(path.join(dir, 'open.key'), 0o644);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The configuration file's text: store.etcd on lines 3-6, the tls lines (if any) from line 7. */
function config(endpoints: string[], tls: string[] = []): string {
  return [
    `server: { address: 10.9.0.1, stateDir: ${dir}/state }`,
    'dhcp: { mode: proxy }',
    'store:',
    '  backend: etcd',
    '  etcd:',
    `    endpoints: [${endpoints.join(', ')}]`,
    ...tls,
    '',
  ].join('\n');
}

const HTTPS = ['https://127.0.0.1:2379', 'https://127.0.0.2:2379'];

/** What parseConfig refuses, one formatted line per problem (as `config check` prints them). */
function refusals(text: string): string[] {
  const file = path.join(dir, 'site.yaml');
  try {
    parseConfig(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('store.etcd.tls', () => {
  it('https endpoints with a CA, a client certificate and its key: accepted, the paths resolved against the file', () => {
    const cfg = parseConfig(
      config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt', '      key: client.key']),
      path.join(dir, 'site.yaml'),
    );
    expect(cfg.store.etcd?.tls).toEqual({
      ca: path.join(dir, 'ca.crt'),
      cert: path.join(dir, 'client.crt'),
      key: path.join(dir, 'client.key'),
    });
    // The CA alone (a cluster without --client-cert-auth), and plain http without tls.
    expect(parseConfig(config(HTTPS, ['    tls: { ca: ca.crt }']), path.join(dir, 'site.yaml')).store.etcd?.tls).toEqual({
      ca: path.join(dir, 'ca.crt'),
      cert: undefined,
      key: undefined,
    });
    expect(parseConfig(config(['http://127.0.0.1:2379']), path.join(dir, 'site.yaml')).store.etcd?.tls).toBeUndefined();
  });

  it('https without tls, tls with http, and a mix of http and https: refused, naming the endpoint or section', () => {
    const file = path.join(dir, 'site.yaml');
    expect(refusals(config(HTTPS))).toEqual([
      `${file}:6:17: store.etcd.endpoints[0]: https endpoints need store.etcd.tls.ca (the CA that signed the members' server certificates)`,
    ]);
    expect(refusals(config(['http://127.0.0.1:2379'], ['    tls: { ca: ca.crt }']))).toEqual([
      `${file}:7:10: store.etcd.tls: expected https:// endpoints with a tls section, got "http://127.0.0.1:2379" (plain http)`,
    ]);
    expect(refusals(config(['https://127.0.0.1:2379', 'http://127.0.0.2:2379'], ['    tls: { ca: ca.crt }']))).toEqual([
      `${file}:6:41: store.etcd.endpoints[1]: expected every endpoint https:// like the first (one scheme for all members), got "http://127.0.0.2:2379"`,
    ]);
    expect(refusals(config(['http://127.0.0.1:2379', 'https://127.0.0.2:2379']))).toEqual([
      `${file}:6:40: store.etcd.endpoints[1]: expected every endpoint http:// like the first (one scheme for all members), got "https://127.0.0.2:2379"`,
    ]);
    // The scheme itself is the schema's: anything but http/https is refused with the URL's shape.
    expect(refusals(config(['grpcs://127.0.0.1:2379']))).toEqual([
      `${file}:6:17: store.etcd.endpoints[0]: expected an etcd client URL like http://10.9.0.5:2379 or https://etcd1.example.com:2379, got "grpcs://127.0.0.1:2379"`,
    ]);
  });

  it('a client certificate without its key (or the key alone), and keys the section does not have: refused', () => {
    const file = path.join(dir, 'site.yaml');
    expect(refusals(config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt']))).toEqual([
      `${file}:9:13: store.etcd.tls.cert: expected tls.cert and tls.key together (a client certificate and its private key), tls.key is missing`,
    ]);
    expect(refusals(config(HTTPS, ['    tls:', '      ca: ca.crt', '      key: client.key']))).toEqual([
      `${file}:9:12: store.etcd.tls.key: expected tls.cert and tls.key together (a client certificate and its private key), tls.cert is missing`,
    ]);
    expect(refusals(config(HTTPS, ['    tls:', '      cert: client.crt', '      key: client.key', '      insecure: true']))).toEqual([
      `${file}:8:7: store.etcd.tls.ca: missing; expected a PEM file of the CA certificate(s) that signed the etcd members' server certificates`,
      `${file}:10:7: store.etcd.tls.insecure: unknown key; expected one of ca, cert, key`,
    ]);
  });

  it('files missing, not PEM, a key readable by others, a key that is not the certificate’s: each named with its key and path', () => {
    const file = path.join(dir, 'site.yaml');
    const at = (name: string) => path.join(dir, name);
    expect(refusals(config(HTTPS, ['    tls:', '      ca: nope.crt', '      cert: garbage.pem', '      key: client.key']))).toEqual([
      `${file}:8:11: store.etcd.tls.ca: expected a PEM file of CA certificates: cannot read ${at('nope.crt')} (ENOENT)`,
      `${file}:9:13: store.etcd.tls.cert: expected a PEM client certificate: ${at('garbage.pem')} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ]);
    expect(refusals(config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt', '      key: open.key']))).toEqual([
      `${file}:10:12: store.etcd.tls.key: expected a PEM private key: ${at('open.key')} is mode 0644: a private key must not be readable by group or others (chmod 600 ${at('open.key')})`,
    ]);
    expect(refusals(config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt', '      key: other.key']))).toEqual([
      `${file}:10:12: store.etcd.tls.key: expected the private key of ${at('client.crt')}, got another key in ${at('other.key')}`,
    ]);
    expect(refusals(config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt', '      key: garbage.key']))[0]).toMatch(
      new RegExp(`^${file}:10:12: store\\.etcd\\.tls\\.key: expected a PEM private key: ${at('garbage.key')} is not a PEM private key \\(`),
    );
  });

  it('files changed after the load: the store refuses them at its start, naming the key (not a handshake failing later)', () => {
    const key = path.join(dir, 'later.key');
    copyFileSync(path.join(dir, 'client.key'), key);
    chmodSync(key, 0o600);
    const cfg = parseConfig(
      config(HTTPS, ['    tls:', '      ca: ca.crt', '      cert: client.crt', '      key: later.key']),
      path.join(dir, 'site.yaml'),
    );
    const files = cfg.store.etcd?.tls;
    expect(loadEtcdTls(files)?.key?.toString()).toContain('PRIVATE KEY');
    chmodSync(key, 0o640);
    expect(() => loadEtcdTls(files)).toThrow(SetupError);
    expect(() => loadEtcdTls(files)).toThrow(
      `store.etcd.tls.key: ${key} is mode 0640: a private key must not be readable by group or others (chmod 600 ${key})`,
    );
    copyFileSync(path.join(dir, 'other.key'), key);
    chmodSync(key, 0o600);
    expect(() => loadEtcdTls(files)).toThrow(`store.etcd.tls.key: ${key} is not the private key of ${path.join(dir, 'client.crt')}`);
  });

  it('bootfarm config check prints every refusal and exits 2', async () => {
    const file = path.join(dir, 'check.yaml');
    writeFileSync(file, config(HTTPS, ['    tls:', '      ca: garbage.pem', '      cert: client.crt', '      key: open.key']));
    const r = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]), 120_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `bootfarm: ${file}:8:11: store.etcd.tls.ca: expected a PEM file of CA certificates: ${path.join(dir, 'garbage.pem')} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      `${file}:10:12: store.etcd.tls.key: expected a PEM private key: ${path.join(dir, 'open.key')} is mode 0644: a private key must not be readable by group or others (chmod 600 ${path.join(dir, 'open.key')})`,
    ]);
  }, 120_000);
});
