// The bootfarm process: opens the store, then starts every enabled service (DHCP
// with its router advertisements, TFTP, HTTP, NBD, the control socket) behind one
// start/stop contract, and stops them in reverse order.
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config/types.js';
import { FileStore } from './store/store.js';
import { Metrics } from './metrics.js';
import { openLeaseClaims } from './store/open-lease-claims.js';
import type { LeaseClaims } from './store/lease-claims.js';
import { DhcpService } from './dhcp/server/dhcp-service.js';
import { SilentBootWatch } from './boot/silent-boot-watch.js';
import { feedOf } from './http/event-feed.js';
import type { BootPolicySettings } from './boot/policy.js';
import { TftpServer } from './tftp/server.js';
import { ResolverChain } from './boot/files/resolver.js';
import { StaticRootResolver } from './boot/files/static-root.js';
import { FileCache } from './boot/files/file-cache.js';
import { networkInterfaces } from 'node:os';
import { statSync } from 'node:fs';
import { GeneratedFileResolver } from './boot/files/generated.js';
import { ImageFileResolver } from './boot/files/images.js';
import { PiHttpBootResolver } from './pi/http-boot.js';
import { Inventory } from './inventory/inventory.js';
import { RouterAdvertiser } from './dhcp/ra/radvd.js';
import { BootSessions } from './join/boot-sessions.js';
import { TpmAdmission } from './join/tpm-admission.js';
import { EkRegistry } from './join/tpm-ek-registry.js';
import { SessionBootScripts } from './join/boot-script-issuer.js';
import { KubeApiTokenMinter, StaticTokenMinter, type TokenMinter } from './kube/minter.js';
import { TemplateSet } from './config/templates.js';
import { HttpBootServer } from './http/server.js';
import { NbdServer, type AttachedClient } from './nbd/server.js';
import type { NbdExport } from './nbd/session.js';
import type { RootHolders } from './image/gc.js';
import { ImageExportCatalog } from './nbd/catalog.js';
import { NbdkitBackend } from './nbd/backends/nbdkit.js';
import { NbdServerBackend } from './nbd/backends/nbd-server.js';
import { rootAccessPolicy } from './boot/root-access.js';
import { LiveConfig } from './config/live.js';
import { reloadConfig, type ReloadOutcome } from './reload.js';
import { ControlSocket, controlSocketPath } from './control-socket.js';

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
  inventory: Inventory | undefined;
  sessions: BootSessions | undefined;
  /** kubernetes.admission: tpm only: which boots proved their node's TPM (isAttested). */
  tpm: TpmAdmission | undefined;
  dhcp: DhcpService | undefined;
  /** Full DHCP mode: where addresses are claimed (store.backend); its health is on /healthz. */
  private leaseClaims: LeaseClaims | undefined;
  tftp: TftpServer | undefined;
  http: HttpBootServer | undefined;
  nbd: NbdServer | undefined;
  private readonly fileCache = new FileCache();
  /** The configuration in force; a reload swaps it (server/reload.ts). */
  private live: LiveConfig | undefined;

  /** repairState: `bootfarm serve --repair` (server/store/state-reader.ts). */
  constructor(
    private readonly config: ResolvedConfig,
    private readonly logger: Logger,
    private readonly options: { repairState?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    const { config, logger } = this;
    // Templates first: a broken one fails the start before the state directory is touched.
    const live = new LiveConfig(config, new TemplateSet(config.boot.templatesDir));
    this.live = live;
    const opened = await FileStore.open(config.server.stateDir, config.nodes, config.server.syncWrites, {
      maxDiscovered: config.server.maxDiscovered,
      repair: this.options.repairState === true,
      repairCommand: `bootfarm serve --repair --config ${config.file}`,
      metrics: this.metrics,
      logger: logger.child({ svc: 'state' }),
    });
    this.store = opened.store;
    if (opened.skippedLines > 0)
      logger.warn(
        { skippedLines: opened.skippedLines, stateDir: config.server.stateDir },
        'state journal had torn lines (an interrupted write); they were never acknowledged and are ignored',
      );
    logger.info({ stateDir: config.server.stateDir, nodes: this.store.nodes().length, leases: this.store.leases().length }, 'state loaded');
    const inventory = new Inventory(live, this.store);
    this.inventory = inventory;
    try {
      const sessions = new BootSessions({
        store: this.store,
        kubernetes: config.kubernetes,
        minter: this.tokenMinter(),
        metrics: this.metrics,
        logger: logger.child({ svc: 'join' }),
        // kubernetes.admission: tpm: set below, read when a join is asked for.
        attested: (mac, bootId) => this.tpm?.isAttested(mac, bootId) ?? false,
        nodeByMac: (mac) => inventory.byMac(mac),
      });
      await sessions.start();
      this.sessions = sessions;
      this.services.push(sessions);
      // A node silent after fetching its bootloader gets a hint on its timeline (server/boot/silent-boot-watch.ts).
      this.services.push(
        new SilentBootWatch({
          store: this.store,
          feed: feedOf(this.store),
          tftpRoot: config.tftp.root,
          waitMs: config.boot.silentBootloaderSeconds * 1000,
          nodeByMac: (mac) => inventory.knownByMac(mac),
          logger: logger.child({ svc: 'boot' }),
        }),
      );
      if (config.kubernetes?.admission === 'tpm') {
        this.tpm = new TpmAdmission({
          registry: EkRegistry.open(config.server.stateDir, config.file),
          trustOnFirstUse: config.kubernetes.tpm.trustOnFirstUse,
          store: this.store,
          metrics: this.metrics,
          logger: logger.child({ svc: 'tpm' }),
          // Minted as soon as the boot is attested: the cluster signs cluster-info meanwhile.
          onAttested: (mac, bootId) => sessions.noteAdmitted(mac, bootId),
        });
      }
      if (config.dhcp.mode !== 'off') {
        // Opened before the DHCP service and stopped after it (services stop in reverse).
        const leaseClaims =
          config.dhcp.mode === 'full' ? await openLeaseClaims(config, logger.child({ svc: 'store' }), this.metrics) : undefined;
        if (leaseClaims) this.services.push(leaseClaims);
        this.leaseClaims = leaseClaims;
        this.dhcp = new DhcpService({
          config,
          store: this.store,
          metrics: this.metrics,
          logger: logger.child({ svc: 'dhcp' }),
          policy: policySettings(config),
          inventory,
          onNodeDiscover: (node) => sessions.noteDiscover(node),
          leaseClaims,
        });
        await this.dhcp.start();
        this.services.push(this.dhcp);
        if (config.dhcp.routerAdvertisements && config.dhcp.interface) {
          const advertiser = new RouterAdvertiser(config.dhcp.interface, config.server.stateDir, logger.child({ svc: 'ra' }));
          await advertiser.start();
          this.services.push(advertiser);
        }
      }
      // One ordered chain serves TFTP and HTTP alike: the node's generated files,
      // then its image's files, then static files under tftp.root.
      const nodes = inventory;
      // Root images go over TFTP and HTTP only to addresses NBD would admit (nbd.allow).
      const rootAccess = rootAccessPolicy({ allow: config.nbd.allow, store: this.store, nodes: inventory });
      const bootScripts = new SessionBootScripts(sessions, inventory, logger.child({ svc: 'boot' }));
      // Pi 4/5 HTTP boot (piBoot: http): pi/<serial>/boot.img and boot.sig, authorised as the node's cmdline.txt is.
      const piHttp = new PiHttpBootResolver(live, nodes, this.fileCache, bootScripts, logger.child({ svc: 'pi-http' }));
      void piHttp.prebuild();
      const files = new ResolverChain(
        [
          piHttp,
          new GeneratedFileResolver(live, nodes, bootScripts),
          new ImageFileResolver(config, this.fileCache, nodes, rootAccess),
          new StaticRootResolver(config.tftp.root, this.fileCache, { dir: config.images.dir, rootAccess }),
        ],
        this.metrics,
      );
      if ((config.tftp.enabled || config.http.enabled) && !statSync(config.tftp.root, { throwIfNoEntry: false })?.isDirectory()) {
        logger.warn(
          { root: config.tftp.root },
          'tftp.root does not exist: static files (bootloaders) will be "not found"; `bootfarm bootloaders` creates it',
        );
      }
      if (config.tftp.enabled) {
        this.tftp = new TftpServer(
          {
            port: config.tftp.port,
            addresses: config.tftp.addresses ?? localIpv4Addresses(),
            limits: {
              maxBlockSize: config.tftp.maxBlockSize,
              maxWindowSize: config.tftp.maxWindowSize,
              defaultTimeoutMs: 1000,
              maxTimeoutSeconds: config.tftp.maxTimeoutSeconds,
            },
            maxTransfers: config.tftp.maxTransfers,
            maxTransfersPerClient: config.tftp.maxTransfersPerClient,
            singlePort: config.tftp.singlePort,
          },
          files,
          logger.child({ svc: 'tftp' }),
          this.metrics,
          (event) =>
            this.recordFileServed({
              path: event.path,
              client: event.client,
              kind:
                event.result.outcome === 'complete' || event.result.outcome === 'final-ack-missing'
                  ? 'tftp.file'
                  : `tftp.${event.result.outcome}`,
              bytes: event.result.bytes,
              from: event.from,
            }),
        );
        await this.tftp.start();
        this.services.push(this.tftp);
      }
      if (config.http.enabled) {
        const httpLog = logger.child({ svc: 'http' });
        this.http = new HttpBootServer(
          {
            tpm: this.tpm ? { inventory, sessions, tpm: this.tpm } : undefined,
            port: config.http.port,
            host: config.http.host,
            limits: config.http,
            leaseStoreHealth: () => this.leaseClaims?.health(),
            clockHealth: () => this.leaseClaims?.clockHealth?.(),
            identityHealth: () => this.leaseClaims?.identityHealth?.(),
            // Getters: the routes read the configuration in force at each request.
            api: {
              get config() {
                return live.config;
              },
              inventory,
              store: this.store,
              sessions,
            },
            agent: {
              get config() {
                return live.config;
              },
              inventory,
              sessions,
              get templates() {
                return live.templates;
              },
              logger: httpLog,
              metrics: this.metrics,
            },
          },
          files,
          httpLog,
          this.metrics,
          (event) =>
            this.recordFileServed({
              path: event.path,
              client: event.client,
              kind: `http.${event.status === 200 || event.status === 206 ? 'file' : event.status}`,
              bytes: event.bytes,
              from: event.from,
            }),
        );
        await this.http.start();
        this.services.push(this.http);
      }
      if (config.nbd.enabled && config.nbd.backend !== 'builtin') {
        // External servers: no per-node access policy or per-node metrics (those need the built-in one).
        const options = {
          port: config.nbd.port,
          host: config.nbd.host,
          stateDir: config.server.stateDir,
          imagesDir: config.images.dir,
          staticExports: config.nbd.exports,
        };
        const backendLog = logger.child({ svc: 'nbd' });
        const backend =
          config.nbd.backend === 'nbdkit' ? new NbdkitBackend(options, backendLog) : new NbdServerBackend(options, backendLog);
        await backend.start();
        this.services.push(backend);
      } else if (config.nbd.enabled) {
        const store = this.store;
        const now = () => Date.now();
        this.nbd = new NbdServer(
          config.nbd,
          new ImageExportCatalog(config.images.dir, config.nbd.exports),
          {
            refusal: rootAccessPolicy({ allow: config.nbd.allow, store, nodes: inventory, now }),
            nodeOf: (address) => nodes.byAddress(address),
          },
          logger.child({ svc: 'nbd' }),
          this.metrics,
          (client, exp) => this.noteAttach(client, exp),
        );
        await this.nbd.start();
        this.services.push(this.nbd);
      }
      // Last: a second bootfarm on the same configuration fails on its first port above, with that port named.
      const control = new ControlSocket(
        controlSocketPath(config.server.stateDir),
        (command) => (command === 'config-reload' ? this.reload('control socket') : this.rootHolders()),
        logger.child({ svc: 'control' }),
      );
      await control.start();
      this.services.push(control);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Re-reads the configuration file; an invalid one is refused and the running one keeps serving. */
  reload(trigger: string): ReloadOutcome {
    if (!this.live || !this.store) throw new Error('bootfarm is not running');
    return reloadConfig(
      { live: this.live, store: this.store, metrics: this.metrics, logger: this.logger.child({ svc: 'config' }) },
      trigger,
    );
  }

  /**
   * Graceful stop, first half: TFTP and HTTP take no new transfer and the promise
   * resolves when those in flight have ended. The caller bounds the wait
   * (server.drainSeconds), then calls stop(), which cuts whatever is left.
   */
  async drain(): Promise<void> {
    await Promise.all([this.tftp?.drain(), this.http?.drain()]);
  }

  /** Mints per-node tokens through the Kubernetes API, or hands out the configured static token. */
  private tokenMinter(): TokenMinter | undefined {
    const kube = this.config.kubernetes;
    if (!kube) return undefined;
    if (kube.kubeconfig) return new KubeApiTokenMinter(kube.kubeconfig);
    this.logger.warn(
      'kubernetes.token: every node gets the same static token, and anything that can reach the agent endpoints from a node address can use it; prefer kubernetes.kubeconfig (one short-lived token per node)',
    );
    return new StaticTokenMinter(kube.staticToken as string);
  }

  /**
   * An NBD attach: on the node's timeline, and as the machine's root attachment,
   * which keeps its image version from `bootfarm image gc` (server/image/gc.ts).
   */
  private noteAttach(client: AttachedClient, exp: NbdExport): void {
    const store = this.store;
    if (!store) return;
    const { node, address } = client;
    if (node)
      store.recordEvent({
        at: new Date().toISOString(),
        mac: node.mac,
        type: 'nbd.attach',
        detail: { export: exp.name, source: exp.source },
      });
    if (!exp.version) return;
    const attachment = {
      key: node?.mac ?? `address:${address}`,
      mac: node?.mac,
      hostname: node?.hostname,
      address,
      ...exp.version,
      export: exp.name,
      at: Date.now(),
    };
    store
      .putAttachment(attachment)
      .catch((err: unknown) =>
        this.logger.error({ client: address, export: exp.name, err: (err as Error).message }, 'root attachment not recorded'),
      );
  }

  /** What `bootfarm image gc` must keep: every machine's last root attachment, and the versions open connections read now. */
  rootHolders(): RootHolders {
    if (!this.store) throw new Error('bootfarm is not running');
    return {
      attachments: this.store.attachments(),
      open: this.nbd?.openVersions() ?? [],
      backend: this.config.nbd.enabled ? this.config.nbd.backend : 'off',
    };
  }

  /** A file fetched by a known node goes on its boot timeline (bootloader, kernel, initrd...). */
  private recordFileServed(event: { path: string; client: string; kind: string; bytes: number; from: string }): void {
    const found = this.inventory?.byAddress(event.client);
    const node = found ? this.inventory?.knownByMac(found.mac) : undefined;
    if (!node || !this.store) return;
    this.store.recordEvent({
      at: new Date().toISOString(),
      mac: node.mac,
      type: event.kind,
      detail: { path: event.path, bytes: event.bytes, from: event.from },
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
