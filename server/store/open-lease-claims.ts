// Which lease claims an instance uses (store.backend): kept apart from both
// backends so neither imports the other.
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import { EtcdLeaseClaims } from './etcd-lease-claims.js';
import { LocalLeaseClaims, type LeaseClaims } from './lease-claims.js';

export async function openLeaseClaims(config: ResolvedConfig, logger: Logger): Promise<LeaseClaims> {
  const etcd = config.store.etcd;
  if (config.store.backend !== 'etcd' || !etcd) return new LocalLeaseClaims();
  return EtcdLeaseClaims.open({ endpoints: etcd.endpoints, prefix: etcd.prefix, logger });
}
