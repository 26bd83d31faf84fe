// Real firmware through bootfarm's DHCP, TFTP and HTTP: OVMF's own UEFI PXE
// fetches Debian's ipxe.efi over TFTP; that iPXE comes back as iPXE, gets its
// per-node script over HTTP, and fetches the kernel and initrd of its image.
// SeaBIOS boots through QEMU's iPXE ROM, so it goes to the script directly.
// The -http guests have the firmware's PXE off, so UEFI HTTP boot runs instead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { CLI, nodeArgs, startBootfarm, type BootfarmProcess, type LogLine } from '../lib/bootfarm.js';
import { startGuest, type GuestFirmware } from '../../server/lab/qemu.js';
import { installGrubArm64, installIpxe, installSecureBoot } from '../../server/boot/bootloaders.js';
import { signIpxe } from '../../server/boot/signing.js';
import type { Background } from '../../server/lab/proc.js';

const GUEST_TIMEOUT = 180_000;
// Debian's snakeoil db key (package ovmf), enrolled in OVMF_VARS_4M.snakeoil.fd: the site's own key.
const SNAKEOIL = { key: '/usr/share/ovmf/PkKek-1-snakeoil.key', cert: '/usr/share/ovmf/PkKek-1-snakeoil.pem' };
// How long a node may stay silent after its bootloader before its timeline gets a hint (boot.silentBootloaderSeconds).
const SILENT_SECONDS = 5;
const API_TOKEN = 'firmware-test-token';

describe("QEMU guests boot through bootfarm's DHCP, TFTP and HTTP", () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let srvNs: string;

  beforeAll(async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-fw-'));
    for (const arch of ['amd64', 'arm64']) {
      for (const f of ['vmlinuz', 'initrd.img']) {
        mkdirSync(path.join(work, 'images/base/v1', arch), { recursive: true });
        writeFileSync(path.join(work, 'images/base/v1', arch, f), randomBytes(256 * 1024));
      }
    }
    symlinkSync('v1', path.join(work, 'images/base/current'));
    // The site-key node's image: its "kernel" is Debian's unsigned ipxe.efi, a real EFI
    // binary the firmware's LoadImage checks against db (iPXE boots kernels through it).
    mkdirSync(path.join(work, 'images/unsigned-efi/v1/amd64'), { recursive: true });
    copyFileSync('/usr/lib/ipxe/ipxe.efi', path.join(work, 'images/unsigned-efi/v1/amd64/vmlinuz'));
    writeFileSync(path.join(work, 'images/unsigned-efi/v1/amd64/initrd.img'), randomBytes(64 * 1024));
    symlinkSync('v1', path.join(work, 'images/unsigned-efi/current'));
    installIpxe(path.join(work, 'tftpboot'));
    writeFileSync(path.join(work, 'passphrase'), 'snakeoil\n');
    const signingKey = { ...SNAKEOIL, passphraseFile: path.join(work, 'passphrase') };
    signIpxe(path.join(work, 'tftpboot'), signingKey);
    installGrubArm64(path.join(work, 'tftpboot'), { cacheDir: path.join(work, 'cache') });
    installSecureBoot(path.join(work, 'tftpboot'), { cacheDir: path.join(work, 'cache') }, false);
    lab = await NetLab.create('bw');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    srvNs = srv.ns;
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: path.join(work, 'tftpboot') },
      http: { port: 8080 },
      images: { dir: path.join(work, 'images'), default: 'base' },
      boot: { signingKey, silentBootloaderSeconds: SILENT_SECONDS },
      // API reads need a token: `node show` below uses it.
      api: { token: API_TOKEN },
      nodes: [
        { mac: '52:54:00:cc:00:01', hostname: 'bios-1', arch: 'amd64' },
        { mac: '52:54:00:cc:00:02', hostname: 'uefi-1', arch: 'amd64' },
        { mac: '52:54:00:cc:00:03', hostname: 'arm-1', arch: 'arm64' },
        { mac: '52:54:00:cc:00:04', hostname: 'arm-http-1', arch: 'arm64' },
        { mac: '52:54:00:cc:00:05', hostname: 'uefi-http-1', arch: 'amd64' },
        { mac: '52:54:00:cc:00:06', hostname: 'sb-1', arch: 'amd64', secureBoot: true },
        { mac: '52:54:00:cc:00:07', hostname: 'sb-off-1', arch: 'amd64' },
        { mac: '52:54:00:cc:00:08', hostname: 'site-1', arch: 'amd64', secureBoot: 'site', image: 'unsigned-efi' },
        { mac: '52:54:00:cc:00:09', hostname: 'site-ms-1', arch: 'amd64', secureBoot: 'site' },
      ],
    });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** Boots a guest until bootfarm logs `done` and, if given, its console shows `console`. */
  async function bootUntil(
    firmware: GuestFirmware | 'ovmf-snakeoil',
    mac: string,
    done: (l: LogLine) => boolean,
    console?: (line: string) => boolean,
  ): Promise<LogLine[]> {
    const since = server.bg.lines.length;
    // ovmf-snakeoil: the Secure Boot OVMF of ovmf-sb with Debian's snakeoil key enrolled as PK, KEK and db
    // instead of Microsoft's (OVMF_VARS_4M.snakeoil.fd, package ovmf): a site that enrolled its own key.
    const guest: Background =
      firmware === 'ovmf-snakeoil'
        ? await startGuest(lab, 'ovmf-sb', mac, { secureBootVars: '/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd' })
        : await startGuest(lab, firmware, mac);
    try {
      const withConsole = (err: Error) => {
        throw new Error(`${err.message}\n--- guest console:\n${guest.lines.slice(-25).join('\n')}`);
      };
      await server.waitForLog(done, GUEST_TIMEOUT, `the ${firmware} guest to fetch its kernel`, since).catch(withConsole);
      if (console) await guest.waitFor(console, GUEST_TIMEOUT, `the ${firmware} guest's console line`).catch(withConsole);
      return server.logs();
    } finally {
      await guest.stop('SIGTERM', 2000);
    }
  }

  const fetched = (logs: LogLine[], client: string) =>
    logs
      .filter((l) => (l.msg === 'tftp file sent' || l.msg === 'http file sent') && String(l.client).startsWith(client))
      .map((l) => `${l.msg.split(' ')[0]}:${String(l.path)}`);

  // The image's kernel here is random bytes: UEFI iPXE refuses to select a file
  // that is not an EFI image, so its script stops after fetching the kernel.
  it(
    "OVMF: ipxe.efi over TFTP, then the node's script and kernel over HTTP",
    async () => {
      const logs = await bootUntil(
        'ovmf',
        '52:54:00:cc:00:02',
        (l) => l.msg === 'http file sent' && l.path === 'images/base/v1/amd64/vmlinuz',
      );
      const offer = logs.find((l) => l.mac === '52:54:00:cc:00:02' && l.type === 'DISCOVER' && l.ipxe === false);
      const ip = String(logs.find((l) => l.mac === '52:54:00:cc:00:02' && l.outcome === 'ack' && l.ipxe === true)?.ip);
      expect(offer).toMatchObject({ firmware: 'uefi', bootFile: 'ipxe.efi' });
      expect(fetched(logs, ip)).toEqual(expect.arrayContaining(['http:boot/52-54-00-cc-00-02.ipxe', 'http:images/base/v1/amd64/vmlinuz']));
      // The firmware fetched ipxe.efi from the address of its first lease (iPXE then takes a new one).
      const firmwareIp = String(logs.find((l) => l.mac === '52:54:00:cc:00:02' && l.outcome === 'ack' && l.ipxe === false)?.ip);
      expect(fetched(logs, firmwareIp)).toContain('tftp:ipxe.efi');
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    "SeaBIOS with the iPXE ROM: the node's script, kernel and initrd over HTTP",
    async () => {
      const logs = await bootUntil(
        'seabios',
        '52:54:00:cc:00:01',
        (l) => l.msg === 'http file sent' && l.path === 'images/base/v1/amd64/initrd.img',
      );
      const ip = String(logs.find((l) => l.mac === '52:54:00:cc:00:01' && l.outcome === 'ack')?.ip);
      expect(fetched(logs, ip)).toEqual([
        'http:boot/52-54-00-cc-00-01.ipxe',
        'http:images/base/v1/amd64/vmlinuz',
        'http:images/base/v1/amd64/initrd.img',
      ]);
    },
    GUEST_TIMEOUT + 30_000,
  );

  // As on OVMF, the random-bytes kernel is refused (no EFI stub), so GRUB stops after fetching it.
  it(
    "arm64 UEFI (AAVMF): GRUB core.efi and its modules over TFTP, the node's GRUB config, then the kernel over HTTP",
    async () => {
      const mac = '52:54:00:cc:00:03';
      const logs = await bootUntil('aavmf', mac, (l) => l.msg === 'http file sent' && l.path === 'images/base/v1/arm64/vmlinuz');
      const offer = logs.find((l) => l.mac === mac && l.type === 'DISCOVER');
      expect(offer).toMatchObject({ firmware: 'uefi', arch: 11, bootFile: 'grub/arm64-efi/core.efi' });
      const ip = String(logs.find((l) => l.mac === mac && l.outcome === 'ack')?.ip);
      const got = fetched(logs, ip);
      expect(got[0]).toBe('tftp:grub/arm64-efi/core.efi');
      expect(got).toEqual(
        expect.arrayContaining([
          'tftp:grub/arm64-efi/normal.mod',
          'tftp:grub/arm64-efi/linux.mod',
          'tftp:grub/grub.cfg-01-52-54-00-cc-00-03',
          'http:images/base/v1/arm64/vmlinuz',
        ]),
      );
      const cfg = logs.find((l) => l.msg === 'tftp file sent' && l.path === 'grub/grub.cfg-01-52-54-00-cc-00-03');
      expect(cfg).toMatchObject({ from: 'generated:arm-1' });
    },
    GUEST_TIMEOUT + 30_000,
  );

  // UEFI HTTP boot, PXE switched off in the firmware: the whole chain is HTTP.
  // GRUB's prefix is the device it was loaded from, (http,<server>:8080)/grub,
  // so its core must carry the http module (server/boot/bootloaders.ts).
  it(
    "arm64 UEFI HTTP boot (AAVMF): core.efi, its modules, the node's GRUB config and the kernel, all over HTTP",
    async () => {
      const mac = '52:54:00:cc:00:04';
      const logs = await bootUntil('aavmf-http', mac, (l) => l.msg === 'http file sent' && l.path === 'images/base/v1/arm64/vmlinuz');
      const offer = logs.find((l) => l.mac === mac && l.type === 'DISCOVER');
      expect(offer).toMatchObject({ firmware: 'uefi-http', arch: 19, bootFile: 'http://10.9.0.1:8080/grub/arm64-efi/core.efi' });
      const ip = String(logs.find((l) => l.mac === mac && l.outcome === 'ack')?.ip);
      const got = fetched(logs, ip);
      expect(got[0]).toBe('http:grub/arm64-efi/core.efi');
      // GRUB tries grub.cfg-01-<mac> first only for a tftp prefix (grub-core/normal/main.c):
      // over HTTP it asks for grub.cfg, which bootfarm renders for the node holding the client's lease.
      expect(got).toEqual(
        expect.arrayContaining(['http:grub/arm64-efi/normal.mod', 'http:grub/grub.cfg', 'http:images/base/v1/arm64/vmlinuz']),
      );
      expect(got.filter((f) => f.startsWith('tftp:'))).toEqual([]);
      const cfg = logs.find((l) => l.msg === 'http file sent' && l.path === 'grub/grub.cfg' && l.client === ip);
      expect(cfg).toMatchObject({ from: 'generated:arm-http-1' });
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    "amd64 UEFI HTTP boot (OVMF): ipxe.efi over HTTP, then the node's script and kernel",
    async () => {
      const mac = '52:54:00:cc:00:05';
      const logs = await bootUntil('ovmf-http', mac, (l) => l.msg === 'http file sent' && l.path === 'images/base/v1/amd64/vmlinuz');
      const offer = logs.find((l) => l.mac === mac && l.type === 'DISCOVER' && l.ipxe === false);
      expect(offer).toMatchObject({ firmware: 'uefi-http', arch: 16, bootFile: 'http://10.9.0.1:8080/ipxe.efi' });
      const firmwareIp = String(logs.find((l) => l.mac === mac && l.outcome === 'ack' && l.ipxe === false)?.ip);
      expect(fetched(logs, firmwareIp)[0]).toBe('http:ipxe.efi');
      const ip = String(logs.find((l) => l.mac === mac && l.outcome === 'ack' && l.ipxe === true)?.ip);
      expect(fetched(logs, ip)).toEqual(expect.arrayContaining(['http:boot/52-54-00-cc-00-05.ipxe', 'http:images/base/v1/amd64/vmlinuz']));
    },
    GUEST_TIMEOUT + 30_000,
  );

  // Secure Boot on, Microsoft's keys enrolled (OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd).
  // The random-bytes kernel is what proves Secure Boot is on: GRUB hands it to shim
  // to verify and prints "bad shim signature", which it does only under Secure Boot.
  it(
    "OVMF with Secure Boot: a secureBoot node gets shim, then Debian's signed GRUB, its config and the kernel over TFTP; the unsigned kernel is refused",
    async () => {
      const mac = '52:54:00:cc:00:06';
      const logs = await bootUntil(
        'ovmf-sb',
        mac,
        (l) => l.msg === 'tftp file sent' && l.path === 'images/base/v1/amd64/vmlinuz',
        (line) => line.includes('bad shim signature'),
      );
      const offer = logs.find((l) => l.mac === mac && l.type === 'DISCOVER');
      expect(offer).toMatchObject({ firmware: 'uefi', bootFile: 'secureboot/shimx64.efi' });
      const ip = String(logs.find((l) => l.mac === mac && l.outcome === 'ack')?.ip);
      const got = fetched(logs, ip);
      expect(got.slice(0, 2)).toEqual(['tftp:secureboot/shimx64.efi', 'tftp:secureboot/grubx64.efi']);
      // Debian's signed network GRUB has no http module: the kernel comes over TFTP too.
      expect(got).toEqual(expect.arrayContaining(['tftp:grub/grub.cfg', 'tftp:images/base/v1/amd64/vmlinuz']));
      const cfg = logs.find((l) => l.msg === 'tftp file sent' && l.path === 'grub/grub.cfg' && String(l.client).startsWith(ip));
      expect(cfg).toMatchObject({ from: 'generated:sb-1' });
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    'OVMF with Secure Boot: a node without secureBoot gets iPXE, which the firmware refuses to run',
    async () => {
      const mac = '52:54:00:cc:00:07';
      const logs = await bootUntil(
        'ovmf-sb',
        mac,
        (l) => l.msg === 'tftp file sent' && l.path === 'ipxe.efi',
        (line) => /Access Denied/i.test(line),
      );
      // iPXE never ran: no DHCP request of its own.
      expect(logs.filter((l) => l.mac === mac && l.ipxe === true)).toEqual([]);
      // Nothing more came from it within boot.silentBootloaderSeconds: its timeline says why.
      await server.waitForLog((l) => l.mac === mac && l.hint === 'secure-boot-refused', GUEST_TIMEOUT, 'the silent-bootloader hint');
      const shown = await lab.exec(
        srvNs,
        process.execPath,
        nodeArgs(CLI, ['node', 'show', mac, '--config', server.configFile, '--token', API_TOKEN]),
      );
      expect(shown.code, shown.stderr).toBe(0);
      const { events } = JSON.parse(shown.stdout) as { events: Array<{ type: string; detail?: Record<string, unknown> }> };
      expect(events.filter((e) => e.type === 'boot.hint').map((e) => e.detail)).toContainEqual({
        hint: 'secure-boot-refused',
        file: 'ipxe.efi',
        message:
          'firmware likely refused an unsigned bootloader (ipxe.efi; Secure Boot on?): set secureBoot: true on this node (docs/configuration.md, Secure Boot)',
      });
    },
    GUEST_TIMEOUT + 30_000,
  );

  // secureBoot: site: the machine's db holds the site's own key (here Debian's
  // snakeoil test key), not Microsoft's; bootfarm signed iPXE with boot.signingKey.
  it(
    "OVMF with the site's key enrolled: a secureBoot: site node runs iPXE signed with that key, and the firmware refuses the unsigned EFI kernel iPXE loads",
    async () => {
      const mac = '52:54:00:cc:00:08';
      const logs = await bootUntil(
        'ovmf-snakeoil',
        mac,
        (l) => l.msg === 'http file sent' && l.path === 'images/unsigned-efi/v1/amd64/vmlinuz',
        // iPXE probes a kernel with the firmware's LoadImage, which under Secure Boot
        // refuses this unsigned (but valid) EFI binary, so no image type takes it.
        (line) => line.includes('Could not select: Exec format error'),
      );
      const offer = logs.find((l) => l.mac === mac && l.type === 'DISCOVER' && l.ipxe === false);
      expect(offer).toMatchObject({ firmware: 'uefi', bootFile: 'secureboot/ipxe-site.efi' });
      // The signed iPXE ran: its own DHCP, then its script and the image's files over HTTP.
      const ip = String(logs.find((l) => l.mac === mac && l.outcome === 'ack' && l.ipxe === true)?.ip);
      expect(fetched(logs, ip)).toEqual(
        expect.arrayContaining(['http:boot/52-54-00-cc-00-08.ipxe', 'http:images/unsigned-efi/v1/amd64/vmlinuz']),
      );
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    "OVMF with Microsoft's keys only: iPXE signed with the site key is refused like an unsigned one",
    async () => {
      const mac = '52:54:00:cc:00:09';
      const logs = await bootUntil(
        'ovmf-sb',
        mac,
        (l) => l.msg === 'tftp file sent' && l.path === 'secureboot/ipxe-site.efi',
        (line) => /Access Denied/i.test(line),
      );
      expect(logs.filter((l) => l.mac === mac && l.ipxe === true)).toEqual([]);
    },
    GUEST_TIMEOUT + 30_000,
  );
});
