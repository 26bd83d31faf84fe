// A small fake Kubernetes API for the kubeadm stand-in's tests: HTTPS with a CA
// made by openssl, kube-public/cluster-info signed for one bootstrap token,
// POST /api/v1/nodes accepting that token as bearer.
import { createHmac, createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface FakeKube {
  endpoint: string;
  pin: string;
  token: string;
  nodes: { auth: string; body: Record<string, unknown> }[];
  /** Change what cluster-info answers (e.g. a bad signature). */
  tamper: { signature?: string; dropJws?: boolean };
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function makeCa(dir: string): { caCert: string; caKey: string; srvCert: string; srvKey: string } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-subj',
    '/CN=kubernetes',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('srv.key'),
    '-out',
    f('srv.csr'),
    '-subj',
    '/CN=kube-apiserver',
  );
  writeFileSync(f('srv.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl(
    'x509',
    '-req',
    '-in',
    f('srv.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('srv.crt'),
    '-days',
    '2',
    '-extfile',
    f('srv.ext'),
  );
  return {
    caCert: readFileSync(f('ca.crt'), 'utf8'),
    caKey: readFileSync(f('ca.key'), 'utf8'),
    srvCert: readFileSync(f('srv.crt'), 'utf8'),
    srvKey: readFileSync(f('srv.key'), 'utf8'),
  };
}

export async function startFakeKube(dir: string, token = 'abcdef.0123456789abcdef'): Promise<FakeKube> {
  const ca = makeCa(dir);
  const spki = new X509Certificate(ca.caCert).publicKey.export({ type: 'spki', format: 'der' });
  const pin = `sha256:${createHash('sha256').update(spki).digest('hex')}`;
  const nodes: FakeKube['nodes'] = [];
  const tamper: FakeKube['tamper'] = {};
  let port = 0;
  const server: Server = createServer({ key: ca.srvKey, cert: ca.srvCert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/api/v1/namespaces/kube-public/configmaps/cluster-info') {
        const kubeconfig = [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- cluster:',
          `    certificate-authority-data: ${Buffer.from(ca.caCert).toString('base64')}`,
          `    server: https://127.0.0.1:${port}`,
          '  name: ""',
          'contexts: null',
          'current-context: ""',
          'users: null',
          '',
        ].join('\n');
        const header = b64url(JSON.stringify({ alg: 'HS256', kid: token.split('.')[0] }));
        const sig = b64url(
          createHmac('sha256', token)
            .update(`${header}.${b64url(kubeconfig)}`)
            .digest(),
        );
        const data: Record<string, string> = { kubeconfig };
        if (!tamper.dropJws) data[`jws-kubeconfig-${token.split('.')[0]}`] = `${header}..${tamper.signature ?? sig}`;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'cluster-info', namespace: 'kube-public' }, data }),
        );
        return;
      }
      if (req.method === 'POST' && req.url === '/api/v1/nodes') {
        const auth = req.headers.authorization ?? '';
        if (auth !== `Bearer ${token}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401}');
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        nodes.push({ auth, body });
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
        return;
      }
      res.writeHead(404);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    endpoint: `127.0.0.1:${port}`,
    pin,
    token,
    nodes,
    tamper,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function joinConfiguration(o: {
  endpoint: string;
  token: string;
  pins: string[];
  name: string;
  labels: string;
  apiVersion?: string;
}): string {
  const v4 = (o.apiVersion ?? 'kubeadm.k8s.io/v1beta4') === 'kubeadm.k8s.io/v1beta4';
  return [
    `apiVersion: ${o.apiVersion ?? 'kubeadm.k8s.io/v1beta4'}`,
    'kind: JoinConfiguration',
    'discovery:',
    '  bootstrapToken:',
    `    apiServerEndpoint: "${o.endpoint}"`,
    `    token: ${o.token}`,
    '    caCertHashes:',
    ...o.pins.map((p) => `    - ${p}`),
    'nodeRegistration:',
    `  name: ${o.name}`,
    '  taints: []',
    '  kubeletExtraArgs:',
    ...(v4 ? ['  - name: node-labels', `    value: "${o.labels}"`] : [`    node-labels: "${o.labels}"`]),
    '',
  ].join('\n');
}
