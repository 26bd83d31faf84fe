// `bootfarm bootloaders`: installs the network bootloaders bootfarm hands out
// into tftp.root, from Debian's packages: iPXE's undionly.kpxe (BIOS), ipxe.efi
// and snponly.efi (UEFI x86-64), from the `ipxe` package.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export const IPXE_DIR = '/usr/lib/ipxe';
export const IPXE_FILES = ['undionly.kpxe', 'ipxe.efi', 'snponly.efi'] as const;

export interface InstalledBootloader {
  file: string;
  source: string;
}

export function installBootloaders(tftpRoot: string, sourceDir = IPXE_DIR): InstalledBootloader[] {
  const missing = IPXE_FILES.filter((f) => !existsSync(path.join(sourceDir, f)));
  if (missing.length > 0) {
    throw new Error(`${missing.map((f) => path.join(sourceDir, f)).join(', ')} not found: install Debian's iPXE with "apt-get install ipxe"`);
  }
  mkdirSync(tftpRoot, { recursive: true });
  return IPXE_FILES.map((file) => {
    const source = path.join(sourceDir, file);
    // Copy through a temporary name, so a node fetching the file never sees half of it.
    const tmp = path.join(tftpRoot, `.${file}.tmp`);
    copyFileSync(source, tmp);
    copyFileSync(tmp, path.join(tftpRoot, file));
    return { file, source };
  });
}
