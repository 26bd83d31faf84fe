// A throw-away certificate authority made with openssl, for tests that talk TLS
// to a real peer (etcd's --trusted-ca-file, --client-cert-auth). Keys are P-256
// (quick to make) and written mode 0600, as the peers and bootfarm expect of keys.
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runOk } from '../../server/lab/proc.js';

export interface TestCa {
  /** The CA certificate (PEM). */
  cert: string;
  key: string;
  /** Issues a certificate signed by this CA into `dir`/<name>.crt and .key. */
  issue(name: string, options: { ips?: string[]; usage: 'server' | 'client' | 'both' }): Promise<{ cert: string; key: string }>;
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes a CA named `name` in `dir` (which must exist). */
export async function makeTestCa(dir: string, name: string): Promise<TestCa> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await runOk('openssl', [
    'req',
    '-x509',
    ...KEY_ARGS,
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(key, 0o600);
  return {
    cert,
    key,
    issue: async (leaf, options) => {
      const out = { cert: path.join(dir, `${leaf}.crt`), key: path.join(dir, `${leaf}.key`) };
      const csr = path.join(dir, `${leaf}.csr`);
      const ext = path.join(dir, `${leaf}.ext`);
      const usage = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[options.usage];
      const san = (options.ips ?? []).map((ip) => `IP:${ip}`).join(',');
      writeFileSync(ext, `extendedKeyUsage=${usage}\n${san ? `subjectAltName=${san}\n` : ''}`);
      await runOk('openssl', ['req', '-new', ...KEY_ARGS, '-keyout', out.key, '-out', csr, '-subj', `/CN=${leaf}`]);
      chmodSync(out.key, 0o600);
      await runOk('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        cert,
        '-CAkey',
        key,
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        ext,
        '-out',
        out.cert,
      ]);
      return out;
    },
  };
}
