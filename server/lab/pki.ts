// A throwaway cluster CA and an API server certificate for the lab's fake
// Kubernetes API, made with the openssl command line (Node cannot issue
// certificates). Written under `dir`; nothing outside it is touched.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { SetupError } from '../errors.js';

export interface LabPki {
  caCertFile: string;
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execa('openssl', args, { cwd });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT')
      throw new SetupError('openssl is not installed (apt-get install openssl): the lab needs it to make its cluster CA');
    throw new SetupError(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).split('\n')[0]}`);
  }
}

/** A CA (kubernetes-style name) and a server certificate for `addresses` (IP SANs) plus localhost. */
export async function makeLabPki(dir: string, addresses: string[]): Promise<LabPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=kubernetes',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  await openssl(['req', ...ec, '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver'], dir);
  const sans = ['DNS:localhost', 'DNS:kubernetes', ...addresses.map((a) => `IP:${a}`)].join(',');
  writeFileSync(
    path.join(dir, 'apiserver.ext'),
    `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'apiserver.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'apiserver.crt',
      '-days',
      '2',
      '-extfile',
      'apiserver.ext',
    ],
    dir,
  );
  return {
    caCertFile: path.join(dir, 'ca.crt'),
    caCertPem: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    serverCertPem: readFileSync(path.join(dir, 'apiserver.crt'), 'utf8'),
    serverKeyPem: readFileSync(path.join(dir, 'apiserver.key'), 'utf8'),
  };
}
