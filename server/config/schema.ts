// The configuration file's schema. TypeBox, so the same JSON Schema can later
// validate the HTTP API and feed OpenAPI. Each leaf carries `expected`, the phrase
// used in error messages ("dhcp.port: expected a UDP port 1-65535, got 70000").
import { Type, type Static } from 'typebox';

const expected = (text: string) => ({ expected: text });

const Ipv4 = Type.String({ format: 'ipv4', ...expected('an IPv4 address like 10.9.0.1') });
const Port = Type.Integer({ minimum: 1, maximum: 65535, ...expected('a port number 1-65535') });
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

const NodeArch = Type.Union([Type.Literal('amd64'), Type.Literal('arm64'), Type.Literal('armhf')], expected('one of amd64, arm64, armhf'));

const SubnetSchema = Type.Object(
  {
    cidr: Cidr,
    range: Type.Tuple([Ipv4, Ipv4], expected('[first, last] addresses of the dynamic pool')),
    router: Type.Optional(Ipv4),
    dns: Type.Optional(Type.Array(Ipv4, expected('a list of IPv4 addresses'))),
    domain: Type.Optional(Type.String({ minLength: 1, ...expected('a DNS domain name') })),
    leaseSeconds: Type.Optional(Seconds),
  },
  { additionalProperties: false },
);

const ImageName = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', ...expected('an image name (letters, digits, . _ -)') });
const ProfileName = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', ...expected('a profile name (letters, digits, . _ -)') });

/** Kubernetes label syntax (prefix/name=value), checked here so a bad label fails `config check`, not `kubeadm join`. */
export const Labels = Type.Record(
  Type.String({
    pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$',
  }),
  Type.String({
    pattern: '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$',
    ...expected('a label value: up to 63 letters, digits, - _ . (starting and ending alphanumeric)'),
  }),
  {
    additionalProperties: false,
    keyExpected: 'a label name like rack or example.com/rack',
    ...expected('a mapping of Kubernetes labels, e.g. { rack: r1 }'),
  },
);

/** LTSP variables (lts.conf): upper-case names, scalar values. */
const LtsVariables = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
  Type.Union([Type.String(), Type.Number(), Type.Boolean()], expected('a string, number or boolean')),
  {
    additionalProperties: false,
    keyExpected: 'an lts.conf variable name: letters, digits and _, not starting with a digit',
    ...expected('a mapping of lts.conf variables, e.g. { PREINIT_00_TIME: "..." }'),
  },
);

const Taint = Type.String({
  pattern: '^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$',
  ...expected('a taint like "dedicated=gpu:NoSchedule" (key[=value]:NoSchedule|PreferNoSchedule|NoExecute)'),
});

// true: Debian's shim chain (Microsoft's UEFI CA); site: iPXE signed with boot.signingKey (server/boot/signing.ts).
const SecureBootSetting = Type.Union([Type.Boolean(), Type.Literal('site')], {
  ...expected(
    'true (UEFI nodes boot Debian\'s signed shim and GRUB instead of iPXE), site (amd64 UEFI nodes boot iPXE signed with boot.signingKey) or false; docs/configuration.md "Secure Boot"',
  ),
});

/** What defaults, profiles and nodes can each set; later layers override earlier ones. */
const layerFields = {
  image: Type.Optional(ImageName),
  lts: Type.Optional(LtsVariables),
  ltsFile: Type.Optional(Type.String({ minLength: 1, ...expected('the path of an lts.conf file to import') })),
  labels: Type.Optional(Labels),
  taints: Type.Optional(Type.Array(Taint, expected('a list of taints'))),
  join: Type.Optional(Type.Boolean(expected('true (run kubeadm join at the end of boot) or false'))),
  kernelArgs: Type.Optional(Type.String(expected('extra kernel arguments for this layer'))),
  secureBoot: Type.Optional(SecureBootSetting),
};

export const NodeSchema = Type.Object(
  {
    mac: Mac,
    hostname: Hostname,
    arch: Type.Optional(NodeArch),
    ip: Type.Optional(Ipv4),
    piSerial: Type.Optional(
      Type.String({ pattern: '^[0-9a-fA-F]{8}$', ...expected('the Pi serial as 8 hex digits, as in its TFTP prefix') }),
    ),
    piModel: Type.Optional(Type.Union([Type.Literal(3), Type.Literal(4), Type.Literal(5)], expected('3, 4 or 5'))),
    piBoot: Type.Optional(
      Type.Union(
        [Type.Literal('tftp'), Type.Literal('http')],
        expected('tftp (the default: files over TFTP) or http (Pi 4/5: a signed boot.img over HTTP, docs/raspberry-pi.md)'),
      ),
    ),
    profile: Type.Optional(ProfileName),
    image: Type.Optional(ImageName),
    lts: Type.Optional(LtsVariables),
    labels: Type.Optional(Labels),
    taints: Type.Optional(Type.Array(Taint, expected('a list of taints'))),
    join: Type.Optional(Type.Boolean(expected('true (run kubeadm join at the end of boot) or false'))),
    kernelArgs: Type.Optional(Type.String(expected('extra kernel arguments for this node'))),
    secureBoot: Type.Optional(SecureBootSetting),
    tpm: Type.Optional(
      Type.Object(
        {
          ek: Type.String({
            minLength: 1,
            maxLength: 4096,
            ...expected(
              "the node's TPM endorsement key public area (TPM2B_PUBLIC, as `tpm2_createek -u` writes it): a file path, or its bytes in base64",
            ),
          }),
        },
        { additionalProperties: false, ...expected('{ ek: <file or base64> } for kubernetes.admission: tpm') },
      ),
    ),
  },
  { additionalProperties: false },
);

const ProfileMatchSchema = Type.Object(
  {
    arch: Type.Optional(NodeArch),
    macPrefix: Type.Optional(
      Type.String({ pattern: '^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){0,5}$', ...expected('the start of a MAC address, e.g. "dc:a6:32"') }),
    ),
    label: Type.Optional(Labels),
    piModel: Type.Optional(Type.Union([Type.Literal(3), Type.Literal(4), Type.Literal(5)], expected('3, 4 or 5'))),
  },
  { additionalProperties: false, ...expected('conditions that must all hold: arch, macPrefix, label, piModel') },
);

const ProfileSchema = Type.Object(
  {
    name: ProfileName,
    match: Type.Optional(ProfileMatchSchema),
    ...layerFields,
  },
  { additionalProperties: false },
);

const Count = (what: string) =>
  Type.Integer({ minimum: 0, maximum: 1_000_000, ...expected(`${what}: a whole number 0-1000000 (0 turns the limit off)`) });
const Percent = Type.Integer({ minimum: 1, maximum: 100, ...expected('a percentage 1-100') });

/**
 * What machines in no inventory may cost the DHCP server (docs/design.md "Hostile
 * network"): a forged MAC is free, so budgets are per MAC and for all of them together.
 */
const DhcpLimitsSchema = Type.Object(
  {
    unknownClientBurst: Type.Optional(Count('requests one unknown MAC may send at once')),
    unknownClientPerMinute: Type.Optional(Count('requests per minute one unknown MAC may send after its burst')),
    unknownGlobalBurst: Type.Optional(Count('requests all unknown MACs together may send at once')),
    unknownGlobalPerSecond: Type.Optional(Count('requests per second all unknown MACs together may send after the burst')),
    trackedClients: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_000_000, ...expected('how many unknown MACs have a budget of their own at once, 1-1000000') }),
    ),
    unknownLeasePercent: Type.Optional(Percent),
    maxQuarantinedPercent: Type.Optional(Percent),
  },
  {
    additionalProperties: false,
    ...expected(
      'DHCP limits: unknownClientBurst, unknownClientPerMinute, unknownGlobalBurst, unknownGlobalPerSecond, trackedClients, unknownLeasePercent, maxQuarantinedPercent',
    ),
  },
);

const Duration = Type.String({ pattern: '^(\\d+h)?(\\d+m)?(\\d+s)?$', minLength: 2, ...expected('a duration like 1h, 30m, 90s or 1h30m') });

export const ConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        address: Ipv4,
        stateDir: Type.String({ minLength: 1, ...expected('a directory path') }),
        syncWrites: Type.Optional(
          Type.Boolean(expected('true (leases on stable storage before the ACK) or false (in the kernel before the ACK)')),
        ),
        maxDiscovered: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, ...expected('a number of machines, 1-10000000') })),
        drainSeconds: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: 3600,
            ...expected('seconds a graceful stop waits for TFTP and HTTP transfers in flight, 0-3600'),
          }),
        ),
      },
      { additionalProperties: false },
    ),
    dhcp: Type.Optional(
      Type.Object(
        {
          mode: Type.Union([Type.Literal('full'), Type.Literal('proxy'), Type.Literal('off')], expected('one of full, proxy, off')),
          port: Type.Optional(Port),
          proxyPort: Type.Optional(Port),
          interface: Type.Optional(Type.String({ minLength: 1, ...expected('a network interface name like br0') })),
          subnets: Type.Optional(Type.Array(SubnetSchema)),
          offerHoldSeconds: Type.Optional(Seconds),
          declineQuarantineSeconds: Type.Optional(Seconds),
          piProxyDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 5000, ...expected('milliseconds 0-5000') })),
          routerAdvertisements: Type.Optional(
            Type.Boolean(
              expected('true (send IPv6 router advertisements without prefix or default route, so iPXE stops waiting for IPv6) or false'),
            ),
          ),
          limits: Type.Optional(DhcpLimitsSchema),
        },
        { additionalProperties: false },
      ),
    ),
    tftp: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean(expected('true or false'))),
          port: Type.Optional(Port),
          root: Type.Optional(Type.String({ minLength: 1, ...expected('a directory path') })),
          addresses: Type.Optional(Type.Array(Ipv4, expected('a list of local IPv4 addresses to listen on'))),
          maxBlockSize: Type.Optional(
            Type.Integer({ minimum: 512, maximum: 65464, ...expected('a block size 512-65464 (1468 fits a 1500-byte MTU)') }),
          ),
          maxWindowSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, ...expected('a window size 1-65535') })),
          maxTransfers: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of concurrent transfers') })),
          maxTransfersPerClient: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of concurrent transfers to one client address 1-100000') }),
          ),
          maxTimeoutSeconds: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 255,
              ...expected('seconds 1-255: the largest timeout option honoured (a larger one is ignored)'),
            }),
          ),
          singlePort: Type.Optional(
            Type.Boolean(
              expected(
                'true (answer every transfer from the TFTP port itself, for clients behind NAT or a container port mapping) or false (each transfer from an ephemeral port, RFC 1350)',
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    http: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean(expected('true or false'))),
          port: Type.Optional(Port),
          host: Type.Optional(Type.String({ minLength: 1, ...expected('an address to listen on, e.g. 0.0.0.0') })),
          maxConnections: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of open connections 1-100000') }),
          ),
          maxConnectionsPerClient: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of open connections from one address 1-100000') }),
          ),
          headersTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 3600, ...expected("seconds 1-3600 to receive a request's headers") }),
          ),
          requestTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 3600, ...expected('seconds 1-3600 to receive a whole request') }),
          ),
          keepAliveTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 3600, ...expected('seconds 1-3600 an idle keep-alive connection stays open') }),
          ),
          idleTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 86400, ...expected('seconds 1-86400 a connection may move no byte either way') }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    nbd: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean(expected('true or false'))),
          port: Type.Optional(Port),
          host: Type.Optional(Type.String({ minLength: 1, ...expected('an address to listen on, e.g. 0.0.0.0') })),
          allow: Type.Optional(
            Type.Union([Type.Literal('leased'), Type.Literal('any')], expected('leased (addresses with a lease or a node address) or any')),
          ),
          backend: Type.Optional(
            Type.Union(
              [Type.Literal('builtin'), Type.Literal('nbd-server'), Type.Literal('nbdkit')],
              expected('one of builtin, nbd-server, nbdkit'),
            ),
          ),
          handshakeTimeoutSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 3600, ...expected('a number of seconds 1-3600 to reach transmission') }),
          ),
          maxConnections: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 100000, ...expected('a number of open NBD connections 1-100000') }),
          ),
          maxConnectionsPerClient: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 10000, ...expected('a number of open NBD connections per client address 1-10000') }),
          ),
          maxHandshakeOptions: Type.Optional(
            Type.Integer({ minimum: 8, maximum: 100000, ...expected('a number of options per NBD handshake 8-100000') }),
          ),
          maxBufferedReadMiB: Type.Optional(
            Type.Integer({
              minimum: 33,
              maximum: 1048576,
              ...expected('MiB of NBD read data held in memory, 33-1048576 (at least one 32 MiB request)'),
            }),
          ),
          exports: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: Type.String({ minLength: 1, ...expected('an export name') }),
                  file: Type.String({ minLength: 1, ...expected('an image file path') }),
                },
                { additionalProperties: false },
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    boot: Type.Optional(
      Type.Object(
        {
          bios: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
          uefiX64: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
          uefiArm64: Type.Optional(Type.String({ minLength: 1, ...expected('a boot file path under tftp.root') })),
          kernelArgs: Type.Optional(Type.String(expected('extra kernel arguments, e.g. "console=ttyS0"'))),
          templatesDir: Type.Optional(Type.String({ minLength: 1, ...expected('a directory of .hbs templates overriding templates/') })),
          signingKey: Type.Optional(
            Type.Object(
              {
                key: Type.String({ minLength: 1, ...expected('the PEM private key of the db key the site enrolled') }),
                cert: Type.String({ minLength: 1, ...expected('the PEM certificate of that key') }),
                passphraseFile: Type.Optional(Type.String({ minLength: 1, ...expected("a file holding the key's passphrase") })),
              },
              { additionalProperties: false },
            ),
          ),
          silentBootloaderSeconds: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 3600,
              ...expected('seconds (1-3600) a node may stay silent after fetching its bootloader'),
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    defaults: Type.Optional(Type.Object(layerFields, { additionalProperties: false })),
    profiles: Type.Optional(Type.Array(ProfileSchema)),
    nodes: Type.Optional(Type.Array(NodeSchema)),
    unknownNodes: Type.Optional(
      Type.Union(
        [Type.Literal('ignore'), Type.Literal('discover'), Type.Literal('boot-default')],
        expected('one of ignore, discover, boot-default'),
      ),
    ),
    kubernetes: Type.Optional(
      Type.Object(
        {
          apiServer: Type.String({
            pattern: '^[A-Za-z0-9.-]+:\\d{1,5}$',
            ...expected('the API server endpoint as host:port, e.g. 10.9.0.20:6443'),
          }),
          caCertFile: Type.Optional(
            Type.String({ minLength: 1, ...expected('the cluster CA certificate file (PEM), e.g. /etc/kubernetes/pki/ca.crt') }),
          ),
          caCertHash: Type.Optional(Type.String({ pattern: '^sha256:[0-9a-f]{64}$', ...expected('sha256:<64 lower-case hex digits>') })),
          kubeconfig: Type.Optional(
            Type.String({ minLength: 1, ...expected('a kubeconfig file allowed to create Secrets in kube-system') }),
          ),
          token: Type.Optional(
            Type.String({ pattern: '^[a-z0-9]{6}\\.[a-z0-9]{16}$', ...expected('a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}') }),
          ),
          tokenTtl: Type.Optional(Duration),
          version: Type.Optional(Type.String({ pattern: '^v?1\\.\\d+(\\.\\d+)?$', ...expected('a Kubernetes version like v1.31') })),
          admission: Type.Optional(
            Type.Union(
              [Type.Literal('auto'), Type.Literal('approve'), Type.Literal('tpm')],
              expected('one of auto, approve, tpm (who gets a join token: docs/security.md)'),
            ),
          ),
          tpm: Type.Optional(
            Type.Object(
              {
                trustOnFirstUse: Type.Optional(
                  Type.Boolean(
                    expected('true (a node with no registered EK has the EK of its first attestation registered) or false (the default)'),
                  ),
                ),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    api: Type.Optional(
      Type.Object(
        {
          token: Type.Optional(
            Type.String({ minLength: 16, ...expected('a bearer token of at least 16 characters (or set BOOTFARM_API_TOKEN)') }),
          ),
          protectReads: Type.Optional(
            Type.Boolean(
              expected('true (reads need the token too; the default) or false (reads are open to anyone who can reach the API)'),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    pi: Type.Optional(
      Type.Object(
        {
          signingKey: Type.Optional(
            Type.String({
              minLength: 1,
              ...expected('an RSA-2048 private key (PEM) that signs boot.img for piBoot: http (default: generated into server.stateDir)'),
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    images: Type.Optional(
      Type.Object(
        {
          dir: Type.String({ minLength: 1, ...expected('a directory path') }),
          default: Type.Optional(
            Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]*$', ...expected('an image name (letters, digits, . _ -)') }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    store: Type.Optional(
      Type.Object(
        {
          backend: Type.Optional(
            Type.Union(
              [Type.Literal('file'), Type.Literal('etcd')],
              expected('one of file (one instance; the default), etcd (instances sharing leases)'),
            ),
          ),
          etcd: Type.Optional(
            Type.Object(
              {
                // All http or all https (then tls.ca is required): checked with the files in server/config/etcd-tls.ts.
                endpoints: Type.Array(
                  Type.String({
                    pattern: '^https?://[A-Za-z0-9.-]+:\\d{1,5}$',
                    ...expected('an etcd client URL like http://10.9.0.5:2379 or https://etcd1.example.com:2379'),
                  }),
                  { minItems: 1, ...expected('a non-empty list of etcd client URLs like [http://10.9.0.5:2379]') },
                ),
                prefix: Type.Optional(
                  Type.String({ pattern: '^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$', ...expected('a key prefix like /bootfarm') }),
                ),
                claimTimeoutMs: Type.Optional(
                  Type.Integer({ minimum: 100, maximum: 10_000, ...expected('a whole number of milliseconds 100-10000') }),
                ),
                tls: Type.Optional(
                  Type.Object(
                    {
                      ca: Type.String({
                        minLength: 1,
                        ...expected("a PEM file of the CA certificate(s) that signed the etcd members' server certificates"),
                      }),
                      cert: Type.Optional(
                        Type.String({
                          minLength: 1,
                          ...expected("a PEM file of this instance's client certificate (etcd --client-cert-auth)"),
                        }),
                      ),
                      key: Type.Optional(
                        Type.String({ minLength: 1, ...expected('a PEM file of the private key of tls.cert, mode 0600 or stricter') }),
                      ),
                    },
                    { additionalProperties: false, ...expected('a mapping with ca, and cert and key for client certificate auth') },
                  ),
                ),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        {
          level: Type.Union(
            ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)),
            expected('a log level: fatal, error, warn, info, debug or trace'),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof ConfigSchema>;
export type NodeEntry = Static<typeof NodeSchema>;
export type ProfileEntry = Static<typeof ProfileSchema>;
export type LtsValue = string | number | boolean;
