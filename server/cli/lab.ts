// `bootfarm lab run | up`: the emulation lab (server/lab/lab.ts) from the shell.
import type { Command } from 'commander';
import path from 'node:path';
import { Lab } from '../lab/lab.js';
import { formatSummary } from '../lab/summary.js';
import { labDown } from '../lab/lab-down.js';
import { parseLabNodes } from '../lab/lab-nodes.js';
import { attachTarget } from '../lab/lab-attach.js';
import { STEPS, type Step } from '../lab/timeline.js';
import { SetupError } from '../errors.js';
import { connectDocker } from '../image/docker.js';
import { buildServerImage } from '../lab/server-image.js';
import { inLabContainer, labContainerImagesDir } from '../lab/inner-docker.js';

interface LabCliOptions {
  nodes: string;
  server?: string;
  image: string;
  imagesDir?: string;
  timeout: string;
  json?: boolean;
  workDir?: string;
  missingImage?: string;
  refuseJoin?: string;
  secureBootOff?: string;
  restartServerAt?: string;
  restartServerAfterJoin?: string;
  restartSignal?: string;
  toRam?: string;
  upgradeServer?: boolean;
  publishDuringOutage?: boolean;
  attack?: boolean;
  admission?: string;
  tpmImpostor?: string;
}

function labFrom(opts: LabCliOptions, log: (line: string) => void, keep?: AbortSignal): Lab {
  // The lab image runs bootfarm in a container of its own dockerd (true DinD) unless told otherwise.
  const server = opts.server ?? (inLabContainer() ? 'docker' : 'host');
  const attachTo = attachTarget(server);
  if (server !== 'host' && server !== 'docker' && attachTo === undefined)
    throw new SetupError(`--server: expected host, docker or attach:<container>, got ${JSON.stringify(server)}`);
  const timeoutSeconds = Number(opts.timeout);
  if (!(timeoutSeconds > 0)) throw new SetupError(`--timeout: expected seconds, got ${JSON.stringify(opts.timeout)}`);
  // In the lab image: images mounted by the user, else those on the cache volume.
  const imagesDir = opts.imagesDir ?? (inLabContainer() ? labContainerImagesDir(opts.image) : '/var/lib/bootfarm/images');
  if (opts.imagesDir === undefined && inLabContainer()) log(`images from ${imagesDir}`);
  return new Lab({
    nodes: parseLabNodes(opts.nodes),
    server: attachTo === undefined ? (server as 'host' | 'docker') : 'attach',
    attachTo,
    image: opts.image,
    imagesDir: path.resolve(imagesDir),
    workDir: opts.workDir,
    timeoutSeconds,
    // The serve process and the lab's helper programs run like this CLI (dist, or sources through tsx).
    cli: { execPath: process.execPath, args: [...process.execArgv, path.resolve(process.argv[1] as string)] },
    log,
    keep,
    missingImage: opts.missingImage ? parseLabNodes(opts.missingImage) : undefined,
    refuseJoin: opts.refuseJoin ? parseLabNodes(opts.refuseJoin) : undefined,
    secureBootOff: opts.secureBootOff ? parseLabNodes(opts.secureBootOff) : undefined,
    restartServerAt: opts.restartServerAt ? parseSteps(opts.restartServerAt) : undefined,
    restartServerAfterJoin: opts.restartServerAfterJoin === undefined ? undefined : parseSeconds(opts.restartServerAfterJoin),
    restartSignal: parseSignal(opts.restartSignal ?? 'kill'),
    toRam: opts.toRam ? parseLabNodes(opts.toRam) : undefined,
    upgradeServer: opts.upgradeServer === true,
    publishDuringOutage: opts.publishDuringOutage === true,
    attack: opts.attack === true,
    admission: parseAdmission(opts.admission ?? 'approve'),
    tpmImpostors: opts.tpmImpostor
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  });
}

/** `initrd` or `bootloader,kernel,root attached`: each once, a boot's steps before "joined". */
function parseSteps(text: string): Step[] {
  const steps = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const allowed = STEPS.filter((s) => s !== 'joined');
  for (const step of steps) {
    if (!(allowed as readonly string[]).includes(step))
      throw new SetupError(`--restart-server-at: expected some of ${allowed.join(', ')} (comma separated), got ${JSON.stringify(step)}`);
  }
  if (steps.length === 0 || new Set(steps).size !== steps.length)
    throw new SetupError(`--restart-server-at: expected each step once, got ${JSON.stringify(text)}`);
  return steps as Step[];
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 3600)
    throw new SetupError(`--restart-server-after-join: expected seconds (0-3600), got ${JSON.stringify(text)}`);
  return n;
}

function parseAdmission(text: string): 'auto' | 'approve' | 'tpm' {
  if (text === 'auto' || text === 'approve' || text === 'tpm') return text;
  throw new SetupError(
    `--admission: expected approve (the lab approves each boot as its operator), tpm (each amd64 node has a swtpm whose EK the lab registers) or auto, got ${JSON.stringify(text)}`,
  );
}

function parseSignal(text: string): 'SIGKILL' | 'SIGTERM' {
  if (text === 'kill') return 'SIGKILL';
  if (text === 'term') return 'SIGTERM';
  throw new SetupError(`--restart-signal: expected kill or term, got ${JSON.stringify(text)}`);
}

export function registerLabCommands(program: Command, fail: (err: unknown) => never): void {
  const lab = program
    .command('lab')
    .description('emulation lab: bootfarm plus QEMU boards and a scripted Raspberry Pi on a private bridge, from power-on to joined');
  const common = (cmd: Command) =>
    cmd
      .option(
        '--nodes <list>',
        'amd64-bios, amd64-uefi, arm64-uefi, amd64-uefi-http, arm64-uefi-http, amd64-uefi-sb, arm64-uefi-sb, pi3, pi4, pi4-http, pi5, armhf-uboot, arm64-uboot (comma separated; kind*N for several)',
        'amd64-bios,arm64-uefi,pi4',
      )
      .option(
        '--server <where>',
        'host (a process in a namespace), docker (its container) or attach:<container> (a running container whose bootfarm you deploy, e.g. with ansible/playbook.yml and the inventory the lab writes; the lab puts it on its bridge and waits for it); default host, docker in the lab image (its own dockerd)',
      )
      .option('--image <name>', 'the image the nodes boot', 'lab')
      .option(
        '--images-dir <dir>',
        "published images (bootfarm image build --images-dir); default /var/lib/bootfarm/images, in the lab image that if it holds --image, else the cache volume's /var/lib/bootfarm-lab/images",
      )
      .option('--timeout <seconds>', 'per node, power-on to joined', '900')
      .option('--work-dir <dir>', 'where configs, consoles and logs go (default: a new /var/tmp/bootfarm-lab-*)')
      .option('--missing-image <nodes>', 'failure injection: give these nodes an image that does not exist')
      .option('--refuse-join <nodes>', "failure injection: the cluster refuses these nodes' registration")
      .option(
        '--secure-boot-off <nodes>',
        'failure injection: configure these Secure Boot kinds (amd64-uefi-sb, arm64-uefi-sb) without secureBoot; their firmware refuses the unsigned bootloader',
      )
      .option(
        '--restart-server-at <steps>',
        `failure injection: restart bootfarm each time the first node of --nodes reaches one of these steps (comma separated: ${STEPS.filter((s) => s !== 'joined').join(', ')})`,
      )
      .option(
        '--restart-server-after-join <seconds>',
        'failure injection: once the first node joined, end bootfarm, keep it down this long, start it; the node must keep its root (reads checked against the image)',
      )
      .option(
        '--restart-signal <kill|term>',
        'how --restart-server-after-join ends bootfarm: kill (SIGKILL, a crash) or term (a graceful stop)',
        'kill',
      )
      .option(
        '--to-ram <nodes>',
        'these nodes boot with NBD_TO_RAM: the image is copied to RAM and NBD let go (with --restart-server-after-join: the node must keep running while bootfarm is down)',
      )
      .option(
        '--upgrade-server',
        "with --restart-server-after-join and --server docker: the outage is an upgrade; a new server image is built while the node runs and bootfarm's container is replaced by one of it",
      )
      .option(
        '--publish-during-outage',
        'with --restart-server-after-join: publish a new version of the image while bootfarm is down (undone at the end); the node must keep reading the version it mounted and gc must keep it',
      )
      .option(
        '--admission <mode>',
        "kubernetes.admission of the lab's bootfarm: approve (the lab approves each waiting boot as its operator), tpm (each amd64 node gets a swtpm whose EK is registered before it powers on) or auto",
        'approve',
      )
      .option(
        '--tpm-impostor <hostnames>',
        'failure injection with --admission tpm: these nodes (e.g. lab-amd64-uefi-2) boot with a different swtpm than the one registered; they must be refused',
      )
      .option(
        '--attack',
        'an attacker on the lab segment forges DHCP, races each QEMU node for its boot script and agent routes, and replays its nonce after it joined; a node fails if the attacker gets anything or the replay leaves no alarm',
      );

  common(lab.command('run').description('boot every node, print each timeline and a summary, tear down; exit 1 if a node failed'))
    .option('--json', 'print the results as JSON on stdout')
    .action(async (opts: LabCliOptions) => {
      const log = (line: string) => process.stderr.write(`lab: ${line}\n`);
      let instance: Lab | undefined;
      // CI cancels a job with SIGTERM (docker stop, in the lab container as PID 1):
      // guests, bootfarm and namespaces are torn down, and the exit code is 128+signal.
      const onSignal = (signal: NodeJS.Signals): void => {
        log(`${signal}: tearing the lab down`);
        const exit = () => {
          if (instance) log(instance.settleWorkDir(false));
          process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
        };
        void (instance?.stop() ?? Promise.resolve()).then(exit, exit);
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        instance = labFrom(opts, log);
        await instance.start();
        const results = await instance.bootAll();
        const cluster = instance.clusterNodes();
        const restarts = instance.restarts;
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        await instance.stop();
        log(instance.settleWorkDir(results.every((r) => r.ok)));
        instance = undefined;
        if (opts.json) process.stdout.write(`${JSON.stringify({ results, cluster, restarts }, null, 2)}\n`);
        else process.stdout.write(`${formatSummary(results)}\n`);
        process.exitCode = results.every((r) => r.ok) ? 0 : 1;
      } catch (err) {
        await instance?.stop().catch(() => undefined);
        if (instance) log(instance.settleWorkDir(false));
        fail(err);
      }
    });

  common(lab.command('up').description('like run, but keeps the lab and the guests running until Ctrl-C, for poking at it')).action(
    async (opts: LabCliOptions) => {
      const log = (line: string) => process.stderr.write(`lab: ${line}\n`);
      const stop = new AbortController();
      let instance: Lab | undefined;
      try {
        instance = labFrom(opts, log, stop.signal);
        await instance.start();
        const results = await instance.bootAll();
        process.stdout.write(`${formatSummary(results)}\n`);
        log(`running; API token ${instance.apiToken}; work dir ${instance.workDir}. Ctrl-C tears it down.`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        stop.abort();
        await instance.stop();
        log(instance.settleWorkDir(results.every((r) => r.ok)));
      } catch (err) {
        await instance?.stop().catch(() => undefined);
        if (instance) log(instance.settleWorkDir(false));
        fail(err);
      }
    },
  );

  lab
    .command('image')
    .description(
      "build the lab's own image (the top-level Dockerfile's lab stage: bootfarm, QEMU, firmware, dockerd and the saved server image) with no registry; run the whole lab in it: docker run --rm --privileged -v bootfarm-lab-cache:/var/lib/bootfarm-lab -v <images>:/var/lib/bootfarm/images:ro <tag> lab run",
    )
    .option('--tag <tag>', 'tag of the lab image', 'bootfarm/lab:dev')
    .option('--no-cache', 'build every step again')
    .option('--json', 'print the build report as JSON on stdout')
    .action(async (opts: { tag: string; cache: boolean; json?: boolean }) => {
      try {
        const report = await buildServerImage(await connectDocker(), {
          tag: opts.tag,
          target: 'lab',
          noCache: !opts.cache,
          log: (line) => process.stderr.write(`lab image: ${line}\n`),
        });
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${report.tag}\n`);
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('down')
    .description(
      'remove what an interrupted lab left behind: its processes (by PID, inside its namespaces), server containers and namespaces',
    )
    .action(async () => {
      try {
        const removed = await labDown((line) => process.stderr.write(`lab: ${line}\n`));
        process.stdout.write(removed ? `removed ${removed} lab namespace(s)\n` : 'no lab to remove\n');
      } catch (err) {
        fail(err);
      }
    });
}
