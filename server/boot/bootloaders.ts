// Installs the network bootloaders bootfarm hands out into tftp.root, from Debian's
// packages; used by `bootfarm bootloaders` (server/cli/main.ts) and by the lab
// (server/lab/lab.ts), so it lives below both:
// - iPXE (package `ipxe`): undionly.kpxe (BIOS), ipxe.efi and snponly.efi (UEFI x86-64);
// - GRUB for arm64 UEFI (package `grub-efi-arm64-bin`): grub/arm64-efi/core.efi and
//   its modules, laid out by grub-mknetdir (package `grub-common`), for UEFI PXE
//   and UEFI HTTP boot alike. The arm64 .deb is
//   fetched with a private apt state directory, so the host's dpkg architectures
//   are not changed;
// - Secure Boot (installSecureBoot): Debian's signed chain, shim (`shim-signed`,
//   signed by Microsoft's UEFI CA) and the network GRUB (`grub-efi-amd64-signed`,
//   `grub-efi-arm64-signed`, signed by Debian) under secureboot/ with the names shim
//   loads (server/boot/secure-boot-files.ts); amd64 from the host's packages, arm64
//   fetched as the arm64 GRUB is.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SetupError } from '../errors.js';
import { SECURE_BOOT_FILES } from './secure-boot-files.js';

const IPXE_DIR = '/usr/lib/ipxe';
const IPXE_FILES = ['undionly.kpxe', 'ipxe.efi', 'snponly.efi'] as const;
const GRUB_ARM64_CORE = 'grub/arm64-efi/core.efi';

export interface InstalledBootloader {
  file: string;
  source: string;
}

export function installIpxe(tftpRoot: string, sourceDir = IPXE_DIR): InstalledBootloader[] {
  const missing = IPXE_FILES.filter((f) => !existsSync(path.join(sourceDir, f)));
  if (missing.length > 0) {
    throw new SetupError(
      `${missing.map((f) => path.join(sourceDir, f)).join(', ')} not found: install Debian's iPXE with "apt-get install ipxe"`,
    );
  }
  return IPXE_FILES.map((file) => installFile(path.join(sourceDir, file), tftpRoot, file));
}

function installFile(source: string, tftpRoot: string, file: string): InstalledBootloader {
  const target = path.join(tftpRoot, file);
  mkdirSync(path.dirname(target), { recursive: true });
  // Copy then rename, so a node fetching the file never sees half of it.
  const tmp = path.join(path.dirname(target), `.${path.basename(file)}.tmp`);
  copyFileSync(source, tmp);
  renameSync(tmp, target);
  return { file, source };
}

function run(cmd: string, args: string[], what: string, cwd?: string): void {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT')
      throw new SetupError(`${what}: ${cmd} not found (apt-get install ${cmd === 'grub-mknetdir' ? 'grub-common' : 'apt dpkg'})`);
    throw new SetupError(`${what} failed: ${cmd} ${args.join(' ')}: ${e.stderr?.toString().trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/**
 * Where arm64 packages come from. `seedDirs` first (read-only, e.g. the lab image's
 * /opt/bootfarm/lab/debs: fetched and signature-checked by apt when that image
 * was built, for a lab container with no route to a Debian mirror); else the
 * current version is downloaded into `cacheDir`, and a copy kept there from an
 * earlier download is used only when the download fails. A cached .deb found
 * first would shadow every later fix for good: GRUB and shim updates (SBAT
 * revocations among them) must reach the TFTP root on the next install.
 */
export interface Arm64Packages {
  cacheDir: string;
  seedDirs?: readonly string[] | undefined;
}

/** Debian version order (dpkg --compare-versions). */
function newerThan(a: string, b: string): boolean {
  try {
    execFileSync('dpkg', ['--compare-versions', a, 'gt', b], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A filename's version field, URL-decoded (apt writes 1:2.0 as 1%3a2.0); undefined when it is not one. */
function debVersion(field: string): string | undefined {
  try {
    const version = decodeURIComponent(field);
    return /^[0-9][A-Za-z0-9.+~:-]*$/.test(version) ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The newest `<pkg>_<version>_arm64.deb` in `dirs` (a filename's version is URL-encoded: 1%3a2.0 is 1:2.0). */
function newestDeb(dirs: readonly string[], pkg: string): string | undefined {
  let best: { file: string; version: string } | undefined;
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      if (!f.startsWith(`${pkg}_`) || !f.endsWith('_arm64.deb')) continue;
      const version = debVersion(f.slice(pkg.length + 1, -'_arm64.deb'.length));
      // A name that is no version (a stray or hand-made file) is not a candidate.
      if (version === undefined) continue;
      if (!best || newerThan(version, best.version)) best = { file: path.join(dir, f), version };
    }
  }
  return best?.file;
}

const listsFetched = new Set<string>();

/** Downloads the current version of `pkg` (arm64) into `cacheDir` with a private apt state; returns the .deb. */
function downloadArm64(cacheDir: string, pkg: string): string {
  const lists = path.join(cacheDir, 'apt-lists');
  const archives = path.join(cacheDir, 'apt-cache');
  mkdirSync(path.join(lists, 'partial'), { recursive: true });
  mkdirSync(path.join(archives, 'archives', 'partial'), { recursive: true });
  const apt = [
    '-qq',
    '-o',
    `Dir::State::Lists=${lists}`,
    '-o',
    `Dir::Cache=${archives}`,
    '-o',
    'APT::Architecture=arm64',
    '-o',
    'APT::Architectures::=arm64',
    '-o',
    'Debug::NoLocking=1',
  ];
  const before = new Set(readdirSync(cacheDir));
  // Once per process and cache: an install fetches up to three packages from the same lists.
  if (!listsFetched.has(cacheDir)) {
    run('apt-get', [...apt, 'update'], 'fetching the arm64 package lists');
    listsFetched.add(cacheDir);
  }
  run('apt-get', [...apt, 'download', pkg], `downloading ${pkg} (arm64)`, cacheDir);
  // The file apt-get just wrote (new, or the same version again: then the newest there).
  const written = readdirSync(cacheDir).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('_arm64.deb') && !before.has(f));
  const deb = written.length > 0 ? path.join(cacheDir, written[0] as string) : newestDeb([cacheDir], pkg);
  if (!deb) throw new SetupError(`apt-get download ${pkg} (arm64) produced no .deb`);
  return deb;
}

/** The .deb of an arm64 package (Arm64Packages says from where), unpacked; `note` says when a cached copy stood in. */
function unpackArm64Package(packages: Arm64Packages, pkg: string): { deb: string; root: string; note?: string } {
  const { cacheDir } = packages;
  mkdirSync(cacheDir, { recursive: true });
  let deb = newestDeb(packages.seedDirs ?? [], pkg);
  let note: string | undefined;
  if (!deb) {
    try {
      deb = downloadArm64(cacheDir, pkg);
    } catch (err) {
      const cached = newestDeb([cacheDir], pkg);
      if (!cached) throw err;
      deb = cached;
      note = `cached copy: the download failed (${(err as Error).message})`;
    }
  }
  const root = path.join(cacheDir, pkg);
  rmSync(root, { recursive: true, force: true });
  run('dpkg-deb', ['-x', deb, root], `unpacking ${pkg}`);
  return { deb, root, ...(note ? { note } : {}) };
}

/** Builds grub/arm64-efi/ under tftpRoot; the cache dir keeps the downloaded .deb. */
export function installGrubArm64(tftpRoot: string, packages: Arm64Packages): InstalledBootloader[] {
  const { deb, root: unpacked, note } = unpackArm64Package(packages, 'grub-efi-arm64-bin');
  // Build beside the live tree, then swap directories, so a booting node never sees a half-written one.
  const staging = path.join(tftpRoot, '.grub-staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  run(
    'grub-mknetdir',
    // The core's prefix is /grub on the device it was loaded from: (tftp,<server>)
    // for UEFI PXE, (http,<server>:<port>) for UEFI HTTP boot (GRUB's efinet reads
    // the boot device path). grub-mknetdir builds in efinet and tftp only, so an
    // HTTP-booted core stopped at "disk 'http,...' not found" before it could
    // load a module: http is built in too.
    [`--net-directory=${staging}`, '--subdir=grub', '--modules=http', '-d', path.join(unpacked, 'usr/lib/grub/arm64-efi')],
    'grub-mknetdir for arm64-efi',
  );
  const live = path.join(tftpRoot, 'grub', 'arm64-efi');
  mkdirSync(path.dirname(live), { recursive: true });
  rmSync(`${live}.old`, { recursive: true, force: true });
  if (existsSync(live)) renameSync(live, `${live}.old`);
  renameSync(path.join(staging, 'grub', 'arm64-efi'), live);
  rmSync(`${live}.old`, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
  return [{ file: GRUB_ARM64_CORE, source: note ? `${deb} (${note})` : deb }];
}

// The signed network GRUB (grubnet*.efi.signed) has every module it needs built in
// (efinet, tftp, http, linux, shim_lock...): under Secure Boot it may load none
// from the network. Its prefix is /grub on the boot server and its built-in
// config sources $prefix/<platform>/grub.cfg if present, else $prefix/grub.cfg,
// which bootfarm renders for the client's node (server/boot/files/generated.ts).
const SIGNED = {
  x86_64: { shim: '/usr/lib/shim/shimx64.efi.signed', grub: '/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed' },
  arm64: { shim: 'usr/lib/shim/shimaa64.efi.signed', grub: 'usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed' },
} as const;

/**
 * Debian's signed chain into tftpRoot/secureboot/: amd64 from the host's packages,
 * arm64 (unless `arm64` is false) found or fetched as `packages` says.
 */
export function installSecureBoot(tftpRoot: string, packages: Arm64Packages, arm64 = true): InstalledBootloader[] {
  const missing = [SIGNED.x86_64.shim, SIGNED.x86_64.grub].filter((f) => !existsSync(f));
  if (missing.length > 0)
    throw new SetupError(
      `${missing.join(', ')} not found: install Debian's signed chain with "apt-get install shim-signed grub-efi-amd64-signed"`,
    );
  const installed = [
    installFile(SIGNED.x86_64.shim, tftpRoot, SECURE_BOOT_FILES.x86_64.shim),
    installFile(SIGNED.x86_64.grub, tftpRoot, SECURE_BOOT_FILES.x86_64.grub),
  ];
  if (arm64) {
    const shim = unpackArm64Package(packages, 'shim-signed');
    const grub = unpackArm64Package(packages, 'grub-efi-arm64-signed');
    const noted = (i: InstalledBootloader, note: string | undefined) => (note ? { ...i, source: `${i.source} (${note})` } : i);
    installed.push(
      noted(installFile(path.join(shim.root, SIGNED.arm64.shim), tftpRoot, SECURE_BOOT_FILES.arm64.shim), shim.note),
      noted(installFile(path.join(grub.root, SIGNED.arm64.grub), tftpRoot, SECURE_BOOT_FILES.arm64.grub), grub.note),
    );
  }
  return installed;
}
