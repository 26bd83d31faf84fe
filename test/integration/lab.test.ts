// The whole flow, as CI proves it on every change: `bootfarm lab run` (the built
// CLI) builds or reuses the lab image for amd64 and arm64, boots an amd64 SeaBIOS
// guest, an arm64 UEFI guest and a Raspberry Pi 4 (the scripted bootloader, then
// its own kernel in QEMU virt) against bootfarm, and follows each to "joined"
// (other Pi models: lab-pi.test.ts; other firmware: lab-firmware.test.ts). One more node is given an image that does not
// exist: it fails with a clear summary while the others pass. Then bootfarm's
// container is restarted during a boot, killed under a joined node (whose root
// must survive) (a refused join: lab-dashboard.test.ts). In the first run an
// attacker on the segment goes after every QEMU node (issue 11's attacks).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectDocker } from '../../server/image/docker.js';
import { run, runOk } from '../../server/lab/proc.js';
import { NetLab } from '../../server/lab/netlab.js';
import { buildServerImage, LAB_INNER_SERVER_TAG } from '../../server/lab/server-image.js';
import { volumeNames, volumesOf } from '../lib/docker-volumes.js';
import { CLI, IMAGES, buildLabImage, lab, labWorkDir, type LabJson } from '../lib/lab-run.js';
import type { NodeResult } from '../../server/lab/lab.js';
import type { OutageReport } from '../../server/lab/outage.js';

interface Observed {
  root: { fs: string; lower: { fs: string; readOnly: boolean; export: string }; upper: string };
  hostname: string;
  machine: string;
  preinit: Record<string, { ok: boolean; out: string }>;
  fstab: Record<string, { inFstab: boolean; mounted: boolean }>;
  rcfile: Record<string, { ok: boolean; out: string }>;
}

describe('emulation lab: power-on to joined', () => {
  beforeAll(buildLabImage, 60 * 60_000);

  // A lab run removes the work directory it made once every node joined: a case that
  // reads a node's console after a passing run names its own, removed after the case.
  const workDirs: string[] = [];
  const ownWorkDir = (): string[] => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-lab-test-'));
    workDirs.push(dir);
    return ['--work-dir', dir];
  };
  afterEach(() => {
    for (const dir of workDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'amd64 BIOS, arm64 UEFI and a Pi 4 boot and join with an attacker on the segment; a node without its image fails clearly',
    async () => {
      const { code, json, stderr } = await lab([
        '--nodes',
        'amd64-bios,arm64-uefi,pi4,amd64-uefi',
        '--missing-image',
        'amd64-uefi',
        '--attack',
      ]);
      expect(code, stderr.slice(-3000)).toBe(1);
      // A node failed: the work directory the lab made is kept, with the consoles.
      const kept = labWorkDir(stderr);
      expect(stderr).toContain(`kept work dir ${kept}:`);
      expect(existsSync(path.join(kept, 'consoles', 'lab-amd64-uefi.log'))).toBe(true);
      rmSync(kept, { recursive: true, force: true });
      const byKind = new Map(json.results.map((r) => [r.kind, r]));

      for (const kind of ['amd64-bios', 'arm64-uefi'] as const) {
        const node = byKind.get(kind) as NodeResult;
        const arch = kind.startsWith('arm64') ? 'arm64' : 'amd64';
        expect(node.ok, `${kind}: ${node.failure}`).toBe(true);
        for (const step of ['dhcp', 'bootloader', 'kernel', 'initrd', 'root attached', 'booted', 'joined'] as const)
          expect(node.timeline[step], `${kind} ${step}`).toBeTypeOf('number');
        // Its own address, its own files, the root of its own architecture.
        const ack = node.events.find((e) => e.type === 'dhcp.ack');
        expect(String(ack?.detail?.ip ?? ack?.detail?.yiaddr)).toMatch(/^10\.9\.0\.1\d\d$/);
        const files = node.events.filter((e) => e.type === 'http.file' || e.type === 'tftp.file').map((e) => String(e.detail?.path));
        // Kernel, initrd and root of the one version the boot was planned with.
        const version = readlinkSync(path.join(IMAGES, 'lab', 'current'));
        expect(files).toContain(`images/lab/${version}/${arch}/vmlinuz`);
        expect(files).toContain(`images/lab/${version}/${arch}/initrd.img`);
        // The versioned export (<image>/<version>/<arch>): a reconnect gets the same bytes.
        const rootExport = `lab/${version}/${arch}`;
        expect(node.events.find((e) => e.type === 'nbd.attach')?.detail?.export).toBe(rootExport);
        // What the node saw from inside: read-only squashfs under a tmpfs overlay, its
        // name, and the effects of its PREINIT, FSTAB, SYSCTL and RCFILE entries.
        const seen = JSON.parse(node.observed as string) as Observed;
        expect(seen.root).toMatchObject({ fs: 'overlay', lower: { fs: 'squashfs', readOnly: true, export: rootExport }, upper: 'tmpfs' });
        expect(seen.hostname).toBe(node.hostname);
        expect(seen.machine).toBe(arch === 'arm64' ? 'aarch64' : 'x86_64');
        expect(seen.preinit.PREINIT_00_LAB).toEqual({ ok: true, out: 'preinit-ran' });
        expect(seen.fstab.FSTAB_01_LAB).toMatchObject({ inFstab: true, mounted: true });
        expect(seen.rcfile.RCFILE_01_LAB).toEqual({ ok: true, out: 'preinit-ran\nrcfile-ran' });
        expect(seen.rcfile.RCFILE_02_LAB).toEqual({ ok: true, out: 'swappiness=7' });
        // Joined with a token minted for this node alone.
        const minted = node.events.find((e) => e.type === 'token.minted')?.detail?.tokenId;
        const registered = json.cluster.find((n) => n.name === node.hostname);
        expect(registered?.tokenId).toBe(minted);
        expect(registered?.labels).toMatchObject({ 'kubernetes.io/arch': arch, 'bootfarm.dev/lab': 'true' });
        expect(node.events.some((e) => e.type === 'token.revoked')).toBe(true);
        // kubernetes.admission: approve, the lab's default: the token came after the lab approved the boot.
        const types = node.events.map((e) => e.type);
        expect(types.indexOf('boot.approved'), kind).toBeGreaterThan(types.indexOf('boot.pending-admission'));
        expect(types.indexOf('token.minted')).toBeGreaterThan(types.indexOf('boot.approved'));
        // The attacker (server/lab/attacker.ts) raced the node all through its boot from
        // its own address and from a pool address it claimed with forged REQUESTs for
        // the node's MAC, then replayed the node's nonce: refused every time, no
        // lease, and the replay is an alarm on the node's timeline.
        const attack = node.attack;
        expect(attack, kind).toBeDefined();
        expect(attack?.failures, kind).toEqual([]);
        expect(attack?.forgedDhcp.sent).toBeGreaterThan(0);
        expect(attack?.probes).toBeGreaterThan(10);
        for (const [what, statuses] of Object.entries(attack?.statuses ?? {}))
          expect(
            statuses.every((st) => st === 403),
            `${kind} ${what}: ${statuses.join(',')}`,
          ).toBe(true);
        expect(attack?.alarms).toContain('security.from-another-address');
      }
      const tokens = json.cluster.map((n) => n.tokenId);
      expect(new Set(tokens).size).toBe(tokens.length);

      const pi = byKind.get('pi4') as NodeResult;
      expect(pi.ok, pi.failure).toBe(true);
      const piFiles = pi.events.filter((e) => e.type === 'tftp.file').map((e) => String(e.detail?.path));
      for (const f of ['config.txt', 'start4.elf', 'fixup4.dat', 'cmdline.txt', 'kernel8.img', 'initrd.img'])
        expect(
          piFiles.some((p) => p.endsWith(f)),
          f,
        ).toBe(true);
      // Past its firmware: the kernel, initramfs and cmdline.txt the scripted
      // bootloader fetched boot in QEMU virt (server/lab/pi-kernel-guest.ts); the node
      // attaches its root and joins with its own token like the QEMU boards.
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(pi.timeline[step], `pi4 ${step}`).toBeTypeOf('number');
      const piVersion = readlinkSync(path.join(IMAGES, 'lab', 'current'));
      expect(pi.events.find((e) => e.type === 'nbd.attach')?.detail?.export).toBe(`lab/${piVersion}/arm64`);
      expect((JSON.parse(pi.observed as string) as Observed).hostname).toBe('lab-pi4');
      expect(json.cluster.find((n) => n.name === 'lab-pi4')?.tokenId).toBe(
        pi.events.find((e) => e.type === 'token.minted')?.detail?.tokenId,
      );

      const broken = byKind.get('amd64-uefi') as NodeResult;
      expect(broken.ok).toBe(false);
      expect(broken.failure).toContain('images/no-such-image/amd64/vmlinuz: not found on the server (last step: bootloader)');
      expect(json.cluster.some((n) => n.name === broken.hostname)).toBe(false);
    },
    45 * 60_000,
  );

  it(
    'bootfarm in its container restarts at each step of a boot and the node still joins',
    async () => {
      // Restarted once the node has its bootloader, its kernel, its initrd, once its
      // root is attached and once it has booted: each restart lands in the next
      // step's requests (the lease, the inventory, the boot's session and nonce come
      // back from the state directory; iPXE fetches again; the root's client
      // reconnects; the agent waits out the outage before its join fetch).
      const steps = ['bootloader', 'kernel', 'initrd', 'root attached', 'booted'];
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'amd64-bios', '--restart-server-at', steps.join(',')]);
      expect(code, stderr.slice(-3000)).toBe(0);
      // Every node joined: the work directory the lab made is gone.
      expect(existsSync(labWorkDir(stderr))).toBe(false);
      const [node] = json.results as [NodeResult];
      expect(node.ok, node.failure).toBe(true);
      const restarts = (json as LabJson & { restarts: Array<{ afterStep: string; node: string; passed?: string[] }> }).restarts;
      // Steps the node went through within one poll of the lab share one restart (listed under `passed`).
      expect(restarts.flatMap((r) => [...(r.passed ?? []), r.afterStep]).sort()).toEqual([...steps].sort());
      // iPXE can fetch its script, kernel and initrd within one poll of the lab; the initramfs's attach comes later.
      expect(restarts.length).toBeGreaterThanOrEqual(2);
      expect(restarts.every((r) => r.node === 'amd64-bios')).toBe(true);
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-amd64-bios']);
    },
    30 * 60_000,
  );

  // One case per architecture, one per way to stop (each of the four was run by hand, bench/RESULTS.md). In the
  // first a new image version is published while bootfarm is down; the second, a graceful stop, is an upgrade:
  // bootfarm comes back as a container of a newly built server image.
  it.each([
    ['amd64-bios', 'kill', 'SIGKILL', false],
    ['arm64-uefi', 'term', 'SIGTERM', true],
  ] as const)(
    'a joined %s node keeps its root while bootfarm is stopped (%s), kept down 30 s and started again (upgraded: %s)',
    async (kind, how, signal, upgrade) => {
      // server/lab/outage.ts: SIGKILL (a crash) or SIGTERM (a graceful stop) of
      // bootfarm's container with the root attached and a reading loop running; a read
      // issued while it is down blocks and finishes once it is back; then a cold read of
      // another file never read before, a file on the overlay, the agent's report.
      const { code, json, stderr } = await lab([
        '--server',
        'docker',
        '--nodes',
        kind,
        '--restart-server-after-join',
        '30',
        '--restart-signal',
        how,
        ...(upgrade ? ['--upgrade-server'] : ['--publish-during-outage']),
        ...ownWorkDir(),
      ]);
      const [node] = json.results as [NodeResult & { outage?: OutageReport }];
      if (!upgrade) {
        // The node reconnected to the version it mounted (the new one differs in size: its client would refuse it)
        // and does not see the new version's marker; gc keeps the old version for it, the new one as current.
        const publish = node.publish as NonNullable<NodeResult['publish']>;
        expect(publish.to).toBe(`${publish.from}-lab-next`);
        expect(publish.markerOnNode).toBe(false);
        expect(publish.gc.find((d) => d.version === publish.from)).toMatchObject({
          keep: true,
          reasons: [expect.stringMatching(/^held by lab-amd64-bios \(attached /), `open now (lab/${publish.from}/amd64)`],
        });
        expect(publish.gc.find((d) => d.version === publish.to)).toMatchObject({ keep: true, reasons: ['current'] });
        // The lab put its image cache back as it found it.
        expect(path.basename(readlinkSync(path.join(IMAGES, 'lab', 'current')))).toBe(publish.from);
      }
      if (upgrade) {
        // A different image took over (the same tree, built again with its own build label).
        expect(node.upgrade?.from).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(node.upgrade?.to).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(node.upgrade?.to).not.toBe(node.upgrade?.from);
      } else {
        expect(node.upgrade).toBeUndefined();
      }
      expect(code, `${node.failure}\n${stderr.slice(-3000)}`).toBe(0);
      expect(node.ok, node.failure).toBe(true);
      const outage = node.outage as OutageReport;
      expect(outage.signal).toBe(signal);
      expect(outage.downSeconds).toBeGreaterThanOrEqual(30);
      expect(outage.blockedRead.sha256).toBe(outage.blockedRead.expected);
      expect(outage.afterReturn.sha256).toBe(outage.afterReturn.expected);
      expect(outage.afterReturn.file).not.toBe(outage.blockedRead.file);
      expect(outage.afterReturn.overlay.read).toBe(outage.afterReturn.overlay.wrote);
      expect(outage.afterReturn.agentAlive).toBe(true);
      // A loop of cold reads ran across the kill: every pass gave the image's bytes.
      expect(outage.reader.passes).toBeGreaterThanOrEqual(2);
      expect(outage.reader.wrong).toEqual([]);
      expect(outage.failure).toBeUndefined();
      // The node's kernel log: its client noticed, waited, reconnected; nothing failed below squashfs.
      const consoleText = readFileSync(node.console, 'utf8');
      expect(consoleText).toMatch(/bootfarm-nbd: connection to 10\.9\.0\.1:10809 lost/);
      expect(consoleText).toMatch(/bootfarm-nbd: reconnected to 10\.9\.0\.1:10809 after [\d.]+ s/);
      expect(consoleText).not.toMatch(/SQUASHFS error|I\/O error, dev nbd0|Buffer I\/O error/);
    },
    45 * 60_000,
  );

  it(
    'a joined NBD_TO_RAM node runs from RAM: with bootfarm killed and kept down, it reads unread files and answers',
    async () => {
      // bootfarm.toram=1: the initramfs copied the image to a tmpfs and let NBD go. A
      // read issued while bootfarm is down must finish while it is still down.
      const { code, json, stderr } = await lab([
        '--server',
        'docker',
        '--nodes',
        'amd64-bios',
        '--to-ram',
        'amd64-bios',
        '--restart-server-after-join',
        '30',
        '--restart-signal',
        'kill',
        ...ownWorkDir(),
      ]);
      const [node] = json.results as [NodeResult & { outage?: OutageReport }];
      expect(code, `${node.failure}\n${stderr.slice(-3000)}`).toBe(0);
      const outage = node.outage as OutageReport;
      expect(outage.root).toBe('ram');
      expect(outage.nodeRoot).toEqual({ source: 'toram', nbdConnected: false });
      expect(outage.blockedRead.sha256).toBe(outage.blockedRead.expected);
      expect(outage.blockedRead.finishedAfterReadySeconds).toBeLessThan(0);
      expect(outage.afterReturn.sha256).toBe(outage.afterReturn.expected);
      expect(outage.reader.wrong).toEqual([]);
      expect(outage.failure).toBeUndefined();
      const consoleText = readFileSync(node.console, 'utf8');
      expect(consoleText).toMatch(/bootfarm: copying \d+ bytes of lab\/[0-9a-f]+\/amd64 to RAM/);
      expect(consoleText).not.toMatch(/bootfarm-nbd: connection to 10\.9\.0\.1:10809 lost/);
    },
    30 * 60_000,
  );

  it(
    'kubernetes.admission tpm: the node with its registered swtpm joins; the same image on a VM with another swtpm is refused (ek-mismatch)',
    async () => {
      // Each node's swtpm EK is registered (tpm.ek) before it powers on; lab-amd64-uefi-2
      // boots with a different, fresh swtpm (server/lab/lab-tpm.ts).
      const { code, json, stderr } = await lab([
        '--nodes',
        'amd64-uefi*2',
        '--admission',
        'tpm',
        '--tpm-impostor',
        'lab-amd64-uefi-2',
        '--timeout',
        '1800',
        // The impostor fails by design, so the lab would keep a work directory of its own.
        ...ownWorkDir(),
      ]);
      expect(code, stderr.slice(-3000)).toBe(1);
      const byName = new Map(json.results.map((r) => [r.hostname, r]));

      const node = byName.get('lab-amd64-uefi') as NodeResult;
      expect(node.ok, node.failure).toBe(true);
      const types = node.events.map((e) => e.type);
      // The agent's credential activation with the guest's TPM came first; the token only after it.
      for (const step of ['tpm.challenge', 'tpm.attested', 'token.minted', 'joined']) expect(types, step).toContain(step);
      expect(types.indexOf('tpm.attested')).toBeGreaterThan(types.indexOf('tpm.challenge'));
      expect(types.indexOf('token.minted')).toBeGreaterThan(types.indexOf('tpm.attested'));
      expect(types.indexOf('joined')).toBeGreaterThan(types.indexOf('token.minted'));
      expect(types).not.toContain('tpm.refused');
      expect(node.events.find((e) => e.type === 'tpm.attested')?.detail?.ekSource).toBe('config');
      expect(json.cluster.find((n) => n.name === node.hostname)?.tokenId).toBe(
        node.events.find((e) => e.type === 'token.minted')?.detail?.tokenId,
      );

      // The impostor booted the same image as far as its agent, was refused with the reason, and got no token.
      const impostor = byName.get('lab-amd64-uefi-2') as NodeResult;
      expect(impostor.ok).toBe(false);
      expect(impostor.lastStep).toBe('booted');
      expect(impostor.failure).toMatch(
        /^tpm\.refused ek-mismatch: this machine's TPM has EK [0-9a-f]+.* not lab-amd64-uefi-2's registered EK/,
      );
      expect(impostor.events.find((e) => e.type === 'tpm.refused')?.detail?.reason).toBe('ek-mismatch');
      expect(impostor.events.map((e) => e.type)).not.toContain('token.minted');
      expect(impostor.events.map((e) => e.type)).not.toContain('tpm.attested');
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-amd64-uefi']);
    },
    45 * 60_000,
  );

  it(
    'bootfarm lab down removes what an interrupted lab left: its processes, namespaces, server container and its volume',
    async () => {
      // What a killed `lab run --server docker` leaves: a lab namespace set with a process
      // inside, and its server's network holder, made from the server image as the lab
      // makes it: the image's VOLUME /var/lib/bootfarm gives it an anonymous volume.
      const left = await NetLab.create('lab');
      const host = await left.addHost('srv', { address: '10.9.0.1/24' });
      const sleeper = left.spawn(host.ns, 'sleep', ['600'], 'leftover');
      await buildServerImage(await connectDocker(), { tag: LAB_INNER_SERVER_TAG, log: () => undefined });
      const holder = `${left.id}-bootfarm-net`;
      let volumes: string[] = [];
      try {
        await runOk('docker', [
          'run',
          '-d',
          '--name',
          holder,
          '--network',
          'none',
          '--entrypoint',
          'sleep',
          LAB_INNER_SERVER_TAG,
          'infinity',
        ]);
        volumes = await volumesOf(holder);
        expect(volumes).toHaveLength(1);
        const down = await run(process.execPath, [CLI, 'lab', 'down'], 60_000);
        expect(down.code, down.stderr).toBe(0);
        expect(down.stdout).toMatch(/^removed \d+ lab namespace\(s\)\n$/);
        expect(down.stderr).toContain(`${host.ns}: ended 1 process(es)`);
        expect(down.stderr).toContain(`removed container ${holder}`);
        expect(await sleeper.exited).not.toBe(0);
        const remaining = (await run('ip', ['netns', 'list'])).stdout;
        expect(remaining).not.toContain(left.id);
        // Removed with its container (docker rm -v), not left dangling.
        expect((await volumeNames()).filter((v) => volumes.includes(v))).toEqual([]);
      } finally {
        // A failed case's leftovers, removed here (nothing when lab down did its work).
        await run('docker', ['rm', '-f', '-v', holder]);
        for (const v of volumes) await run('docker', ['volume', 'rm', v]);
        await left.destroy();
      }
      // The server image is built when missing or stale (minutes on a fresh machine).
    },
    15 * 60_000,
  );
});
