// Bootstrap tokens (Kubernetes docs, bootstrap-tokens.md; docs/protocol-notes.md §7): `[a-z0-9]{6}.[a-z0-9]{16}`, the
// first part public (the Secret's name), the second secret. Generated from a
// CSPRNG by rejection sampling, so every character is uniform over a-z0-9.
import { randomBytes } from 'node:crypto';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>`: what kubeadm join takes. Never logged. */
  token: string;
}

export const TOKEN_PATTERN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** 252 = 7 * 36: bytes at or above it are dropped so no character is favoured. */
const UNBIASED_LIMIT = 252;

function randomTokenPart(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= UNBIASED_LIMIT) continue;
      out += ALPHABET[byte % ALPHABET.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export function generateBootstrapToken(): BootstrapToken {
  const id = randomTokenPart(6);
  const secret = randomTokenPart(16);
  return { id, secret, token: `${id}.${secret}` };
}

/** Splits a static token from the configuration (already checked against TOKEN_PATTERN). */
export function parseBootstrapToken(token: string): BootstrapToken {
  const [id, secret] = token.split('.') as [string, string];
  return { id, secret, token };
}

const DEFAULT_NODE_TOKEN_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

/** The kube-system Secret that makes a bootstrap token valid (bootstrap-tokens.md). */
export interface BootstrapTokenSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: 'kube-system'; labels: Record<string, string> };
  type: 'bootstrap.kubernetes.io/token';
  stringData: {
    'token-id': string;
    'token-secret': string;
    expiration: string;
    'usage-bootstrap-authentication': 'true';
    'usage-bootstrap-signing': 'true';
    'auth-extra-groups': string;
    description: string;
  };
}

export function bootstrapTokenSecret(token: BootstrapToken, nodeName: string, mac: string, expiresAt: Date): BootstrapTokenSecret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    // The label lets bootfarm find its own tokens again (cleanup after a restart).
    metadata: { name: `bootstrap-token-${token.id}`, namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': 'bootfarm' } },
    type: 'bootstrap.kubernetes.io/token',
    stringData: {
      'token-id': token.id,
      'token-secret': token.secret,
      // RFC 3339 in UTC, without milliseconds, as kubeadm writes it.
      expiration: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      'usage-bootstrap-authentication': 'true',
      // Discovery (the JWS over cluster-info) needs signing usage.
      'usage-bootstrap-signing': 'true',
      // kubeadm's RBAC (CSR posting and auto-approval) is bound to this group.
      'auth-extra-groups': DEFAULT_NODE_TOKEN_GROUP,
      description: `bootfarm: join token for node ${nodeName} (${mac})`,
    },
  };
}
