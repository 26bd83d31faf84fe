// What bootfarm serves a U-Boot board first: the script its distro boot sources
// after DHCP (bootcmd_dhcp: `dhcp ${scriptaddr} boot.scr.uimg; source`). The same
// script for every board: it hands over to U-Boot's PXE support, whose `pxe get`
// fetches pxelinux.cfg/01-<mac>, the node's own generated file (kernel, initrd,
// command line), and `pxe boot` boots it with U-Boot's device tree (fdt_addr).
import { FileCache } from '../files/file-cache.js';
import type { FileAnswer } from '../files/resolver.js';
import { ubootScriptImage } from './script-image.js';

/** U-Boot's boot_script_dhcp default (include/config_distro_bootcmd.h). */
export const UBOOT_SCRIPT_PATH = 'boot.scr.uimg';

/**
 * arm64 boards: `pxe boot` hands the kernel to booti. Debian's arm64 vmlinuz is a
 * plain Image (EFI stub, "ARM\x64" magic; bookworm's 6.1 and unstable's 7.2 alike,
 * checked in the lab), which booti starts as it is. An image whose kernel is a
 * gzip-compressed Image (Image.gz, as many board vendors ship) is another matter:
 * booti unpacks one only when kernel_comp_addr_r (where to
 * inflate it) and kernel_comp_size (the most compressed bytes to read) are set, and
 * otherwise stops with "kernel_comp_addr_r or kernel_comp_size is not provided!"
 * (U-Boot cmd/booti.c). Debian's qemu_arm64 build sets neither (its console,
 * test/fixtures/uboot/README.md), nor do many boards' environments. So where the
 * board has none, the script sets them: 128 MiB above ramdisk_addr_r, where `pxe
 * boot` puts the initrd, so an initrd up to 128 MiB stays clear of the inflated
 * Image (booti then moves it back to kernel_addr_r); 64 MiB of compressed kernel at
 * most. A board's own values win. bootz (armhf) reads neither.
 */
const KERNEL_COMP_DEFAULTS =
  'if env exists kernel_comp_addr_r; then true; else setexpr kernel_comp_addr_r ${ramdisk_addr_r} + 0x8000000; setenv kernel_comp_size 0x4000000; fi\n';

// No quote characters: U-Boot's hush would take one as the start of a string.
export const UBOOT_SCRIPT = `echo bootfarm: pxe get and pxe boot\n${KERNEL_COMP_DEFAULTS}pxe get && pxe boot\n`;

const image = ubootScriptImage(UBOOT_SCRIPT, 'bootfarm netboot');

export function ubootScriptAnswer(): FileAnswer {
  return { found: true, from: 'generated:u-boot-script', size: image.length, open: async () => FileCache.fromBuffer(image) };
}
