// TLS to etcd (store.etcd.tls) against one real member on loopback started with
// --cert-file/--key-file/--trusted-ca-file/--client-cert-auth, certificates made
// by openssl in a temporary directory:
// - from the configuration file (parseConfig, openLeaseClaims) bootfarm claims
//   addresses, publishes itself in the instance registry with etcd's clock read
//   from the member's /health over https, and `bootfarm status` reads it all;
// - a CA that did not sign the member's certificate, no client certificate, and
//   a client certificate from another CA each fail at once with an error naming
//   what to change (not a hang, not only an OpenSSL alert number).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../server/config/load.js';
import { SetupError } from '../../server/errors.js';
import { run } from '../../server/lab/proc.js';
import { openLeaseClaims } from '../../server/store/open-lease-claims.js';
import { parseInstance } from '../../server/store/instance-registry.js';
import type { StatusReport } from '../../server/cli/status.js';
import { CLI, nodeArgs } from '../lib/bootfarm.js';
import { startLoopbackEtcd, type LoopbackEtcd } from '../lib/etcd.js';
import { makeTestCa } from '../lib/test-ca.js';
import { waitUntil } from '../lib/wait.js';

const CIDR = '10.9.0.0/24';

describe('store.etcd.tls against a member with --client-cert-auth', () => {
  let etcd: LoopbackEtcd;
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-etcd-tls-'));
    const ca = await makeTestCa(dir, 'ca');
    const other = await makeTestCa(dir, 'other-ca');
    const server = await ca.issue('member', { ips: ['127.0.0.1'], usage: 'server' });
    const client = await ca.issue('client', { usage: 'client' });
    await other.issue('rogue', { usage: 'client' });
    etcd = await startLoopbackEtcd({ tls: { ...server, ca: ca.cert, clientCertAuth: true, ctl: client } });
  }, 120_000);
  afterAll(async () => {
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A configuration file naming the member, a prefix and state directory of its own, and these tls lines. */
  const configFile = (tls: string[]): { file: string; prefix: string; stateDir: string } => {
    n++;
    const file = path.join(dir, `site-${n}.yaml`);
    const prefix = `/tls-${n}`;
    const stateDir = path.join(dir, `state-${n}`);
    writeFileSync(
      file,
      [
        `server: { address: 10.9.0.1, stateDir: ${stateDir} }`,
        `dhcp: { mode: proxy }`,
        `images: { dir: ${path.join(dir, 'images')} }`,
        'store:',
        '  backend: etcd',
        '  etcd:',
        `    endpoints: [${etcd.endpoints.join(', ')}]`,
        `    prefix: ${prefix}`,
        '    claimTimeoutMs: 3000',
        '    tls:',
        ...tls.map((l) => `      ${l}`),
        '',
      ].join('\n'),
    );
    return { file, prefix, stateDir };
  };
  const open = (file: string) => openLeaseClaims(parseConfig(readFileSync(file, 'utf8'), file), pino({ level: 'silent' }));
  const status = (file: string) => run(process.execPath, nodeArgs(CLI, ['status', '--config', file, '--json']), 120_000);
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (err: unknown) => err,
    );

  it('with the CA and a client certificate: claims, the registry with etcd’s clock read over https, and bootfarm status', async () => {
    const { file, prefix, stateDir } = configFile(['ca: ca.crt', 'cert: client.crt', 'key: client.key']);
    const claims = await open(file);
    try {
      const value = { key: 'k1', mac: '52:54:00:e1:00:01', expiresAt: Date.now() + 60_000, instance: '10.9.0.1' };
      expect(await claims.claim(CIDR, '10.9.0.100', value, Date.now())).toEqual({ ok: true });
      const stored = await etcd.ctl(['get', `${prefix}/leases/10.9.0.0_24/10.9.0.100`, '--print-value-only']);
      expect(JSON.parse(stored)).toMatchObject({ key: 'k1', mac: '52:54:00:e1:00:01' });

      // The member's /health over https gave etcd's clock: the published verdict measured it.
      const id = readFileSync(path.join(stateDir, 'instance-id'), 'utf8').trim();
      const record = async () => parseInstance((await etcd.ctl(['get', `${prefix}/instances/${id}`, '--print-value-only'])).trim());
      await waitUntil(async () => (await record())?.skew.referenceSkewMs !== undefined, 60_000, 'etcd’s clock measured over https', 200);

      const r = await status(file);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as StatusReport;
      expect(report.instances.map((i) => i.id)).toEqual([id]);
      expect(report.etcd.members).toHaveLength(1);
      expect(report.etcd.members[0]?.error).toBeUndefined();
      expect(report.etcd.members[0]?.version).toMatch(/^3\./);
      expect(report.etcd.thisHostSkewMs).toBeTypeOf('number');
    } finally {
      await claims.stop();
    }
  }, 180_000);

  it('a CA that did not sign the member’s certificate: the start and bootfarm status fail at once, naming store.etcd.tls.ca', async () => {
    const { file, prefix } = configFile(['ca: other-ca.crt', 'cert: client.crt', 'key: client.key']);
    const err = await refusal(open(file));
    expect(err).toBeInstanceOf(SetupError);
    expect((err as Error).message).toContain(
      `store.etcd: cannot read ${prefix}/leases/ from ${etcd.endpoints[0]} (the member's server certificate is not signed by the CA in store.etcd.tls.ca (${path.join(dir, 'other-ca.crt')}): `,
    );
    const r = await status(file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `status: etcd at ${etcd.endpoints[0]} did not answer (the member's server certificate is not signed by the CA in store.etcd.tls.ca (${path.join(dir, 'other-ca.crt')}): `,
    );
  }, 180_000);

  it('no client certificate, or one from another CA: refused by the member, and the error says which file to change', async () => {
    const none = configFile(['ca: ca.crt']);
    const err = await refusal(open(none.file));
    expect(err).toBeInstanceOf(SetupError);
    expect((err as Error).message).toContain(
      `from ${etcd.endpoints[0]} (the member requires a client certificate (etcd --client-cert-auth): set store.etcd.tls.cert and store.etcd.tls.key: `,
    );

    const rogue = configFile(['ca: ca.crt', 'cert: rogue.crt', 'key: rogue.key']);
    const err2 = await refusal(open(rogue.file));
    expect(err2).toBeInstanceOf(SetupError);
    expect((err2 as Error).message).toContain(
      `from ${etcd.endpoints[0]} (the member refused the client certificate in store.etcd.tls.cert (${path.join(dir, 'rogue.crt')}; is it signed by the CA etcd's --trusted-ca-file names?): `,
    );
  }, 180_000);
});
