// Installs the network bootloaders bootfarm hands out into tftp.root, from Debian's
// packages; used by `bootfarm bootloaders` (server/cli/main.ts) and by the lab
// (server/lab/lab.ts), so it lives below both:
// - iPXE (package `ipxe`): undionly.kpxe (BIOS), ipxe.efi and snponly.efi (UEFI x86-64);
// - GRUB for arm64 UEFI (package `grub-efi-arm64-bin`): grub/arm64-efi/core.efi and
//   its modules, laid out by grub-mknetdir (package `grub-common`), for UEFI PXE
//   and UEFI HTTP boot alike. The arm64 .deb is
//   fetched with a private apt state directory, so the host's dpkg architectures
//   are not changed.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SetupError } from '../errors.js';

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
  mkdirSync(tftpRoot, { recursive: true });
  return IPXE_FILES.map((file) => {
    const source = path.join(sourceDir, file);
    // Copy then rename, so a node fetching the file never sees half of it.
    const tmp = path.join(tftpRoot, `.${file}.tmp`);
    copyFileSync(source, tmp);
    renameSync(tmp, path.join(tftpRoot, file));
    return { file, source };
  });
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

/** Builds grub/arm64-efi/ under tftpRoot; `cacheDir` keeps the downloaded .deb. */
export function installGrubArm64(tftpRoot: string, cacheDir: string): InstalledBootloader[] {
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
  let deb = readdirSync(cacheDir).find((f) => f.startsWith('grub-efi-arm64-bin_') && f.endsWith('.deb'));
  if (!deb) {
    run('apt-get', [...apt, 'update'], 'fetching the arm64 package lists');
    run('apt-get', [...apt, 'download', 'grub-efi-arm64-bin'], 'downloading grub-efi-arm64-bin', cacheDir);
    deb = readdirSync(cacheDir).find((f) => f.startsWith('grub-efi-arm64-bin_') && f.endsWith('.deb'));
    if (!deb) throw new SetupError('apt-get download grub-efi-arm64-bin produced no .deb');
  }
  const unpacked = path.join(cacheDir, 'grub-efi-arm64-bin');
  rmSync(unpacked, { recursive: true, force: true });
  run('dpkg-deb', ['-x', path.join(cacheDir, deb), unpacked], 'unpacking grub-efi-arm64-bin');
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
  return [{ file: GRUB_ARM64_CORE, source: path.join(cacheDir, deb) }];
}
