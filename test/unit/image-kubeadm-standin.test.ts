// The lab's kubeadm stand-in (imagebuild/kubernetes/kubeadm-standin) against a
// fake Kubernetes API: validation, discovery (JWS, CA pin) and registration.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinConfiguration, startFakeKube, type FakeKube } from '../lib/image-fake-kube.js';

const STANDIN = path.resolve('imagebuild/kubernetes/kubeadm-standin');
let dir: string;
let kube: FakeKube;

async function join(config: string) {
  const file = path.join(dir, `join-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, config, { mode: 0o600 });
  return execa('sh', [STANDIN, 'join', '--config', file], { reject: false, all: true });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bf-standin-'));
  kube = await startFakeKube(dir);
});
afterAll(async () => {
  await kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('kubeadm stand-in: join --config', () => {
  it('discovers the cluster, checks the pin and registers the node with its labels (v1beta4)', async () => {
    const r = await join(
      joinConfiguration({ endpoint: kube.endpoint, token: kube.token, pins: [kube.pin], name: 'node-1', labels: 'rack=a,role=worker' }),
    );
    expect(r.all).toContain('This node has joined the cluster');
    expect(r.exitCode).toBe(0);
    const node = kube.nodes.at(-1);
    expect(node?.auth).toBe(`Bearer ${kube.token}`);
    expect(node?.body).toMatchObject({ kind: 'Node', metadata: { name: 'node-1', labels: { rack: 'a', role: 'worker' } } });
  });

  it('reads v1beta3 (kubeletExtraArgs as a map) too', async () => {
    const r = await join(
      joinConfiguration({
        apiVersion: 'kubeadm.k8s.io/v1beta3',
        endpoint: kube.endpoint,
        token: kube.token,
        pins: [kube.pin],
        name: 'node-3',
        labels: 'x=y',
      }),
    );
    expect(r.exitCode, r.all).toBe(0);
    expect(kube.nodes.at(-1)?.body).toMatchObject({ metadata: { name: 'node-3', labels: { x: 'y' } } });
  });

  it('accepts the pin among several', async () => {
    const other = `sha256:${'0'.repeat(64)}`;
    const r = await join(
      joinConfiguration({ endpoint: kube.endpoint, token: kube.token, pins: [other, kube.pin], name: 'node-2', labels: '' }),
    );
    expect(r.exitCode, r.all).toBe(0);
  });

  const invalid: [string, Partial<Parameters<typeof joinConfiguration>[0]>, RegExp][] = [
    [
      'an unknown apiVersion',
      { apiVersion: 'kubeadm.k8s.io/v1beta1' },
      /no kind "JoinConfiguration" is registered for version "kubeadm.k8s.io\/v1beta1"/,
    ],
    ['a token of the wrong form', { token: 'ABCDEF.0123456789abcdef' }, /the bootstrap token is invalid/],
    ['an endpoint without a port', { endpoint: '127.0.0.1' }, /must be host:port/],
    ['a pin that is not sha256:<64 hex>', { pins: ['sha256:1234'] }, /invalid hash "sha256:1234"/],
    ['no pins', { pins: [] }, /without caCertHashes can be unsafe/],
  ];
  for (const [what, change, message] of invalid) {
    it(`refuses ${what} before any request`, async () => {
      const before = kube.nodes.length;
      const r = await join(
        joinConfiguration({ endpoint: kube.endpoint, token: kube.token, pins: [kube.pin], name: 'bad', labels: '', ...change }),
      );
      expect(r.exitCode).toBe(1);
      expect(r.all).toMatch(message);
      expect(r.all).toMatch(/^error execution phase preflight/m);
      expect(kube.nodes.length).toBe(before);
    });
  }

  it('fails discovery when the CA does not match the pin', async () => {
    const r = await join(
      joinConfiguration({ endpoint: kube.endpoint, token: kube.token, pins: [`sha256:${'ab'.repeat(32)}`], name: 'n', labels: '' }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain('cluster CA found in cluster-info ConfigMap is invalid: none of the public keys');
  });

  it('fails when cluster-info is not signed for the token id', async () => {
    const r = await join(
      joinConfiguration({ endpoint: kube.endpoint, token: 'zzzzzz.0123456789abcdef', pins: [kube.pin], name: 'n', labels: '' }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain('token id "zzzzzz" is invalid for this cluster');
  });

  it('fails when the JWS does not verify with the token (a wrong secret)', async () => {
    const r = await join(
      joinConfiguration({ endpoint: kube.endpoint, token: 'abcdef.ffffffffffffffff', pins: [kube.pin], name: 'n', labels: '' }),
    );
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain('failed to verify JWS signature');
  });

  it('fails when the cluster-info signature was tampered with', async () => {
    kube.tamper.signature = 'AAAA';
    try {
      const r = await join(joinConfiguration({ endpoint: kube.endpoint, token: kube.token, pins: [kube.pin], name: 'n', labels: '' }));
      expect(r.exitCode).toBe(1);
      expect(r.all).toContain('failed to verify JWS signature');
    } finally {
      delete kube.tamper.signature;
    }
  });

  it('fails clearly when the API server cannot be reached', async () => {
    const r = await join(joinConfiguration({ endpoint: '127.0.0.1:1', token: kube.token, pins: [kube.pin], name: 'n', labels: '' }));
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain("couldn't validate the identity of the API Server");
  });
});
