// Configuration: the example validates; every error names the file, the line,
// the key and what was expected. The CLI's `config check` is in config-cli.test.ts.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { loadConfig, parseConfig } from '../../server/config/load.js';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { configProblems } from '../lib/config-problems.js';

const problems = configProblems;

describe('configuration', () => {
  it('accepts the example and resolves defaults and paths', () => {
    const file = path.join(REPO_ROOT, 'examples/bootfarm.yaml');
    const c = loadConfig(file);
    expect(c.dhcp).toMatchObject({ mode: 'full', port: 67, proxyPort: 4011, interface: 'br0', offerHoldSeconds: 30 });
    expect(c.dhcp.subnets[0]).toMatchObject({ netmask: '255.255.255.0', broadcast: '10.9.0.255', leaseSeconds: 3600 });
    expect(c.server.stateDir).toBe(path.join(REPO_ROOT, 'examples/state'));
    expect(c.nodes.map((n) => n.mac)).toEqual(['52:54:00:00:00:01', 'dc:a6:32:01:02:03']);
    expect(c.boot).toEqual({
      bios: 'undionly.kpxe',
      uefiX64: 'ipxe.efi',
      uefiArm64: 'grub/arm64-efi/core.efi',
      kernelArgs: '',
      templatesDir: undefined,
      signingKey: undefined,
      silentBootloaderSeconds: 60,
    });
    expect(c.server.syncWrites).toBe(true);
    expect(c.server.maxDiscovered).toBe(10_000);
  });

  it('names file, line, column, key and expectation for each problem', () => {
    expect(
      problems(`server:
  address: 10.9.0.999
  stateDir: ./state
dhcp:
  mode: fulll
  port: 70000
  subnet: []
nodes:
  - { mac: "52:54:00:00:00:01", hostname: node-1 }
  - { hostname: node_2 }
`),
    ).toEqual([
      'cfg.yaml:2:12: server.address: expected an IPv4 address like 10.9.0.1, got "10.9.0.999"',
      'cfg.yaml:7:3: dhcp.subnet: unknown key; expected one of mode, port, proxyPort, interface, subnets, offerHoldSeconds, declineQuarantineSeconds, piProxyDelayMs, routerAdvertisements, limits',
      'cfg.yaml:5:9: dhcp.mode: expected one of full, proxy, off, got "fulll"',
      'cfg.yaml:6:9: dhcp.port: expected a port number 1-65535, got 70000',
      'cfg.yaml:10:5: nodes[1].mac: missing; expected a MAC address like "52:54:00:00:00:01" (quoted)',
      'cfg.yaml:10:17: nodes[1].hostname: expected a host name: letters, digits and inner hyphens, at most 63, got "node_2"',
    ]);
  });

  it('checks networks, ranges and duplicates', () => {
    expect(
      problems(`server: { address: 10.9.0.1, stateDir: s }
dhcp:
  mode: full
  subnets:
    - { cidr: 10.9.0.0/24, range: [10.9.0.200, 10.9.0.100], router: 10.8.0.1 }
    - { cidr: 10.9.1.0/24, range: [10.9.1.0, 10.9.2.5] }
nodes:
  - { mac: "52:54:00:00:00:01", hostname: a, ip: 10.9.0.5 }
  - { mac: "52-54-00-00-00-01", hostname: A, ip: 10.9.0.5 }
  - { mac: "52:54:00:00:00:03", hostname: c, ip: 192.168.1.1 }
`),
    ).toEqual([
      'cfg.yaml:5:35: dhcp.subnets[0].range: expected [first, last] with first <= last, got [10.9.0.200, 10.9.0.100]',
      'cfg.yaml:5:69: dhcp.subnets[0].router: expected an address inside 10.9.0.0/24, got 10.8.0.1',
      'cfg.yaml:6:35: dhcp.subnets[1].range: expected both ends inside 10.9.1.0/24, got [10.9.1.0, 10.9.2.5]',
      'cfg.yaml:9:12: nodes[1].mac: expected a unique MAC, but nodes[0] has 52:54:00:00:00:01 too',
      'cfg.yaml:9:43: nodes[1].hostname: expected a unique hostname, but nodes[0] is a too',
      'cfg.yaml:9:50: nodes[1].ip: expected a unique address, but nodes[0] has 10.9.0.5 too',
      'cfg.yaml:10:50: nodes[2].ip: expected an address inside one of dhcp.subnets, got 192.168.1.1',
    ]);
  });

  it('refuses a boot.templatesDir that does not exist, instead of silently using the built-in templates', () => {
    expect(problems('server: { address: 10.9.0.1, stateDir: s }\nboot: { templatesDir: ./no-such-dir }\n')).toEqual([
      `cfg.yaml:2:23: boot.templatesDir: expected an existing directory of .hbs templates, got "./no-such-dir" (resolved to ${path.resolve('no-such-dir')})`,
    ]);
  });

  it('http limits: defaults, every key, bounds, and a headers deadline past the request deadline', () => {
    const base = 'server: { address: 10.9.0.1, stateDir: s }\n';
    expect(parseConfig(`${base}http: {}\n`, 'cfg.yaml').http).toEqual({
      enabled: true,
      port: 8080,
      host: '0.0.0.0',
      maxConnections: 512,
      maxConnectionsPerClient: 32,
      headersTimeoutSeconds: 10,
      requestTimeoutSeconds: 30,
      keepAliveTimeoutSeconds: 72,
      idleTimeoutSeconds: 120,
    });
    expect(problems(`${base}http: { maxConection: 5 }\n`)).toEqual([
      'cfg.yaml:2:9: http.maxConection: unknown key; expected one of enabled, port, host, maxConnections, maxConnectionsPerClient, headersTimeoutSeconds, requestTimeoutSeconds, keepAliveTimeoutSeconds, idleTimeoutSeconds',
    ]);
    expect(problems(`${base}http: { maxConnectionsPerClient: 0 }\n`)).toEqual([
      'cfg.yaml:2:34: http.maxConnectionsPerClient: expected a number of open connections from one address 1-100000, got 0',
    ]);
    expect(problems(`${base}http: { headersTimeoutSeconds: 60 }\n`)).toEqual([
      'cfg.yaml:2:32: http.headersTimeoutSeconds: expected http.headersTimeoutSeconds (60) <= http.requestTimeoutSeconds (30)',
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(problems('server:\n  address: 10.9.0.1\n  address: 10.9.0.2\n')[0]).toMatch(
      /^cfg\.yaml:3:3: YAML syntax: Map keys must be unique/,
    );
    expect(problems('server: [\n')[0]).toMatch(/^cfg\.yaml:\d+:\d+: YAML syntax:/);
    expect(problems('- a\n- b\n')).toEqual(['cfg.yaml:1:1: expected a mapping with at least a "server" section']);
  });

  it('tftp limits: defaults, and the expectation named for a value out of range', () => {
    const base = 'server: { address: 10.9.0.1, stateDir: s }\ndhcp: { mode: off }\n';
    expect(parseConfig(`${base}tftp: {}\n`, 'cfg.yaml').tftp).toMatchObject({
      maxBlockSize: 1468,
      maxWindowSize: 64,
      maxTransfers: 1000,
      maxTransfersPerClient: 8,
      maxTimeoutSeconds: 5,
    });
    expect(problems(`${base}tftp: { maxTimeoutSeconds: 256, maxTransfersPerClient: 0 }\n`)).toEqual([
      'cfg.yaml:3:56: tftp.maxTransfersPerClient: expected a number of concurrent transfers to one client address 1-100000, got 0',
      'cfg.yaml:3:28: tftp.maxTimeoutSeconds: expected seconds 1-255: the largest timeout option honoured (a larger one is ignored), got 256',
    ]);
  });

  it('tftp.singlePort: off by default, true turns it on, a non-boolean names what is expected', () => {
    const base = 'server: { address: 10.9.0.1, stateDir: s }\ndhcp: { mode: off }\n';
    expect(parseConfig(`${base}tftp: {}\n`, 'cfg.yaml').tftp.singlePort).toBe(false);
    expect(parseConfig(`${base}tftp: { singlePort: true }\n`, 'cfg.yaml').tftp.singlePort).toBe(true);
    expect(problems(`${base}tftp: { singlePort: yes please }\n`)).toEqual([
      'cfg.yaml:3:21: tftp.singlePort: expected true (answer every transfer from the TFTP port itself, for clients behind NAT or a container port mapping) or false (each transfer from an ephemeral port, RFC 1350), got "yes please"',
    ]);
  });

  it('server.maxDiscovered: the bound on machines in no inventory, with its expectation named', () => {
    expect(parseConfig('server: { address: 10.9.0.1, stateDir: s, maxDiscovered: 500 }\n', 'cfg.yaml').server.maxDiscovered).toBe(500);
    expect(problems('server: { address: 10.9.0.1, stateDir: s, maxDiscovered: 0 }\n')).toEqual([
      'cfg.yaml:1:58: server.maxDiscovered: expected a number of machines, 1-10000000, got 0',
    ]);
  });
});
