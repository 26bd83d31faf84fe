// The nbd limits in the configuration: defaults when absent, the configured
// values when given, and each out-of-range value named with what was expected.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../server/config/load.js';
import { configProblems } from '../lib/config-problems.js';

const BASE = 'server: { address: 10.9.0.1, stateDir: s }\n';

const problems = configProblems;

describe('nbd limits in the configuration', () => {
  it('defaults: 10 s handshake, 1024 connections, 8 per client address, 256 options per handshake, 256 MiB of read data', () => {
    expect(parseConfig(`${BASE}nbd: {}\n`, 'cfg.yaml').nbd).toMatchObject({
      handshakeTimeoutSeconds: 10,
      maxConnections: 1024,
      maxConnectionsPerClient: 8,
      maxHandshakeOptions: 256,
      maxBufferedReadMiB: 256,
    });
  });

  it('takes configured values', () => {
    const nbd = parseConfig(
      `${BASE}nbd: { handshakeTimeoutSeconds: 3, maxConnections: 50, maxConnectionsPerClient: 2, maxHandshakeOptions: 16, maxBufferedReadMiB: 64 }\n`,
      'cfg.yaml',
    ).nbd;
    expect(nbd).toMatchObject({
      handshakeTimeoutSeconds: 3,
      maxConnections: 50,
      maxConnectionsPerClient: 2,
      maxHandshakeOptions: 16,
      maxBufferedReadMiB: 64,
    });
  });

  it('names each out-of-range value and what was expected', () => {
    expect(
      problems(
        `${BASE}nbd:\n  handshakeTimeoutSeconds: 0\n  maxConnections: 0\n  maxConnectionsPerClient: -1\n  maxHandshakeOptions: 2\n  maxBufferedReadMiB: 32\n`,
      ),
    ).toEqual([
      'cfg.yaml:3:28: nbd.handshakeTimeoutSeconds: expected a number of seconds 1-3600 to reach transmission, got 0',
      'cfg.yaml:4:19: nbd.maxConnections: expected a number of open NBD connections 1-100000, got 0',
      'cfg.yaml:5:28: nbd.maxConnectionsPerClient: expected a number of open NBD connections per client address 1-10000, got -1',
      'cfg.yaml:6:24: nbd.maxHandshakeOptions: expected a number of options per NBD handshake 8-100000, got 2',
      'cfg.yaml:7:23: nbd.maxBufferedReadMiB: expected MiB of NBD read data held in memory, 33-1048576 (at least one 32 MiB request), got 32',
    ]);
  });
});
