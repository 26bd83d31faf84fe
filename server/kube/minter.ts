// Who creates and deletes the per-node bootstrap tokens. The Kubernetes API
// minter is the real one; the static minter serves a token from the
// configuration file (discouraged, and said so at start).
import { readFileSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { bootstrapTokenSecret, generateBootstrapToken, parseBootstrapToken, type BootstrapToken } from './token.js';
import { SetupError } from '../errors.js';

export interface MintedToken extends BootstrapToken {
  /** Epoch ms; undefined when bootfarm did not set an expiry (a static token's is the cluster's business). */
  expiresAt: number | undefined;
}

export interface TokenMinter {
  readonly kind: 'kubernetes-api' | 'static';
  mint(node: { hostname: string; mac: string }, ttlSeconds: number): Promise<MintedToken>;
  /** Deletes the token; a token that is already gone is not an error. */
  revoke(tokenId: string): Promise<void>;
}

/** Token id collisions are possible (36^6): retried with a fresh token a few times. */
const MINT_ATTEMPTS = 3;

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const v of [e.code, e.statusCode, e.response?.statusCode]) if (typeof v === 'number') return v;
  return undefined;
}

export class KubeApiTokenMinter implements TokenMinter {
  readonly kind = 'kubernetes-api' as const;
  private readonly api: CoreV1Api;

  constructor(kubeconfigFile: string) {
    const kc = new KubeConfig();
    try {
      kc.loadFromString(readFileSync(kubeconfigFile, 'utf8'));
    } catch (err) {
      throw new SetupError(`kubernetes.kubeconfig ${kubeconfigFile}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (!kc.getCurrentCluster()) throw new SetupError(`kubernetes.kubeconfig ${kubeconfigFile}: no current cluster (set current-context)`);
    this.api = kc.makeApiClient(CoreV1Api);
  }

  async mint(node: { hostname: string; mac: string }, ttlSeconds: number): Promise<MintedToken> {
    let lastError: unknown;
    for (let attempt = 0; attempt < MINT_ATTEMPTS; attempt++) {
      const token = generateBootstrapToken();
      const expiresAt = Date.now() + ttlSeconds * 1000;
      try {
        await this.api.createNamespacedSecret({
          namespace: 'kube-system',
          body: bootstrapTokenSecret(token, node.hostname, node.mac, new Date(expiresAt)),
        });
        return { ...token, expiresAt };
      } catch (err) {
        lastError = err;
        if (statusOf(err) !== 409) break;
      }
    }
    throw new Error(`creating the bootstrap token Secret failed: ${describe(lastError)}`);
  }

  async revoke(tokenId: string): Promise<void> {
    try {
      await this.api.deleteNamespacedSecret({ name: `bootstrap-token-${tokenId}`, namespace: 'kube-system' });
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw new Error(`deleting bootstrap-token-${tokenId} failed: ${describe(err)}`);
    }
  }
}

/** The API client's errors carry the status and the server's message in different places. */
function describe(err: unknown): string {
  const status = statusOf(err);
  const body = (err as { body?: unknown }).body;
  let message = (err as Error)?.message ?? String(err);
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) message = parsed.message;
    } catch {
      // not JSON
    }
  }
  return status ? `HTTP ${status}: ${message.split('\n')[0]}` : (message.split('\n')[0] ?? 'unknown error');
}

export class StaticTokenMinter implements TokenMinter {
  readonly kind = 'static' as const;
  constructor(private readonly token: string) {}

  async mint(): Promise<MintedToken> {
    // A static token's lifetime is the cluster's business; nothing is created, and
    // no expiry is invented (a far-future epoch is not a valid Date to log).
    return { ...parseBootstrapToken(this.token), expiresAt: undefined };
  }

  async revoke(): Promise<void> {
    // Shared by every node: never deleted by bootfarm.
  }
}
