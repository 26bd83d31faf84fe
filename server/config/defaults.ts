// Named defaults of budgets that code beyond the loader needs as well (the
// store's own default when no configuration is given, for one).
import type { DhcpLimits } from './types.js';

/** server.maxDiscovered when the configuration does not say. */
export const DEFAULT_MAX_DISCOVERED = 10_000;

/**
 * server.drainSeconds when the configuration does not say: under docker stop's
 * 10 s before SIGKILL, leaving time to stop the other services and write state.
 */
export const DEFAULT_DRAIN_SECONDS = 8;

export const DEFAULT_DHCP_LIMITS: DhcpLimits = {
  // A PXE ROM, iPXE, the initramfs and the OS each run DORA once per boot, with
  // retries: 30 at once and one every 2 s covers a boot loop, not a flood.
  unknownClientBurst: 30,
  unknownClientPerMinute: 30,
  // A classroom of 100 machines powered on together sends well under 2000.
  unknownGlobalBurst: 2000,
  unknownGlobalPerSecond: 500,
  trackedClients: 10_000,
  // Addresses for machines the inventory will later name (and for enrolment).
  unknownLeasePercent: 90,
  maxQuarantinedPercent: 10,
};
