// Runs the fake Kubernetes API (server/lab/fake-kube-api.ts) as a process, so it
// can live inside a test's network namespace beside bootfarm. Prints one JSON
// line when ready and one per request; writes state.json after each request.
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FakeKubeApi } from './fake-kube-api.js';
import { makeLabPki } from './pki.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'refuse-node': { type: 'string', multiple: true },
  },
});
const dir = values.dir as string;
// Tests read state.json while requests arrive: write beside it and rename, so a
// reader sees the old state or the new one whole, never a half-written file.
function writeState(state: unknown): void {
  const file = path.join(dir, 'state.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 1));
  renameSync(`${file}.tmp`, file);
}
const host = values.host ?? '127.0.0.1';
const pki = await makeLabPki(path.join(dir, 'pki'), [host]);
const api: FakeKubeApi = new FakeKubeApi({
  host,
  port: Number(values.port ?? 6443),
  certPem: pki.serverCertPem,
  keyPem: pki.serverKeyPem,
  caPem: pki.caCertPem,
  adminToken: 'admin-token-for-the-lab-0123456789',
  refuseNodes: values['refuse-node'] ?? [],
  onRecord: (record) => {
    writeState({ secrets: [...api.secrets.values()], nodes: [...api.nodes.values()] });
    process.stdout.write(`${JSON.stringify({ record })}\n`);
  },
});
await api.start();
const kubeconfig = path.join(dir, 'admin.conf');
writeFileSync(kubeconfig, api.kubeconfig(), { mode: 0o600 });
writeState({ secrets: [], nodes: [] });
process.stdout.write(`${JSON.stringify({ ready: true, endpoint: api.endpoint, caCertFile: pki.caCertFile, kubeconfig })}\n`);
process.on('SIGTERM', () => void api.stop().then(() => process.exit(0)));
