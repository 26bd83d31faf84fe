// The emulation lab: one network namespace with a bridge, bootfarm on it (as a
// process in its own namespace, or in its container), a fake Kubernetes API,
// boards as QEMU guests (amd64 SeaBIOS+iPXE or OVMF, arm64 AAVMF) and a scripted
// Raspberry Pi 4 bootloader. Each node is followed through bootfarm's own API
// (its boot timeline) from power-on to "joined"; the run ends with a per-node
// timeline and a summary, and everything is torn down.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { NetLab, type LabHost } from './netlab.js';
import type { Background } from './proc.js';
import { startGuest, qemuAccel } from './qemu.js';
import { installGrubArm64, installIpxe, installSecureBoot } from '../boot/bootloaders.js';
import { SetupError } from '../errors.js';
import { connectDocker } from '../image/docker.js';
import { buildServerImage, LAB_INNER_SERVER_TAG } from './server-image.js';
import {
  ensureServerImage,
  inLabContainer,
  LAB_CACHE_DIR,
  LAB_IMAGE_DEBS_DIR,
  startInnerDockerd,
  type InnerDocker,
} from './inner-docker.js';
import type Docker from 'dockerode';
import { checkAfterPublish, publishNextVersion, unpublishNextVersion, type PublishedNext } from './publish-next.js';
import { buildUpgradeImage, imageIdOf, UPGRADE_IMAGE } from './upgrade-image.js';
import { serverOutage, type OutageReport } from './outage.js';
import { LabAttacker } from './attacker.js';
import { containerConfig, SERVER_CONTAINER_PATHS, startServerContainer, type ServerContainer } from './server-container.js';
import { enrolLabTpms, startNodeTpm } from './lab-tpm.js';
import { needsGrubArm64, scriptedPiModel, secureBootChains, SPECS, specFor, type LabNodeKind, type NodeSpec } from './lab-nodes.js';
import { secureBootFailure, secureBootState } from './secure-boot-evidence.js';
import { piKernelFiles, startPiKernelGuest } from './pi-kernel-guest.js';
import { piImageGap } from './pi-image-gaps.js';
import { piEepromHttp, type PiEepromHttp } from './pi-http-eeprom.js';
import type { PiBootReport } from './pi/report.js';
import { awaitsRevoke, STEPS, timelineOf, type Step, type TimelineEvent } from './timeline.js';
import { HTTP, KUBE, labServerConfig, SERVER } from './lab-config.js';
import type { LabOptions, NodeResult, PublishReport } from './lab-results.js';
import { attachContainer, attachedLogs, awaitDeployment, type AttachedServer } from './lab-attach.js';

export type { LabOptions, NodeResult } from './lab-results.js';

export class Lab {
  /** Every node of the run, with its name and MAC. */
  private readonly specs: NodeSpec[];
  private net: NetLab | undefined;
  private bootfarm: Background | undefined;
  private container: ServerContainer | undefined;
  /** In the lab image: the dockerd that runs bootfarm's container. */
  private innerDocker: InnerDocker | undefined;
  /** The inner dockerd's stop from the moment it is spawned, before startInnerDockerd resolves. */
  private stopInnerDockerd: (() => Promise<void>) | undefined;
  /** server attach: the operator's container on the lab's bridge. */
  private attached: AttachedServer | undefined;
  private srvNs: string | undefined;
  private configFile = '';
  /** A restart in progress (failure injection): every node's loop waits for it. */
  private restarting: Promise<void> | undefined;
  /** restartServerAt steps already restarted for. */
  private readonly restartedAt = new Set<Step>();
  /** Server restarts done (failure injection), for the report. */
  readonly restarts: Array<{ at: string; afterStep: Step; node: LabNodeKind; passed?: Step[] }> = [];
  private kubeApi: Background | undefined;
  private kubeHost: LabHost | undefined;
  private attacker: LabAttacker | undefined;
  /** publishDuringOutage: the version published, undone at stop(). */
  private published: PublishedNext | undefined;
  readonly workDir: string;
  readonly apiToken = randomBytes(18).toString('base64url');

  constructor(private readonly options: LabOptions) {
    const seen = new Map<LabNodeKind, number>();
    this.specs = options.nodes.map((kind) => {
      const index = seen.get(kind) ?? 0;
      seen.set(kind, index + 1);
      return specFor(kind, index);
    });
    this.workDir = options.workDir ?? mkdtempSync('/var/tmp/bootfarm-lab-');
    mkdirSync(path.join(this.workDir, 'consoles'), { recursive: true });
  }

  private get admission(): 'auto' | 'approve' | 'tpm' {
    return this.options.admission ?? 'approve';
  }

  /** admission tpm: each QEMU node's registered EK (base64 TPM2B_PUBLIC), by hostname. */
  private tpmEks = new Map<string, string>();

  /** The lab as the operator: approves the node's boot that waits for admission (POST /api/v1/nodes/{mac}/approve). */
  private async approve(spec: NodeSpec): Promise<void> {
    const r = await (this.net as NetLab).exec(
      (this.kubeHost as LabHost).ns,
      'curl',
      [
        '-sS',
        '--max-time',
        '5',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'POST',
        '-H',
        `Authorization: Bearer ${this.apiToken}`,
        `${HTTP}/api/v1/nodes/${spec.mac}/approve`,
      ],
      10_000,
    );
    this.log(`${spec.hostname}: boot waits for admission; approved by the lab as its operator (HTTP ${r.stdout})`);
  }

  private log(line: string): void {
    this.options.log(line);
  }

  /** Checks what the lab needs before creating anything. */
  preflight(): void {
    if (process.getuid?.() !== 0) throw new SetupError('bootfarm lab needs root: it creates network namespaces, a bridge and taps');
    const arches = new Set(this.options.nodes.map((k) => SPECS[k].arch));
    for (const arch of arches) {
      const dir = path.join(this.options.imagesDir, this.options.image, 'current', arch);
      for (const file of ['vmlinuz', 'initrd.img', 'root.squashfs']) {
        if (!existsSync(path.join(dir, file)))
          throw new SetupError(
            `image ${this.options.image} has no ${arch} ${file} under ${this.options.imagesDir} (build it: bootfarm image build --name ${this.options.image} --arch ${[...arches].join(',')} --images-dir ${this.options.imagesDir})`,
          );
      }
    }
    if (this.admission === 'tpm' && this.options.nodes.includes('arm64-uefi')) {
      throw new SetupError(
        "--admission tpm: arm64-uefi nodes get no TPM (the Debian arm64 kernel has no tpm_tis driver for QEMU virt's tpm-tis-device); use amd64 nodes",
      );
    }
    const unknownImpostor = (this.options.tpmImpostors ?? []).find(
      (h) => !this.specs.some((s) => s.hostname === h && s.firmware !== 'pi4'),
    );
    if (unknownImpostor !== undefined)
      throw new SetupError(
        `--tpm-impostor: ${JSON.stringify(unknownImpostor)} is not a QEMU node of this lab (${this.specs
          .filter((s) => s.firmware !== 'pi4')
          .map((s) => s.hostname)
          .join(', ')})`,
      );
    if (this.options.tpmImpostors?.length && this.admission !== 'tpm') throw new SetupError('--tpm-impostor needs --admission tpm');
    if (this.options.publishDuringOutage && this.options.restartServerAfterJoin === undefined)
      throw new SetupError('--publish-during-outage publishes while bootfarm is down: it needs --restart-server-after-join');
    if (
      this.options.server === 'attach' &&
      (this.options.restartServerAt?.length ||
        this.options.restartServerAfterJoin !== undefined ||
        this.specs.some((s) => s.piBoot === 'http'))
    )
      throw new SetupError(
        "--server attach: the lab does not run that bootfarm: no restarts or outages, and no pi4-http nodes (their EEPROM key comes from the lab's own bootfarm)",
      );
    if (this.options.upgradeServer && inLabContainer())
      throw new SetupError(
        '--upgrade-server builds a new server image: not in the lab container (its inner dockerd has no builder context)',
      );
    if (this.options.upgradeServer && (this.options.server !== 'docker' || this.options.restartServerAfterJoin === undefined)) {
      throw new SetupError(
        "--upgrade-server replaces bootfarm's container during the outage: it needs --server docker and --restart-server-after-join",
      );
    }
    // A Pi node whose model's files the image lacks boots anyway and fails naming them
    // (server/lab/pi-image-gaps.ts): said now, and again in its failure; the other nodes go on.
    for (const spec of this.specs) {
      const model = scriptedPiModel(spec);
      const gap =
        model === undefined
          ? undefined
          : piImageGap(path.join(this.options.imagesDir, this.options.image, 'current', spec.arch), { ...spec, piModel: model });
      if (gap === undefined) continue;
      this.piImageGaps.set(spec.hostname, gap);
      this.log(`WARNING: ${gap}`);
    }
  }

  /** Pi nodes the image cannot boot, and why (preflight). */
  private readonly piImageGaps = new Map<string, string>();
  /** piBoot: http nodes: what `bootfarm pi eeprom-config` says to program into their EEPROM, by hostname. */
  private readonly piEeprom = new Map<string, PiEepromHttp>();

  /** The EEPROM settings and public key of every piBoot: http node, as the operator gets them; before bootfarm starts. */
  private async readPiEeproms(hostConfigFile: string): Promise<void> {
    for (const spec of this.specs.filter((s) => s.piBoot === 'http')) {
      const eeprom = await piEepromHttp(this.options.cli, hostConfigFile, spec.hostname, this.workDir);
      this.piEeprom.set(spec.hostname, eeprom);
      this.log(
        `${spec.hostname}: EEPROM HTTP_HOST=${eeprom.host} HTTP_PORT=${eeprom.port} HTTP_PATH=${eeprom.path} and its public key (bootfarm pi eeprom-config)`,
      );
    }
  }

  private config(kube: { caCertFile: string; kubeconfig: string }): Record<string, unknown> {
    return labServerConfig({
      workDir: this.workDir,
      imagesDir: this.options.imagesDir,
      image: this.options.image,
      specs: this.specs,
      missingImage: this.options.missingImage,
      secureBootOff: this.options.secureBootOff,
      toRam: this.options.toRam,
      tpmEks: this.tpmEks,
      admission: this.admission,
      apiToken: this.apiToken,
      kube,
    });
  }

  async start(): Promise<void> {
    this.preflight();
    const tftpRoot = path.join(this.workDir, 'tftpboot');
    mkdirSync(tftpRoot, { recursive: true });
    installIpxe(tftpRoot);
    // In the lab image the arm64 packages come from the image (fetched when it was
    // built); without them they are downloaded into the cache volume, whose last
    // download stands in when the mirror cannot be reached (bootloaders.ts).
    const packages = inLabContainer() ? path.join(LAB_CACHE_DIR, 'packages') : path.join(this.workDir, 'cache');
    const arm64Packages = { cacheDir: packages, seedDirs: inLabContainer() ? [LAB_IMAGE_DEBS_DIR] : [] };
    const cachedDebs = existsSync(packages) ? readdirSync(packages).filter((f) => f.endsWith('.deb')) : [];
    if (needsGrubArm64(this.options.nodes)) installGrubArm64(tftpRoot, arm64Packages);
    const chains = secureBootChains(this.options.nodes);
    if (chains.any) installSecureBoot(tftpRoot, arm64Packages, chains.arm64);
    if (inLabContainer() && (needsGrubArm64(this.options.nodes) || chains.arm64)) {
      const fetched = readdirSync(packages).filter((f) => f.endsWith('.deb') && !cachedDebs.includes(f));
      this.log(
        fetched.length
          ? `arm64 packages downloaded into the cache volume (${packages}): ${fetched.join(' ')}`
          : `arm64 packages from the lab image (${LAB_IMAGE_DEBS_DIR}) or the cache volume (${packages}): nothing downloaded`,
      );
    }

    this.net = await NetLab.create('lab');
    this.log(`lab network ${this.net.switchNs} (bridge br0, 10.9.0.0/24, no uplink); work dir ${this.workDir}`);
    this.kubeHost = await this.net.addHost('kube', { address: `${KUBE}/24` });
    const kubeDir = path.join(this.workDir, 'kube');
    mkdirSync(kubeDir, { recursive: true });
    this.kubeApi = this.net.spawn(
      this.kubeHost.ns,
      this.options.cli.execPath,
      [
        ...this.options.cli.args.slice(0, -1),
        fakeApiMain(this.options.cli.args),
        '--dir',
        kubeDir,
        '--host',
        KUBE,
        '--port',
        '6443',
        ...this.specs.filter((sp) => this.options.refuseJoin?.includes(sp.kind)).flatMap((sp) => ['--refuse-node', sp.hostname]),
      ],
      'fake-kube-api',
    );
    const ready = JSON.parse(await this.kubeApi.waitFor((l) => l.includes('"ready":true'), 60_000, 'the fake Kubernetes API')) as {
      caCertFile: string;
      kubeconfig: string;
    };
    // The operator's host on the segment: it approves boots, and a test watches the dashboard from it.
    this.log(`fake Kubernetes API on ${KUBE}:6443 (host namespace ${this.kubeHost.ns}, the lab's operator)`);
    if (this.options.attack) {
      this.attacker = await LabAttacker.create(this.net, {
        server: SERVER,
        http: HTTP,
        apiToken: this.apiToken,
        forgedDhcp: {
          execPath: this.options.cli.execPath,
          args: [...this.options.cli.args.slice(0, -1), sibling(this.options.cli.args, 'forged-dhcp-main')],
        },
        log: (line) => this.log(`attacker: ${line}`),
      });
      this.log('attacker on the lab segment (10.9.0.66, and a claimed pool address)');
    }

    if (this.admission === 'tpm') {
      // The operator's enrolment, before any node powers on: each node's EK into its tpm.ek.
      this.tpmEks = await enrolLabTpms(
        this.net,
        this.kubeHost.ns,
        this.workDir,
        this.specs.filter((s) => s.firmware !== 'pi4').map((s) => s.hostname),
      );
      this.log(
        `registered the EKs of ${this.tpmEks.size} swtpm TPM(s)${this.options.tpmImpostors?.length ? `; ${this.options.tpmImpostors.join(', ')} will boot with another TPM (impostor)` : ''}`,
      );
    }

    if (this.options.server === 'attach') {
      // The operator deploys bootfarm there (the inventory the lab writes): the lab only wires it up and waits.
      const container = this.options.attachTo as string;
      this.attached = await attachContainer(this.net, container, `${SERVER}/24`);
      await awaitDeployment({
        net: this.net,
        from: this.kubeHost,
        workDir: this.workDir,
        container,
        config: this.config(ready),
        http: HTTP,
        timeoutMs: this.options.timeoutSeconds * 1000,
        log: (line) => this.log(line),
      });
      this.log(`bootfarm serving on ${SERVER} (container ${container}, deployed by its operator)`);
      return;
    }
    const configFile = path.join(this.workDir, 'bootfarm.yaml');
    this.configFile = configFile;
    if (this.options.server === 'docker') {
      // The container sees its state directory only: the cluster's CA and the
      // admin kubeconfig go there (never under the TFTP root, which anyone can read).
      const stateDir = path.join(this.workDir, 'state');
      mkdirSync(path.join(stateDir, 'kube'), { recursive: true, mode: 0o700 });
      copyFileSync(ready.caCertFile, path.join(stateDir, 'kube', 'ca.crt'));
      copyFileSync(ready.kubeconfig, path.join(stateDir, 'kube', 'admin.conf'));
      if (this.specs.some((s) => s.piBoot === 'http')) {
        // The same configuration with the host's paths: its state directory is the container's.
        const hostConfig = path.join(this.workDir, 'bootfarm-host.yaml');
        writeFileSync(
          hostConfig,
          stringify(
            this.config({ caCertFile: path.join(stateDir, 'kube', 'ca.crt'), kubeconfig: path.join(stateDir, 'kube', 'admin.conf') }),
          ),
        );
        await this.readPiEeproms(hostConfig);
      }
      const inside = `${SERVER_CONTAINER_PATHS.state}/kube`;
      writeFileSync(
        configFile,
        stringify(containerConfig(this.config({ caCertFile: `${inside}/ca.crt`, kubeconfig: `${inside}/admin.conf` }))),
      );
      let docker: Docker;
      let image = LAB_INNER_SERVER_TAG;
      if (inLabContainer()) {
        // In the lab image: a dockerd of its own (true DinD), the server image loaded from the lab image once.
        this.innerDocker = await startInnerDockerd({
          log: (line) => this.log(line),
          onSpawned: (stop) => {
            this.stopInnerDockerd = stop;
          },
        });
        docker = this.innerDocker.docker;
        image = await ensureServerImage(docker, (line) => this.log(line));
      } else {
        docker = await connectDocker();
        await buildServerImage(docker, { tag: image, log: (line) => this.log(`server image: ${line}`) });
      }
      this.container = await startServerContainer({
        configFile,
        stateDir,
        imagesDir: this.options.imagesDir,
        tftpRoot,
        network: { mode: 'bridge', bridge: 'br0', netns: this.net.switchNs, address: `${SERVER}/24` },
        image,
        name: `${this.net.id}-bootfarm`,
        docker,
      });
      this.log(`bootfarm serving on ${SERVER} (container ${this.container.name}, config ${configFile})`);
      return;
    }
    writeFileSync(configFile, stringify(this.config(ready)));
    await this.readPiEeproms(configFile);
    const srv = await this.net.addHost('srv', { address: `${SERVER}/24` });
    this.srvNs = srv.ns;
    await this.startServerProcess();
    this.log(`bootfarm serving on ${SERVER} (process, config ${configFile})`);
  }

  private async startServerProcess(): Promise<void> {
    const bootfarm = (this.net as NetLab).spawn(
      this.srvNs as string,
      this.options.cli.execPath,
      [...this.options.cli.args, 'serve', '--config', this.configFile],
      'bootfarm',
    );
    this.bootfarm = bootfarm;
    await Promise.race([
      bootfarm.waitFor((l) => l.includes('"bootfarm ready"'), 60_000, 'bootfarm ready'),
      bootfarm.exited.then((code) => {
        throw new SetupError(`bootfarm exited (${code}) before it was ready:\n${bootfarm.lines.slice(-10).join('\n')}`);
      }),
    ]);
  }

  /** Restarts bootfarm (container restart, or a new process on the same state). */
  private async restartServer(node: LabNodeKind, step: Step, passed: Step[]): Promise<void> {
    this.log(
      `restarting bootfarm while ${node} is past "${step}"${passed.length ? ` (it passed ${passed.join(', ')} within one poll: one restart for them)` : ''} (failure injection)`,
    );
    if (this.container) {
      await this.container.restart();
    } else {
      const old = this.bootfarm as Background;
      await old.stop('SIGTERM', 5000);
      writeFileSync(path.join(this.workDir, 'bootfarm-before-restart.log'), `${old.lines.join('\n')}\n`);
      await this.startServerProcess();
    }
    this.restarts.push({ at: new Date().toISOString(), afterStep: step, node, ...(passed.length ? { passed } : {}) });
    this.log('bootfarm is back');
  }

  private controlSocket(spec: NodeSpec): string {
    return path.join(this.workDir, 'consoles', `${spec.hostname}.ctl`);
  }

  private async outage(
    spec: NodeSpec,
    guest: Background,
  ): Promise<{ report: OutageReport; upgrade?: { from: string; to: string }; publish?: PublishReport }> {
    const signal = this.options.restartSignal ?? 'SIGKILL';
    const container = this.container;
    const upgrade =
      this.options.upgradeServer && container
        ? { from: await imageIdOf(container.image), to: await buildUpgradeImage((line) => this.log(`upgrade image: ${line}`)) }
        : undefined;
    if (upgrade)
      this.log(
        `${spec.hostname}: bootfarm will be upgraded from ${upgrade.from.slice(7, 19)} to ${upgrade.to.slice(7, 19)} under the node`,
      );
    // The version the node mounted: its files are what it must keep reading, whatever `current` becomes.
    const mounted = path.basename(readlinkSync(path.join(this.options.imagesDir, this.options.image, 'current')));
    this.log(`${spec.hostname}: joined; ending bootfarm (${signal}) with the node's root attached (failure injection)`);
    const report = await serverOutage({
      signal,
      downSeconds: this.options.restartServerAfterJoin ?? 30,
      root: this.options.toRam?.includes(spec.kind) ? 'ram' : 'nbd',
      squashfs: path.join(this.options.imagesDir, this.options.image, mounted, spec.arch, 'root.squashfs'),
      ...(this.options.publishDuringOutage
        ? {
            whileDown: async () => {
              this.published = await publishNextVersion(this.options.imagesDir, this.options.image);
              this.log(
                `${spec.hostname}: published ${this.options.image}/${this.published.to} while bootfarm is down (the node mounted ${mounted})`,
              );
            },
          }
        : {}),
      controlSocket: this.controlSocket(spec),
      halt: async (sig) => {
        if (this.container) await this.container.halt(sig);
        else await (this.bootfarm as Background).stop(sig, 5000);
      },
      start: async () => {
        if (upgrade && container) await container.upgrade(UPGRADE_IMAGE);
        else if (this.container) await this.container.start();
        else await this.startServerProcess();
      },
      events: () => this.events(spec.mac),
      console: () => guest.lines,
      log: (line) => this.log(`${spec.hostname}: ${line}`),
    });
    this.restarts.push({ at: new Date().toISOString(), afterStep: 'joined', node: spec.kind });
    if (upgrade && container) upgrade.to = await imageIdOf(container.image);
    const publish = this.published
      ? await checkAfterPublish({
          controlSocket: this.controlSocket(spec),
          cli: this.options.cli,
          imagesDir: this.options.imagesDir,
          stateDir: path.join(this.workDir, 'state'),
          published: this.published,
          log: (line) => this.log(`${spec.hostname}: ${line}`),
        })
      : undefined;
    return { report, ...(upgrade ? { upgrade } : {}), ...(publish ? { publish } : {}) };
  }

  private async events(mac: string): Promise<TimelineEvent[]> {
    // Reads need the API token (api.protectReads is on by default).
    const r = await (this.net as NetLab).exec(
      (this.kubeHost as LabHost).ns,
      'curl',
      ['-sf', '--max-time', '5', '-H', `Authorization: Bearer ${this.apiToken}`, `${HTTP}/api/v1/nodes/${mac}/events`],
      10_000,
    );
    if (r.code !== 0) return [];
    return (JSON.parse(r.stdout) as { events: TimelineEvent[] }).events;
  }

  /** Boots every node at once and follows each to joined, failed or its time limit. */
  async bootAll(): Promise<NodeResult[]> {
    return Promise.all(this.specs.map((spec) => this.bootOne(spec)));
  }

  private async bootOne(spec: NodeSpec): Promise<NodeResult> {
    const net = this.net as NetLab;
    const consoleFile = path.join(this.workDir, 'consoles', `${spec.hostname}.log`);
    const poweredOn = Date.now();
    let guest: Background;
    let tpm: Background | undefined;
    let piHost: LabHost | undefined;
    /** The scripted Pi bootloader's output, kept for the console once its kernel boots. */
    let piFirmwareLines: string[] = [];
    if (spec.firmware === 'pi4') {
      const host = await net.addHost(spec.hostname.replace(/^lab-/, ''), { mac: spec.mac });
      piHost = host;
      const out = path.join(this.workDir, `${spec.hostname}-files`);
      guest = net.spawn(
        host.ns,
        this.options.cli.execPath,
        [
          ...this.options.cli.args.slice(0, -1),
          piBootloaderMain(this.options.cli.args),
          '--iface',
          'eth0',
          '--mac',
          spec.mac,
          '--serial',
          spec.piSerial as string,
          '--model',
          String(scriptedPiModel(spec)),
          '--out',
          out,
          '--dhcp-timeout',
          '60',
          ...httpBootArgs(spec.hostname, this.piEeprom.get(spec.hostname)),
        ],
        spec.kind,
      );
    } else {
      const impostor = this.options.tpmImpostors?.includes(spec.hostname) === true;
      const started = this.admission === 'tpm' ? await startNodeTpm(net, net.switchNs, this.workDir, spec.hostname, impostor) : undefined;
      tpm = started?.swtpm;
      if (started)
        this.log(
          `${spec.hostname}: ${impostor ? 'a different swtpm than the one registered (impostor)' : 'its registered swtpm'} attached`,
        );
      guest = await startGuest(net, spec.firmware, spec.mac, {
        memoryMb: 1024,
        label: spec.kind,
        controlSocket: this.controlSocket(spec),
        ...(started ? { tpmSocket: started.socket } : {}),
      });
    }
    this.log(
      `${spec.hostname}: powered on (${spec.firmware === 'pi4' ? `scripted Pi ${scriptedPiModel(spec)} bootloader` : `QEMU ${spec.firmware}, ${spec.arch === 'amd64' ? qemuAccel() : 'tcg'}`})`,
    );
    const deadline = poweredOn + this.options.timeoutSeconds * 1000;
    const result: NodeResult = {
      kind: spec.kind,
      hostname: spec.hostname,
      mac: spec.mac,
      ok: false,
      timeline: {},
      lastStep: 'power-on',
      events: [],
      console: consoleFile,
    };
    let exited: number | null | undefined;
    // The console file is kept current, for watching a boot (tail -f) and after a crash.
    const writeConsole = () => writeFileSync(consoleFile, `${[...piFirmwareLines, ...guest.lines].join('\n')}\n`);
    void guest.exited.then((code) => {
      exited = code;
    });
    let approvedBoot = false;
    const attackStop = new AbortController();
    const attack = this.attacker && spec.firmware !== 'pi4' ? this.attacker.duringBoot(spec, attackStop.signal) : undefined;
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        writeConsole();
        const events = (await this.events(spec.mac)).filter((e) => Date.parse(e.at) >= poweredOn - 1000);
        if (events.length > 0) result.events = events;
        const seen = timelineOf(result.events, poweredOn);
        result.timeline = seen.timeline;
        result.observed = seen.observed ?? result.observed;
        result.lastStep = [...STEPS].reverse().find((s) => seen.timeline[s] !== undefined) ?? 'power-on';
        if (this.admission === 'approve' && !approvedBoot && events.some((e) => e.type === 'boot.pending-admission')) {
          approvedBoot = true;
          await this.approve(spec);
        }
        if (spec === this.specs[0] && !this.restarting) {
          // The latest step reached that asks for a restart; earlier ones reached in the same poll share it.
          const due = (this.options.restartServerAt ?? []).filter((s) => !this.restartedAt.has(s) && seen.timeline[s] !== undefined);
          const step = due.sort((a, b) => STEPS.indexOf(a) - STEPS.indexOf(b)).pop();
          if (step) {
            for (const s of [...due, step]) this.restartedAt.add(s);
            this.restarting = this.restartServer(spec.kind, step, due).finally(() => {
              this.restarting = undefined;
            });
          }
        }
        if (this.restarting) await this.restarting;
        if (piHost && exited !== undefined) {
          // The Pi stand-in ends after the firmware's files: it must have passed, and
          // then the node's own kernel, initramfs and cmdline.txt boot in QEMU.
          const report = guest.lines.find((l) => l.startsWith('PI_BOOT_REPORT '));
          const parsed = report ? (JSON.parse(report.slice('PI_BOOT_REPORT '.length)) as PiBootReport) : undefined;
          if (exited !== 0 || parsed?.ok !== true) {
            result.failure = parsed?.failures.join('; ') || `the Pi bootloader stand-in exited with ${exited}`;
            break;
          }
          const files = piKernelFiles(parsed);
          if (typeof files === 'string') {
            result.failure = files;
            break;
          }
          // The board's firmware is off the wire once Linux runs: the stand-in's
          // interface (the same MAC) goes down before the guest's comes up.
          await net.ip(piHost.ns, 'link', 'set', 'eth0', 'down');
          piHost = undefined;
          piFirmwareLines = [
            ...guest.lines,
            "--- the node's kernel, initramfs and cmdline.txt in QEMU virt (server/lab/pi-kernel-guest.ts)",
          ];
          guest = await startPiKernelGuest(net, spec.mac, files, {
            memoryMb: 1024,
            label: spec.kind,
            controlSocket: this.controlSocket(spec),
          });
          exited = undefined;
          void guest.exited.then((code) => {
            exited = code;
          });
          this.log(`${spec.hostname}: its firmware's files arrived intact; its kernel boots in QEMU virt (tcg)`);
          continue;
        }
        if (seen.timeline.joined !== undefined) {
          result.ok = true;
          if (spec.firmware !== 'seabios' && spec.firmware !== 'pi4' && spec.firmware !== 'uboot-arm') {
            result.secureBoot = secureBootState(guest.lines);
            const sbFailure = secureBootFailure(spec.secureBoot === true, result.secureBoot);
            this.log(`${spec.hostname}: its kernel says Secure boot ${result.secureBoot ?? '(nothing)'}`);
            if (sbFailure) {
              result.ok = false;
              result.failure = sbFailure;
            }
          }
          if (attack && this.attacker) {
            attackStop.abort();
            result.attack = await this.attacker.afterJoin(spec, await attack, guest.lines.join('\n'), () => this.events(spec.mac));
            this.log(
              `${spec.hostname}: attacker made ${result.attack.probes} requests and sent ${result.attack.forgedDhcp.sent} forged REQUESTs; alarms ${result.attack.alarms.join(', ') || 'none'}`,
            );
            if (result.attack.failures.length > 0) {
              result.ok = false;
              result.failure = `attacker: ${result.attack.failures.slice(0, 5).join('; ')}`;
            }
          }
          // bootfarm deletes the node's token right after "joined" (server/join/boot-sessions.ts),
          // one API call later: wait for that to be on the timeline too, so the timeline is whole.
          for (let tries = 0; tries < 15 && awaitsRevoke(result.events); tries++) {
            await new Promise((r) => setTimeout(r, 1000));
            result.events = (await this.events(spec.mac)).filter((e) => Date.parse(e.at) >= poweredOn - 1000);
          }
          if (this.options.restartServerAfterJoin !== undefined && spec === this.specs[0] && spec.firmware !== 'pi4') {
            const lived = await this.outage(spec, guest);
            result.outage = lived.report;
            if (lived.upgrade) result.upgrade = lived.upgrade;
            if (lived.publish) result.publish = lived.publish;
            writeConsole();
            if (result.outage.failure) {
              result.ok = false;
              result.failure = result.outage.failure;
            }
          }
          break;
        }
        if (seen.failed) {
          result.failure = seen.failed;
          break;
        }
        if (exited !== undefined) {
          // Its last requests may have landed after this poll: look once more.
          const last = timelineOf(
            (await this.events(spec.mac)).filter((e) => Date.parse(e.at) >= poweredOn - 1000),
            poweredOn,
          );
          result.failure = last.failed ?? `the guest stopped (QEMU exit ${exited})`;
          break;
        }
        if (Date.now() > deadline) {
          result.failure = `not joined after ${this.options.timeoutSeconds} s${seen.tpmRefused ? ` (${seen.tpmRefused})` : ''}`;
          break;
        }
      }
    } finally {
      attackStop.abort();
      await attack?.catch(() => undefined);
      if (!this.options.keep || piHost) {
        await guest.stop('SIGTERM', 3000);
        // --terminate ends swtpm with QEMU's connection; this is for a QEMU that never connected.
        await tpm?.stop('SIGTERM', 3000);
      }
      writeConsole();
    }
    const gap = this.piImageGaps.get(spec.hostname);
    if (!result.ok && gap) result.failure = `${result.failure} [${gap}]`;
    if (!result.ok)
      result.failure = `${result.failure} (last step: ${result.lastStep}); console: ${consoleFile}\n${guest.lines
        .slice(-12)
        .map((l) => `    | ${l}`)
        .join('\n')}`;
    this.log(`${spec.hostname}: ${result.ok ? 'joined' : 'FAILED'}${result.ok ? '' : ` — ${result.failure?.split('\n')[0]}`}`);
    return result;
  }

  /**
   * After stop(): a work directory the lab made itself (no --work-dir) is removed
   * when every node joined, and kept for its consoles and logs when one did not.
   * One the caller named is theirs and stays. Returns the line to tell the user.
   */
  settleWorkDir(everyNodeJoined: boolean): string {
    if (this.options.workDir !== undefined) return `work dir ${this.workDir} (yours, kept)`;
    if (!everyNodeJoined) return `kept work dir ${this.workDir}: consoles/, bootfarm.log and the nodes' configs`;
    rmSync(this.workDir, { recursive: true, force: true });
    return `removed work dir ${this.workDir}: every node joined`;
  }

  async stop(): Promise<void> {
    // The images directory is a cache other runs reuse: put it back as it was.
    if (this.published) unpublishNextVersion(this.options.imagesDir, this.published);
    this.published = undefined;
    await this.bootfarm?.stop('SIGTERM', 5000);
    if (this.bootfarm) writeFileSync(path.join(this.workDir, 'bootfarm.log'), `${this.bootfarm.lines.join('\n')}\n`);
    try {
      if (this.container) {
        writeFileSync(
          path.join(this.workDir, 'bootfarm.log'),
          await this.container.logs().catch((err: unknown) => `logs unavailable: ${(err as Error).message}`),
        );
        await this.container.stop();
        this.container = undefined;
      }
    } finally {
      // Whatever became of its containers, the inner dockerd must not outlive the lab.
      // stopInnerDockerd is set as soon as dockerd is spawned, so a SIGTERM during its start stops it too.
      const stopInner = this.stopInnerDockerd;
      this.innerDocker = undefined;
      this.stopInnerDockerd = undefined;
      await stopInner?.();
    }
    if (this.attached) {
      writeFileSync(path.join(this.workDir, 'bootfarm.log'), await attachedLogs(this.options.attachTo as string));
      await this.attached.detach();
      this.attached = undefined;
    }
    await this.kubeApi?.stop('SIGTERM', 3000);
    await this.net?.destroy();
  }

  /** What the fake cluster saw: nodes registered, and the token each used. */
  clusterNodes(): Array<{ name: string; tokenId: string; labels: Record<string, string> }> {
    const file = path.join(this.workDir, 'kube', 'state.json');
    if (!existsSync(file)) return [];
    return (JSON.parse(readFileSync(file, 'utf8')) as { nodes: Array<{ name: string; tokenId: string; labels: Record<string, string> }> })
      .nodes;
  }
}

/** Sibling entry points next to the CLI's (dist/ .js, or the sources run through tsx). */
function sibling(cliArgs: string[], name: string): string {
  const cli = cliArgs[cliArgs.length - 1] as string;
  const ext = cli.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`../lab/${name}${ext}`, `file://${cli}`));
}
const fakeApiMain = (cliArgs: string[]) => sibling(cliArgs, 'fake-kube-api-main');
const piBootloaderMain = (cliArgs: string[]) => sibling(cliArgs, 'pi-bootloader');

/** The scripted bootloader's HTTP boot flags: the EEPROM settings `pi eeprom-config` printed (none: TFTP boot). */
function httpBootArgs(hostname: string, eeprom: PiEepromHttp | undefined): string[] {
  if (!eeprom) return [];
  const settings = ['--http-host', eeprom.host, '--http-port', String(eeprom.port), '--http-path', eeprom.path];
  return [...settings, '--pubkey', eeprom.pubkeyFile, '--hostname', hostname];
}
