// The bootfarm process: opens the store, then starts every enabled service.
// Later services (TFTP, HTTP, NBD) join here behind the same start/stop contract.
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/load.js';
import { FileStore } from './store/store.js';
import { Metrics } from './metrics.js';
import { DhcpService } from './dhcp/server/dhcp-service.js';
import type { BootPolicySettings } from './boot/policy.js';

export interface RunningService {
  stop(): Promise<void>;
}

export function policySettings(config: ResolvedConfig): BootPolicySettings {
  return { serverAddress: config.server.address, httpPort: config.http.port, bootFiles: config.boot };
}

export class Bootfarm {
  readonly metrics = new Metrics();
  private readonly services: RunningService[] = [];
  private store: FileStore | undefined;
  dhcp: DhcpService | undefined;

  constructor(private readonly config: ResolvedConfig, private readonly logger: Logger) {}

  async start(): Promise<void> {
    const { config, logger } = this;
    const opened = await FileStore.open(config.server.stateDir, config.nodes);
    this.store = opened.store;
    if (opened.skippedLines > 0) logger.warn({ skippedLines: opened.skippedLines, stateDir: config.server.stateDir }, 'state journal had torn lines (an interrupted write); they were never acknowledged and are ignored');
    logger.info({ stateDir: config.server.stateDir, nodes: this.store.nodes().length, leases: this.store.leases().length }, 'state loaded');
    try {
      if (config.dhcp.mode !== 'off') {
        this.dhcp = new DhcpService({ config, store: this.store, metrics: this.metrics, logger: logger.child({ svc: 'dhcp' }), policy: policySettings(config) });
        await this.dhcp.start();
        this.services.push(this.dhcp);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const s of this.services.reverse()) await s.stop();
    this.services.length = 0;
    await this.store?.close();
    this.store = undefined;
  }
}
