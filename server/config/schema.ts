// The configuration file's schema. TypeBox, so the same JSON Schema can later
// validate the HTTP API and feed OpenAPI. Each leaf carries `expected`, the phrase
// used in error messages ("dhcp.port: expected a UDP port 1-65535, got 70000").
import { Type, type Static } from 'typebox';

const expected = (text: string) => ({ expected: text });

export const Ipv4 = Type.String({ format: 'ipv4', ...expected('an IPv4 address like 10.9.0.1') });
export const Port = Type.Integer({ minimum: 1, maximum: 65535, ...expected('a port number 1-65535') });
export const Mac = Type.String({
  pattern: '^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$',
  ...expected('a MAC address like "52:54:00:00:00:01" (quoted)'),
});
const Cidr = Type.String({
  pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$',
  ...expected('an IPv4 network like 10.9.0.0/24'),
});
const Hostname = Type.String({
  pattern: '^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$',
  ...expected('a host name: letters, digits and inner hyphens, at most 63'),
});
const Seconds = Type.Integer({ minimum: 1, maximum: 0xfffffffe, ...expected('a whole number of seconds') });

export const NodeArch = Type.Union([Type.Literal('amd64'), Type.Literal('arm64'), Type.Literal('armhf')], expected('one of amd64, arm64, armhf'));

export const SubnetSchema = Type.Object({
  cidr: Cidr,
  range: Type.Tuple([Ipv4, Ipv4], expected('[first, last] addresses of the dynamic pool')),
  router: Type.Optional(Ipv4),
  dns: Type.Optional(Type.Array(Ipv4, expected('a list of IPv4 addresses'))),
  domain: Type.Optional(Type.String({ minLength: 1, ...expected('a DNS domain name') })),
  leaseSeconds: Type.Optional(Seconds),
}, { additionalProperties: false });

export const NodeSchema = Type.Object({
  mac: Mac,
  hostname: Hostname,
  arch: Type.Optional(NodeArch),
  ip: Type.Optional(Ipv4),
  piSerial: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{8}$', ...expected('the Pi serial as 8 hex digits, as in its TFTP prefix') })),
  piModel: Type.Optional(Type.Union([Type.Literal(3), Type.Literal(4), Type.Literal(5)], expected('3, 4 or 5'))),
  image: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', ...expected('an image name (letters, digits, . _ -)') })),
}, { additionalProperties: false });

export const ConfigSchema = Type.Object({
  server: Type.Object({
    address: Ipv4,
    stateDir: Type.String({ minLength: 1, ...expected('a directory path') }),
    syncWrites: Type.Optional(Type.Boolean(expected('true (leases on stable storage before the ACK) or false (in the kernel before the ACK)'))),
  }, { additionalProperties: false }),
  dhcp: Type.Optional(Type.Object({
    mode: Type.Union([Type.Literal('full'), Type.Literal('proxy'), Type.Literal('off')], expected('one of full, proxy, off')),
    port: Type.Optional(Port),
    proxyPort: Type.Optional(Port),
    interface: Type.Optional(Type.String({ minLength: 1, ...expected('a network interface name like br0') })),
    subnets: Type.Optional(Type.Array(SubnetSchema)),
    offerHoldSeconds: Type.Optional(Seconds),
    declineQuarantineSeconds: Type.Optional(Seconds),
    piProxyDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 5000, ...expected('milliseconds 0-5000') })),
  }, { additionalProperties: false })),
  tftp: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean(expected('true or false'))),
    port: Type.Optional(Port),
    root: Type.Optional(Type.String({ minLength: 1, ...expected('a directory path') })),
    addresses: Type.Optional(Type.Array(Ipv4, expected('a list of local IPv4 addresses to listen on'))),
    maxBlockSize: Type.Optional(Type.Integer({ minimum: 512, maximum: 65464, ...expected('a block size 512-65464 (1468 fits a 1500-byte MTU)') })),
    maxWindowSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, ...expected('a window size 1-65535') })),
    maxTransfers: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of concurrent transfers') })),
  }, { additionalProperties: false })),
  http: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean(expected('true or false'))),
    port: Type.Optional(Port),
    host: Type.Optional(Type.String({ minLength: 1, ...expected('an address to listen on, e.g. 0.0.0.0') })),
  }, { additionalProperties: false })),
  nbd: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean(expected('true or false'))),
    port: Type.Optional(Port),
    host: Type.Optional(Type.String({ minLength: 1, ...expected('an address to listen on, e.g. 0.0.0.0') })),
    allow: Type.Optional(Type.Union([Type.Literal('leased'), Type.Literal('any')], expected('leased (addresses with a lease or a node address) or any'))),
    backend: Type.Optional(Type.Union([Type.Literal('builtin'), Type.Literal('nbd-server'), Type.Literal('nbdkit')], expected('one of builtin, nbd-server, nbdkit'))),
    exports: Type.Optional(Type.Array(Type.Object({
      name: Type.String({ minLength: 1, ...expected('an export name') }),
      file: Type.String({ minLength: 1, ...expected('an image file path') }),
    }, { additionalProperties: false }))),
  }, { additionalProperties: false })),
  boot: Type.Optional(Type.Object({
    bios: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
    uefiX64: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
    uefiArm64: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
    kernelArgs: Type.Optional(Type.String(expected('extra kernel arguments, e.g. "console=ttyS0"'))),
    templatesDir: Type.Optional(Type.String({ minLength: 1, ...expected('a directory of .hbs templates overriding templates/') })),
  }, { additionalProperties: false })),
  nodes: Type.Optional(Type.Array(NodeSchema)),
  images: Type.Optional(Type.Object({
    dir: Type.String({ minLength: 1, ...expected('a directory path') }),
    default: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', ...expected('an image name (letters, digits, . _ -)') })),
  }, { additionalProperties: false })),
  log: Type.Optional(Type.Object({
    level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), expected('a log level: fatal, error, warn, info, debug or trace')),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

export type ConfigFile = Static<typeof ConfigSchema>;
export type NodeEntry = Static<typeof NodeSchema>;
export type SubnetEntry = Static<typeof SubnetSchema>;
