// A small stand-in for the parts of the Kubernetes API a bootstrap-token join
// touches, for the emulation lab and the tests (no Kubernetes binaries here).
// It checks every request the way the real API server would for these paths:
//   - Secrets in kube-system: create (type, name = bootstrap-token-<token-id>,
//     the token fields, usages, extra groups, RFC 3339 UTC expiration), get,
//     list, delete; admin bearer token required;
//   - ConfigMap kube-public/cluster-info, anonymous, with one detached JWS
//     `jws-kubeconfig-<id>` per valid token (what the bootstrapsigner adds);
//   - POST /api/v1/nodes with a bootstrap token as bearer: what the kubelet's
//     TLS bootstrap amounts to here; the node records which token it used.
// Expired tokens are neither signed nor accepted (the tokencleaner's effect).
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface FakeSecret {
  name: string;
  type: string;
  data: Record<string, string>;
  labels: Record<string, string>;
  createdAt: string;
}

export interface FakeNode {
  name: string;
  labels: Record<string, string>;
  taints: unknown[];
  /** The bootstrap token id the node authenticated with. */
  tokenId: string;
  createdAt: string;
}

export interface FakeRequestRecord {
  method: string;
  path: string;
  status: number;
  /** For mutations: a short description of the object. */
  object?: string;
}

export interface FakeKubeApiOptions {
  host: string;
  port: number;
  certPem: string;
  keyPem: string;
  caPem: string;
  /** Bearer token of the cluster admin (what bootfarm's kubeconfig carries). */
  adminToken: string;
  /** Failure injection: registrations of these node names are forbidden, as an admission policy would. */
  refuseNodes?: string[];
  /** Called after every request and state change (the runner prints them). */
  onRecord?: (record: FakeRequestRecord) => void;
}

const TOKEN_ID = /^[a-z0-9]{6}$/;
const TOKEN_SECRET = /^[a-z0-9]{16}$/;
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** Detached JWS (header..signature), HS256 keyed by the whole token: what kubeadm discovery verifies. */
function detachedJws(payload: string, tokenId: string, tokenSecret: string): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: tokenId }));
  const signature = createHmac('sha256', `${tokenId}.${tokenSecret}`)
    .update(`${header}.${b64url(payload)}`)
    .digest();
  return `${header}..${b64url(signature)}`;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class FakeKubeApi {
  readonly secrets = new Map<string, FakeSecret>();
  readonly nodes = new Map<string, FakeNode>();
  readonly requests: FakeRequestRecord[] = [];
  private server: https.Server | undefined;
  private boundPort = 0;

  constructor(private readonly options: FakeKubeApiOptions) {}

  get port(): number {
    return this.boundPort;
  }

  get endpoint(): string {
    return `${this.options.host}:${this.boundPort}`;
  }

  async start(): Promise<void> {
    this.server = https.createServer({ cert: this.options.certPem, key: this.options.keyPem }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.options.port, this.options.host, () => resolve());
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  /** A kubeconfig for bootfarm: this server, its CA, the admin token. */
  kubeconfig(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: lab',
      '  cluster:',
      `    server: https://${this.endpoint}`,
      `    certificate-authority-data: ${Buffer.from(this.options.caPem).toString('base64')}`,
      'users:',
      '- name: bootfarm',
      '  user:',
      `    token: ${this.options.adminToken}`,
      'contexts:',
      '- name: lab',
      '  context: { cluster: lab, user: bootfarm }',
      'current-context: lab',
      '',
    ].join('\n');
  }

  /** Tokens that are valid now: present, unexpired, with authentication usage. */
  private validTokens(now: number): Array<{ id: string; secret: string; signing: boolean }> {
    const out: Array<{ id: string; secret: string; signing: boolean }> = [];
    for (const s of this.secrets.values()) {
      if (s.type !== 'bootstrap.kubernetes.io/token') continue;
      const expiration = s.data.expiration;
      if (expiration && Date.parse(expiration) <= now) continue;
      out.push({
        id: s.data['token-id'] as string,
        secret: s.data['token-secret'] as string,
        signing: s.data['usage-bootstrap-signing'] === 'true',
      });
    }
    return out;
  }

  private record(rec: FakeRequestRecord): void {
    this.requests.push(rec);
    this.options.onRecord?.(rec);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const method = req.method ?? 'GET';
    let status = 500;
    let object: string | undefined;
    try {
      const body = await readBody(req);
      const answer = this.route(method, url, req.headers.authorization, body);
      status = answer.status;
      object = answer.object;
      send(res, answer.status, answer.body);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'InternalError', (err as Error).message);
      status = e.code;
      send(res, e.code, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: e.message,
        reason: e.reason,
        code: e.code,
      });
    }
    this.record({ method, path: url.pathname, status, object });
  }

  private requireAdmin(authorization: string | undefined): void {
    const given = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(this.options.adminToken);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
  }

  private route(
    method: string,
    url: URL,
    authorization: string | undefined,
    body: string,
  ): { status: number; body: unknown; object?: string } {
    const path = url.pathname;
    const secretsPath = '/api/v1/namespaces/kube-system/secrets';
    if (path === secretsPath && method === 'POST') {
      this.requireAdmin(authorization);
      const secret = validateBootstrapSecret(parseJson(body));
      if (this.secrets.has(secret.name)) throw new HttpError(409, 'AlreadyExists', `secrets "${secret.name}" already exists`);
      this.secrets.set(secret.name, secret);
      return { status: 201, body: secretObject(secret), object: `secret ${secret.name}` };
    }
    if (path === secretsPath && method === 'GET') {
      this.requireAdmin(authorization);
      return {
        status: 200,
        body: { kind: 'SecretList', apiVersion: 'v1', metadata: {}, items: [...this.secrets.values()].map(secretObject) },
      };
    }
    if (path.startsWith(`${secretsPath}/`)) {
      this.requireAdmin(authorization);
      const name = decodeURIComponent(path.slice(secretsPath.length + 1));
      const secret = this.secrets.get(name);
      if (!secret) throw new HttpError(404, 'NotFound', `secrets "${name}" not found`);
      if (method === 'GET') return { status: 200, body: secretObject(secret) };
      if (method === 'DELETE') {
        this.secrets.delete(name);
        return {
          status: 200,
          body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: 'secrets' } },
          object: `secret ${name}`,
        };
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported here`);
    }
    if (path === '/api/v1/namespaces/kube-public/configmaps/cluster-info' && method === 'GET') {
      // Anonymous, as kubeadm's discovery reads it before it trusts anything.
      const kubeconfig = this.clusterInfoKubeconfig();
      const data: Record<string, string> = { kubeconfig };
      for (const token of this.validTokens(Date.now()))
        if (token.signing) data[`jws-kubeconfig-${token.id}`] = detachedJws(kubeconfig, token.id, token.secret);
      return {
        status: 200,
        body: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'cluster-info', namespace: 'kube-public' }, data },
      };
    }
    if (path === '/api/v1/nodes' && method === 'POST') {
      const given = /^Bearer ([a-z0-9]{6})\.([a-z0-9]{16})$/.exec(authorization ?? '');
      const token = given ? this.validTokens(Date.now()).find((t) => t.id === given[1] && t.secret === given[2]) : undefined;
      if (!token) throw new HttpError(401, 'Unauthorized', 'Unauthorized: not a valid bootstrap token');
      const parsed = parseJson(body) as { metadata?: { name?: unknown; labels?: unknown }; spec?: { taints?: unknown } };
      const name = parsed.metadata?.name;
      if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name))
        throw new HttpError(422, 'Invalid', 'metadata.name: Invalid value');
      if (this.nodes.has(name)) throw new HttpError(409, 'AlreadyExists', `nodes "${name}" already exists`);
      if (this.options.refuseNodes?.includes(name))
        throw new HttpError(403, 'Forbidden', `nodes "${name}" is forbidden: the lab refuses this node's join`);
      const node: FakeNode = {
        name,
        labels: (parsed.metadata?.labels ?? {}) as Record<string, string>,
        taints: Array.isArray(parsed.spec?.taints) ? parsed.spec.taints : [],
        tokenId: token.id,
        createdAt: new Date().toISOString(),
      };
      this.nodes.set(name, node);
      return {
        status: 201,
        body: { kind: 'Node', apiVersion: 'v1', metadata: { name, labels: node.labels }, spec: { taints: node.taints } },
        object: `node ${name} (token ${token.id})`,
      };
    }
    if (path === '/api/v1/nodes' && method === 'GET') {
      this.requireAdmin(authorization);
      return {
        status: 200,
        body: {
          kind: 'NodeList',
          apiVersion: 'v1',
          items: [...this.nodes.values()].map((n) => ({ metadata: { name: n.name, labels: n.labels }, spec: { taints: n.taints } })),
        },
      };
    }
    throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${method} ${path})`);
  }

  private clusterInfoKubeconfig(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: ""',
      '  cluster:',
      `    certificate-authority-data: ${Buffer.from(this.options.caPem).toString('base64')}`,
      `    server: https://${this.endpoint}`,
      'contexts: null',
      'current-context: ""',
      'preferences: {}',
      'users: null',
      '',
    ].join('\n');
  }
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new HttpError(400, 'BadRequest', 'the body is not JSON');
  }
}

/** The checks the API server and the bootstrap-token authenticator apply to such a Secret. */
function validateBootstrapSecret(input: unknown): FakeSecret {
  const obj = input as {
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown; labels?: unknown };
    type?: unknown;
    stringData?: Record<string, unknown>;
    data?: Record<string, unknown>;
  };
  const invalid = (field: string, why: string) => new HttpError(422, 'Invalid', `Secret is invalid: ${field}: ${why}`);
  if (obj?.kind !== undefined && obj.kind !== 'Secret') throw invalid('kind', 'must be Secret');
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj.data ?? {})) data[k] = Buffer.from(String(v), 'base64').toString('utf8');
  for (const [k, v] of Object.entries(obj.stringData ?? {})) data[k] = String(v);
  const name = obj.metadata?.name;
  if (obj.metadata?.namespace !== undefined && obj.metadata.namespace !== 'kube-system')
    throw invalid('metadata.namespace', 'does not match the namespace of the request');
  if (obj.type !== 'bootstrap.kubernetes.io/token')
    throw invalid('type', 'this fake only stores bootstrap tokens (bootstrap.kubernetes.io/token)');
  const id = data['token-id'] ?? '';
  if (!TOKEN_ID.test(id)) throw invalid('data[token-id]', 'must match [a-z0-9]{6}');
  if (!TOKEN_SECRET.test(data['token-secret'] ?? '')) throw invalid('data[token-secret]', 'must match [a-z0-9]{16}');
  if (name !== `bootstrap-token-${id}`) throw invalid('metadata.name', `must be bootstrap-token-${id}`);
  if (data['usage-bootstrap-authentication'] !== 'true')
    throw invalid('data[usage-bootstrap-authentication]', 'must be "true" for a join token');
  if (data['usage-bootstrap-signing'] !== 'true')
    throw invalid('data[usage-bootstrap-signing]', 'must be "true" (discovery verifies the cluster-info signature)');
  const groups = data['auth-extra-groups'];
  if (groups !== undefined && !groups.split(',').every((g) => g.startsWith('system:bootstrappers:')))
    throw invalid('data[auth-extra-groups]', 'every group must start with system:bootstrappers:');
  const expiration = data.expiration;
  if (expiration !== undefined && (!RFC3339_UTC.test(expiration) || Number.isNaN(Date.parse(expiration))))
    throw invalid('data[expiration]', 'must be an RFC 3339 time in UTC');
  return {
    name,
    type: obj.type,
    data,
    labels: (obj.metadata?.labels ?? {}) as Record<string, string>,
    createdAt: new Date().toISOString(),
  };
}

function secretObject(secret: FakeSecret): unknown {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data)) data[k] = Buffer.from(v).toString('base64');
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: { name: secret.name, namespace: 'kube-system', labels: secret.labels, creationTimestamp: secret.createdAt },
    type: secret.type,
    data,
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) reject(new HttpError(413, 'RequestEntityTooLarge', 'body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
