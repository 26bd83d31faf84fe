// The bootfarm process: opens the store, then starts every enabled service.
// Later services (TFTP, HTTP, NBD) join here behind the same start/stop contract.
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/load.js';
import { FileStore } from './store/store.js';
import { Metrics } from './metrics.js';
import { DhcpService } from './dhcp/server/dhcp-service.js';
import type { BootPolicySettings } from './boot/policy.js';
import { TftpServer, type FileServedEvent } from './tftp/server.js';
import { ResolverChain } from './boot/files/resolver.js';
import { StaticRootResolver } from './boot/files/static-root.js';
import { FileCache } from './boot/files/file-cache.js';
import { networkInterfaces } from 'node:os';

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
  tftp: TftpServer | undefined;
  private readonly fileCache = new FileCache();

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
      if (config.tftp.enabled) {
        const files = new ResolverChain([new StaticRootResolver(config.tftp.root, this.fileCache)]);
        this.tftp = new TftpServer(
          {
            port: config.tftp.port,
            addresses: config.tftp.addresses ?? localIpv4Addresses(),
            limits: { maxBlockSize: config.tftp.maxBlockSize, maxWindowSize: config.tftp.maxWindowSize, defaultTimeoutMs: 1000 },
            maxTransfers: config.tftp.maxTransfers,
          },
          files, logger.child({ svc: 'tftp' }), this.metrics, (event) => this.recordFileServed(event),
        );
        await this.tftp.start();
        this.services.push(this.tftp);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** A file fetched by a known node goes on its boot timeline. */
  private recordFileServed(event: FileServedEvent): void {
    const lease = this.store?.leaseByIp(event.client);
    const node = lease ? this.store?.nodeByMac(lease.mac) : undefined;
    if (!node || !this.store) return;
    this.store.recordEvent({
      at: new Date().toISOString(),
      mac: node.mac,
      type: event.result.outcome === 'complete' ? 'tftp.file' : `tftp.${event.result.outcome}`,
      detail: { path: event.path, bytes: event.result.bytes, ms: event.result.durationMs, from: event.from },
    });
  }

  async stop(): Promise<void> {
    for (const s of this.services.reverse()) await s.stop();
    this.services.length = 0;
    await this.store?.close();
    this.store = undefined;
  }
}

function localIpv4Addresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
}
