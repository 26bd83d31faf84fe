// Which lease claims an instance uses (store.backend): kept apart from both
// backends so neither imports the other.
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import type { Metrics } from '../metrics.js';
import { SetupError } from '../errors.js';
import { EtcdLeaseClaims } from './etcd-lease-claims.js';
import { LocalLeaseClaims, type LeaseClaims } from './lease-claims.js';

export async function openLeaseClaims(config: ResolvedConfig, logger: Logger, metrics?: Metrics): Promise<LeaseClaims> {
  const etcd = config.store.etcd;
  if (config.store.backend !== 'etcd' || !etcd) return new LocalLeaseClaims();
  try {
    return await EtcdLeaseClaims.open({
      endpoints: etcd.endpoints,
      prefix: etcd.prefix,
      logger,
      claimTimeoutMs: etcd.claimTimeoutMs,
      onHealth: (health) => metrics?.leaseStoreHealthy.set(health.healthy ? 1 : 0),
    });
  } catch (err) {
    // Without the claims no address may be given: the start stops, saying where etcd was looked for.
    const reason = (err as Error).message.split('\n')[0];
    throw new SetupError(`store.etcd: cannot read ${etcd.prefix}/leases/ from ${etcd.endpoints.join(', ')} (${reason})`);
  }
}
