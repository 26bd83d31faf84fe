// The node agent's TPM attestation (imagebuild/agent/tpm-attest) against a real
// bootfarm with kubernetes.admission: tpm, outside a node: the script runs in a
// node's namespace with tpm2-tools talking to a swtpm there, curl talking to
// bootfarm. The node's EK is registered with `bootfarm node add --ek`. With the
// registered TPM the boot is attested; the same node booting with another TPM
// is refused, and the reason is on its timeline and in the metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';
import { AgentClient, shellVar } from '../lib/agent-client.js';
import { Swtpm } from '../lib/swtpm.js';
import { makeCredential, toolsCredentialFile } from '../../server/tpm/make-credential.js';
import { parsePublic } from '../../server/tpm/public-area.js';

const MAC = '52:54:00:00:0b:01';
const MAC_ECC = '52:54:00:00:0b:02';
const URL_BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'api-token-for-tpm-attest-tests';
const SCRIPT = path.join(REPO_ROOT, 'imagebuild/agent/tpm-attest');

describe('agent tpm-attest against bootfarm and swtpm', () => {
  let lab: NetLab;
  let srv: LabHost;
  let node: LabHost;
  let attacker: LabHost;
  let agent: AgentClient;
  let server: BootfarmProcess;
  let registered: Swtpm;
  let other: Swtpm;
  let dir: string;
  let boots = 0;
  let attestedRun = '';

  const cli = (args: string[]) => lab.exec(srv.ns, process.execPath, nodeArgs(CLI, [...args, '--server', URL_BASE, '--token', API_TOKEN]));
  const events = async (mac = MAC): Promise<Array<{ type: string; detail?: Record<string, string> }>> =>
    (
      JSON.parse((await agent.curl(srv, `${URL_BASE}/api/v1/nodes/${mac}/events`, ['-H', `Authorization: Bearer ${API_TOKEN}`])).body) as {
        events: Array<{ type: string; detail?: Record<string, string> }>;
      }
    ).events;
  const metric = async (outcome: string): Promise<number> =>
    Number(
      new RegExp(`bootfarm_tpm_attestations_total\\{outcome="${outcome}"\\} (\\d+)`).exec(
        (await agent.curl(srv, `${URL_BASE}/metrics`)).body,
      )?.[1] ?? 0,
    );

  /** A boot of the node: its boot script (the nonce on its kernel command line), then tpm-attest as the agent runs it, with `tpm` as the machine's TPM. */
  const bootWith = async (tpm: Swtpm, host = node, mac = MAC) => {
    const script = await agent.bootScript(host, mac);
    expect(script.status).toBe(200);
    const run = path.join(dir, `run-${boots++}`);
    const cmdline = `${run}.cmdline`;
    writeFileSync(cmdline, `bootfarm.http=10.9.0.1:8080 bootfarm.mac=${mac} bootfarm.nonce=${script.nonce}\n`);
    const result = await lab.exec(host.ns, 'env', [
      `TPM2TOOLS_TCTI=${tpm.tcti}`,
      `BF_LIB=${path.dirname(SCRIPT)}`,
      `BF_RUN=${run}`,
      `BF_CMDLINE=${cmdline}`,
      'sh',
      SCRIPT,
    ]);
    // The boot's secret, from the configuration the script fetched and kept (as the agent's join then uses it).
    return { ...result, run, secret: shellVar(readFileSync(path.join(run, 'config'), 'utf8'), 'BOOTFARM_SECRET') };
  };

  beforeAll(async () => {
    lab = await NetLab.create('tat');
    agent = new AgentClient(lab, URL_BASE);
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    node = await lab.addHost('node', { address: '10.9.0.50/24', mac: MAC });
    attacker = await lab.addHost('atk', { address: '10.9.0.66/24' });
    [registered, other] = [await Swtpm.start(lab, node.ns, 2321), await Swtpm.start(lab, node.ns, 2331)];
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-tpm-attest-'));
    writeFileSync(path.join(dir, 'ek.pub'), (await registered.createKeys('rsa', 'enrol')).ekPub);
    writeFileSync(path.join(dir, 'not-an-ek'), 'hello\n');
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'off' },
      tftp: { root: mkdtempSync(path.join(tmpdir(), 'bootfarm-tat-tftp-')) },
      http: { port: 8080 },
      kubernetes: {
        apiServer: '10.9.0.1:6443',
        caCertHash: `sha256:${'0'.repeat(64)}`,
        token: 'abcdef.0123456789abcdef',
        admission: 'tpm',
      },
      api: { token: API_TOKEN },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await registered?.stop();
    await other?.stop();
    await lab?.destroy();
  });

  it('bootfarm node add --ek registers the EK (and refuses a file that is not one)', async () => {
    const bad = await cli(['node', 'add', MAC, '--hostname', 'node-t', '--ip', '10.9.0.50', '--ek', path.join(dir, 'not-an-ek')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('not a TPM2B_PUBLIC');
    const ok = await cli(['node', 'add', MAC, '--hostname', 'node-t', '--ip', '10.9.0.50', '--ek', path.join(dir, 'ek.pub')]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('the registered TPM attests the boot', async () => {
    const r = await bootWith(registered);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toContain('this boot is attested');
    // Attested, and the token minted right then (before the join asks: the cluster signs cluster-info meanwhile).
    await waitUntil(async () => (await events()).some((e) => e.type === 'token.minted'), 10_000, 'the token minted on attestation');
    const types = (await events()).map((e) => e.type);
    expect(types.slice(-3)).toEqual(['tpm.challenge', 'tpm.attested', 'token.minted']);
    expect(await metric('attested')).toBe(1);
    // Attested: the join is served, with the token.
    const join = await agent.join(node, MAC, r.secret);
    expect(join.status).toBe(200);
    expect(join.body).toContain('abcdef.0123456789abcdef');
    attestedRun = r.run;
  });

  it('tpm-attest unseal: what is sealed to the attested TPM and AK comes back on that TPM only', async () => {
    const token = Buffer.from('abcdef.0123456789abcdef');
    // As TpmAdmission.seal makes it: MakeCredential to the registered EK, bound to the boot's AK.
    const akName = readFileSync(path.join(attestedRun, 'tpm', 'ak.name'));
    const sealed = path.join(dir, 'sealed.cred');
    writeFileSync(sealed, toolsCredentialFile(makeCredential(parsePublic(readFileSync(path.join(dir, 'ek.pub'))), akName, token)));
    const unseal = (tpm: Swtpm, run: string, out: string) =>
      lab.exec(node.ns, 'env', [
        `TPM2TOOLS_TCTI=${tpm.tcti}`,
        `BF_LIB=${path.dirname(SCRIPT)}`,
        `BF_RUN=${run}`,
        'sh',
        SCRIPT,
        'unseal',
        sealed,
        out,
      ]);
    const ok = await unseal(registered, attestedRun, path.join(dir, 'unsealed'));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'unsealed')).equals(token)).toBe(true);
    const elsewhere = await unseal(other, attestedRun, path.join(dir, 'stolen'));
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stdout).toContain('this TPM cannot unseal');
  });

  it('the same node booting with another TPM is refused, with the reason on its timeline', async () => {
    const r = await bootWith(other);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(
      /bootfarm refused the TPM challenge \(HTTP 403\): ek-mismatch: this machine's TPM has EK [0-9a-f]+ \(rsa\), not node-t's registered EK/,
    );
    const last = (await events()).at(-1);
    expect(last).toMatchObject({ type: 'tpm.refused', detail: { reason: 'ek-mismatch' } });
    expect(last?.detail?.message).toContain("not node-t's registered EK");
    expect(await metric('ek-mismatch')).toBe(1);
    expect(await metric('attested')).toBe(1);
    // Not attested: the join waits (423), the token stays with bootfarm.
    const join = await agent.join(node, MAC, r.secret);
    expect(join.status).toBe(423);
    expect(join.body).not.toContain('abcdef.0123456789abcdef');
  });

  it('a node with an ECC EK registered through the API: the agent (RSA by default) makes the ECC EK the challenge names, and attests', async () => {
    const eccNode = await lab.addHost('ecc', { address: '10.9.0.52/24', mac: MAC_ECC });
    const tpm = await Swtpm.start(lab, eccNode.ns, 2321);
    const ek = (await tpm.createKeys('ecc', 'enrol-ecc')).ekPub;
    const added = await agent.curl(srv, `${URL_BASE}/api/v1/nodes`, [
      '-H',
      `Authorization: Bearer ${API_TOKEN}`,
      '-H',
      'Content-Type: application/json',
      '--data-binary',
      JSON.stringify({ mac: MAC_ECC, hostname: 'node-e', ip: '10.9.0.52', tpm: { ek: ek.toString('base64') } }),
    ]);
    expect(added.status, added.body).toBe(201);
    const r = await bootWith(tpm, eccNode, MAC_ECC);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect((await events(MAC_ECC)).find((e) => e.type === 'tpm.attested')).toMatchObject({
      type: 'tpm.attested',
      detail: { ekSource: 'api' },
    });
    expect((await agent.join(eccNode, MAC_ECC, r.secret)).status).toBe(200);
    await tpm.stop();
  });

  it("the routes answer only the boot's address with its secret, and refuse hostile bodies with a reason", async () => {
    const { secret } = await agent.boot(node, MAC);
    // auth null: no Authorization header at all.
    const post = (host: LabHost, route: string, body: string, auth: string | null = secret) =>
      agent.curl(host, `${URL_BASE}/agent/v1/${MAC}/tpm/${route}`, [
        '-H',
        'Content-Type: application/json',
        '--data-binary',
        body,
        ...(auth === null ? [] : ['-H', `Authorization: Bearer ${auth}`]),
      ]);
    const akPublic = (await registered.createKeys('rsa', 'hostile')).akPub.toString('base64');
    const valid = JSON.stringify({ akPublic });
    expect((await post(node, 'challenge', valid, null)).status).toBe(401);
    expect((await post(node, 'challenge', valid, 'not-the-secret')).status).toBe(401);
    expect((await post(attacker, 'challenge', valid)).status).toBe(403);
    expect((await post(node, 'answer', JSON.stringify({ secret: 'AAAA' }))).body).toContain('"reason":"no-challenge"');
    const truncated = await post(node, 'challenge', JSON.stringify({ akPublic: akPublic.slice(0, 40) }));
    expect(truncated.status).toBe(400);
    expect(JSON.parse(truncated.body)).toMatchObject({ reason: 'ak-malformed' });
    expect((await post(node, 'challenge', JSON.stringify({ akPublic: '%%%' }))).status).toBe(400);
    expect((await post(node, 'challenge', JSON.stringify({ akPublic, extra: 1 }))).status).toBe(400);
    expect((await post(node, 'challenge', JSON.stringify({ akPublic: 'A'.repeat(20_000) }))).status).toBe(413);
    // Still the node's boot: the registered TPM attests it afterwards.
    expect((await post(node, 'challenge', valid)).status).toBe(200);
  });
});
