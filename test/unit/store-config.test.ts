// store: where leases are claimed (server/store/open-lease-claims.ts). The file
// backend is the default and changes nothing; a bad etcd section names the file,
// the line, the key and what was expected.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../server/config/load.js';
import { configProblems } from '../lib/config-problems.js';

const SERVER = 'server: { address: 10.9.0.1, stateDir: s }\n';

describe('store configuration', () => {
  it('defaults to the file backend, and resolves an etcd section with its default prefix', () => {
    expect(parseConfig(SERVER, 'cfg.yaml').store).toEqual({ backend: 'file', etcd: undefined });
    const etcd = parseConfig(
      `${SERVER}store:\n  backend: etcd\n  etcd: { endpoints: [http://10.9.0.5:2379, http://e2:2379] }\n`,
      'cfg.yaml',
    );
    expect(etcd.store).toEqual({
      backend: 'etcd',
      etcd: { endpoints: ['http://10.9.0.5:2379', 'http://e2:2379'], prefix: '/bootfarm', claimTimeoutMs: 1000, tls: undefined },
    });
    const bounded = parseConfig(
      `${SERVER}store: { backend: etcd, etcd: { endpoints: [http://e:2379], claimTimeoutMs: 250 } }\n`,
      'cfg.yaml',
    );
    expect(bounded.store.etcd?.claimTimeoutMs).toBe(250);
  });

  it('names the file, line, key and what was expected for a bad store section', () => {
    expect(
      configProblems(`${SERVER}store:
  backend: etcd3
  etcd:
    endpoints: [10.9.0.5:2379]
    prefix: bootfarm
    tls: true
`),
    ).toEqual([
      'cfg.yaml:3:12: store.backend: expected one of file (one instance; the default), etcd (instances sharing leases), got "etcd3"',
      'cfg.yaml:5:17: store.etcd.endpoints[0]: expected an etcd client URL like http://10.9.0.5:2379 or https://etcd1.example.com:2379, got "10.9.0.5:2379"',
      'cfg.yaml:6:13: store.etcd.prefix: expected a key prefix like /bootfarm, got "bootfarm"',
      'cfg.yaml:7:10: store.etcd.tls: expected a mapping with ca, and cert and key for client certificate auth, got true',
    ]);
    expect(configProblems(`${SERVER}store: { backend: etcd, etcd: { endpoints: [] } }\n`)).toEqual([
      'cfg.yaml:2:44: store.etcd.endpoints: expected a non-empty list of etcd client URLs like [http://10.9.0.5:2379], got a list',
    ]);
    expect(configProblems(`${SERVER}store: { backend: etcd, etcd: { endpoints: [http://e:2379], claimTimeoutMs: 50 } }\n`)).toEqual([
      'cfg.yaml:2:77: store.etcd.claimTimeoutMs: expected a whole number of milliseconds 100-10000, got 50',
    ]);
    // One member listed twice would have two votes on etcd's clock.
    expect(
      configProblems(
        `${SERVER}store:\n  backend: etcd\n  etcd:\n    endpoints: [http://10.9.0.5:2379, http://e2:2379, http://10.9.0.5:2379]\n`,
      ),
    ).toEqual(['cfg.yaml:5:55: store.etcd.endpoints[2]: expected each member\'s endpoint once, got "http://10.9.0.5:2379" a second time']);
    expect(configProblems(`${SERVER}store: { backend: etcd }\n`)).toEqual([
      'cfg.yaml:2:19: store.backend: expected a store.etcd section with endpoints when the backend is etcd',
    ]);
  });
});
