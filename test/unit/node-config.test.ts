// Per-node configuration: the layering (defaults, profiles, node), lts.conf
// import with LTSP5's matching rules, sort -V order. The rendered artefacts
// (golden files, built CLI) are in node-render.test.ts.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { evaluateLtsConf, globMatches, parseLtsConf } from '../../server/config/lts-conf.js';
import { compareVersionSort } from '../../server/config/version-sort.js';
import { caCertHash, loadConfig, parseConfig } from '../../server/config/load.js';
import { findConfigNode } from '../../server/cli/render.js';
import { joinContext, renderJoinConfiguration } from '../../server/kube/join-config.js';
import { TemplateSet } from '../../server/config/templates.js';
import { bootstrapTokenSecret, generateBootstrapToken, TOKEN_PATTERN } from '../../server/kube/token.js';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/render');

describe('LTSP semantics', () => {
  const parsed = (text: string) => {
    const r = parseLtsConf(text);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.file;
  };

  it('applies [Default], then globs, then the LIKE chain, then the exact section; NONE unsets; keys upper-cased', () => {
    const file = parsed(`
[Default]
a = default
B = "kept"
c = 'gone'
[10.0.0.*]
A = glob
[base]
a = like
d = from-like
[AA:BB:CC:DD:EE:FF]
LIKE = base
c = NONE
`);
    const vars = evaluateLtsConf(file, { hostname: 'n1', ip: '10.0.0.5', mac: 'aa:bb:cc:dd:ee:ff' });
    expect(Object.fromEntries(vars)).toEqual({ A: 'like', B: 'kept', D: 'from-like' });
  });

  it('matches the hostname first, then the IP, then the MAC, case-insensitively; only the first exact ID counts', () => {
    const file = parsed('[Default]\nX = d\n[N1]\nX = host\n[10.0.0.5]\nX = ip\nY = ip\n');
    expect(evaluateLtsConf(file, { hostname: 'n1', ip: '10.0.0.5', mac: 'aa:bb:cc:dd:ee:ff' }).get('X')).toBe('host');
    expect(evaluateLtsConf(file, { hostname: 'n1', ip: '10.0.0.5', mac: 'aa:bb:cc:dd:ee:ff' }).get('Y')).toBeUndefined();
    expect(evaluateLtsConf(file, { hostname: 'n2', ip: '10.0.0.5', mac: 'aa:bb:cc:dd:ee:ff' }).get('X')).toBe('ip');
  });

  it('names the line of a malformed entry', () => {
    const r = parseLtsConf('[Default]\nGOOD = 1\nthis is not an assignment\n');
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.problems).toEqual([
        { line: 3, message: 'expected "[section]", "KEY = value" or a # comment, got "this is not an assignment"' },
      ]);
  });

  it('globs follow fnmatch: * ? and classes', () => {
    expect(globMatches('192.168.0.*', '192.168.0.17')).toBe(true);
    expect(globMatches('node-?', 'NODE-7')).toBe(true);
    expect(globMatches('node-[0-3]', 'node-4')).toBe(false);
    expect(globMatches('52:54:00:*', '52:54:01:00:00:01')).toBe(false);
  });

  it('orders keys exactly as GNU sort -V does', () => {
    const keys = [
      'PREINIT_10_A',
      'PREINIT_2_B',
      'PREINIT_00_C',
      'PREINIT_01_D',
      'RCFILE_1a',
      'RCFILE_1b',
      'RCFILE_01',
      'RCFILE_001',
      'FSTAB_9',
      'FSTAB_09_X',
      'FSTAB_100',
      'FSTAB_X',
      'FSTAB_x',
      'FSTAB__1',
      'A1B2',
      'A1B10',
      'A01B3',
      'A~1',
      'A',
      'A.1',
      'A-1',
    ];
    const gnu = execFileSync('sort', ['-V'], { input: `${keys.join('\n')}\n`, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
      .trim()
      .split('\n');
    expect([...keys].sort(compareVersionSort)).toEqual(gnu);
  });
});

describe('configuration layering', () => {
  const config = loadConfig(path.join(FIXTURES, 'bootfarm.yaml'));

  it('selects a named profile, or every profile whose match holds, and lets the node override', () => {
    const arm = findConfigNode(config, 'arm-1');
    expect(arm.profiles).toEqual(['arm']);
    expect(arm.lts.TIMEZONE).toBe('Asia/Tokyo');
    expect(arm.toRam).toBe(true);
    const pi = findConfigNode(config, 'dc-a6-32-01-02-03');
    expect(pi.profiles).toEqual(['arm', 'pi']);
    expect(pi.labels).toEqual({ farm: 'lab', rack: 'r2', board: 'pi4' });
    expect(pi.join).toBe(false);
    expect(findConfigNode(config, 'node-1').taints).toEqual(['dedicated=batch:NoSchedule']);
  });

  it('a profile match by MAC prefix and by label', () => {
    const c = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: /tmp/x }
profiles:
  - { name: pis, match: { macPrefix: "DC-A6-32" }, image: pi-image }
  - { name: gpu, match: { label: { gpu: "yes" } }, labels: { pool: gpu } }
nodes:
  - { mac: "dc:a6:32:00:00:01", hostname: p1 }
  - { mac: "52:54:00:00:00:09", hostname: g1, labels: { gpu: "yes" } }
`,
      'm.yaml',
    );
    expect(findConfigNode(c, 'p1')).toMatchObject({ profiles: ['pis'], image: 'pi-image' });
    expect(findConfigNode(c, 'g1')).toMatchObject({ profiles: ['gpu'], labels: { gpu: 'yes', pool: 'gpu' } });
  });

  it('the CA pin equals what openssl computes from the certificate', () => {
    const pem = readFileSync(path.join(FIXTURES, 'ca.crt'), 'utf8');
    const pubkey = execFileSync('openssl', ['x509', '-pubkey', '-noout'], { input: pem });
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pubkey });
    const hex = execFileSync('openssl', ['dgst', '-sha256', '-hex'], { input: der, encoding: 'utf8' }).trim().split(' ').pop();
    expect(caCertHash(pem)).toBe(`sha256:${hex}`);
    expect(config.kubernetes?.caCertHashes).toEqual([`sha256:${hex}`]);
  });

  it('kubeadm v1beta3 (before 1.31) takes kubeletExtraArgs as a map, v1beta4 as a list', () => {
    const templates = new TemplateSet(undefined);
    const node = findConfigNode(config, 'node-1');
    const kube = config.kubernetes as NonNullable<typeof config.kubernetes>;
    const v4 = parse(renderJoinConfiguration(templates, joinContext(node, kube, 'abcdef.0123456789abcdef'))) as {
      nodeRegistration: { kubeletExtraArgs: unknown };
    };
    expect(v4.nodeRegistration.kubeletExtraArgs).toEqual([
      { name: 'node-labels', value: 'farm=lab,kubernetes.io/arch=amd64,rack=r1,role=worker,zone=a' },
    ]);
    const v3: unknown = parse(
      renderJoinConfiguration(
        templates,
        joinContext(node, { ...kube, kubeadmApiVersion: 'kubeadm.k8s.io/v1beta3' }, 'abcdef.0123456789abcdef'),
      ),
    );
    expect(v3).toMatchObject({
      apiVersion: 'kubeadm.k8s.io/v1beta3',
      kind: 'JoinConfiguration',
      discovery: {
        bootstrapToken: { apiServerEndpoint: '10.9.0.20:6443', token: 'abcdef.0123456789abcdef', caCertHashes: kube.caCertHashes },
      },
      nodeRegistration: {
        name: 'node-1',
        taints: [{ key: 'dedicated', value: 'batch', effect: 'NoSchedule' }],
        kubeletExtraArgs: { 'node-labels': 'farm=lab,kubernetes.io/arch=amd64,rack=r1,role=worker,zone=a' },
      },
    });
  });

  it('mints well-formed, distinct tokens and the Secret kubeadm expects', () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = generateBootstrapToken();
      expect(t.token).toMatch(TOKEN_PATTERN);
      tokens.add(t.token);
    }
    expect(tokens.size).toBe(2000);
    const token = { id: 'abcdef', secret: '0123456789abcdef', token: 'abcdef.0123456789abcdef' };
    expect(bootstrapTokenSecret(token, 'node-1', '52:54:00:00:00:01', new Date('2026-11-22T20:00:00.123Z'))).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'bootstrap-token-abcdef', namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': 'bootfarm' } },
      type: 'bootstrap.kubernetes.io/token',
      stringData: {
        'token-id': 'abcdef',
        'token-secret': '0123456789abcdef',
        expiration: '2026-11-22T20:00:00Z',
        'usage-bootstrap-authentication': 'true',
        'usage-bootstrap-signing': 'true',
        'auth-extra-groups': 'system:bootstrappers:kubeadm:default-node-token',
        description: 'bootfarm: join token for node node-1 (52:54:00:00:00:01)',
      },
    });
  });
});
