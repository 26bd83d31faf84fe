// Which lease claims an instance uses (store.backend): kept apart from both
// backends so neither imports the other.
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import type { Metrics } from '../metrics.js';
import { SetupError } from '../errors.js';
import { hostname } from 'node:os';
import { readPackageInfo } from '../cli/package-info.js';
import { EtcdLeaseClaims } from './etcd-lease-claims.js';
import { loadEtcdTls } from './etcd-tls.js';
import { imagesHeld, instanceId, instanceIdFile } from './instance-registry.js';
import { LocalLeaseClaims, type LeaseClaims } from './lease-claims.js';

export async function openLeaseClaims(config: ResolvedConfig, logger: Logger, metrics?: Metrics): Promise<LeaseClaims> {
  const etcd = config.store.etcd;
  if (config.store.backend !== 'etcd' || !etcd) return new LocalLeaseClaims();
  const id = instanceId(config.server.stateDir);
  const startedAt = Date.now();
  const { version } = readPackageInfo();
  const interfaces = config.dhcp.interface ? [config.dhcp.interface] : [];
  const segments = config.dhcp.subnets.map((s) => s.cidr);
  // Before the try: a bad file is named as itself, not as etcd not answering.
  const tls = loadEtcdTls(etcd.tls);
  try {
    return await EtcdLeaseClaims.open({
      endpoints: etcd.endpoints,
      tls,
      prefix: etcd.prefix,
      logger,
      claimTimeoutMs: etcd.claimTimeoutMs,
      onHealth: (health) => metrics?.leaseStoreHealthy.set(health.healthy ? 1 : 0),
      registry: {
        idFile: instanceIdFile(config.server.stateDir),
        self: async () => ({
          id,
          hostname: hostname(),
          address: config.server.address,
          version,
          startedAt,
          interfaces,
          segments,
          images: await imagesHeld(config.images.dir),
        }),
        onVerdict: (verdict) => {
          metrics?.clockSkewSeconds.set((verdict.worst?.skewMs ?? 0) / 1000);
          metrics?.clockSkewStopped.set(verdict.stop ? 1 : 0);
        },
      },
    });
  } catch (err) {
    // Without the claims no address may be given: the start stops, saying where etcd was looked for.
    const reason = (err as Error).message.split('\n')[0];
    throw new SetupError(`store.etcd: cannot read ${etcd.prefix}/leases/ from ${etcd.endpoints.join(', ')} (${reason})`);
  }
}
