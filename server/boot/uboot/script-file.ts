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
 * booti unpacks one only when kernel_comp_addr_r (where to inflate it) and
 * kernel_comp_size (the most compressed bytes to read) are set, and otherwise stops
 * with "kernel_comp_addr_r or kernel_comp_size is not provided!" (U-Boot
 * cmd/booti.c). Debian's qemu_arm64 build sets neither (its console,
 * test/fixtures/uboot/README.md), nor do many boards' environments. So the script
 * sets each one the board has not set; a board's own value wins.
 *
 * "Not set" is `test x${var} = x`, not `env exists`: that subcommand is missing
 * where CONFIG_CMD_ENV_EXISTS is off (and on older U-Boot), and there the failed
 * test would overwrite the board's values. The x-prefix form needs only `test`,
 * which distro boot's own commands use, and depends neither on how a hush passes
 * an empty quoted word nor on `test -n` with a missing operand (unquoted `test -n
 * ${var}` of an empty variable is false on Debian's 2023.01, true on a POSIX
 * test). Quotes themselves are fine: U-Boot's hush parses them (Debian's
 * bootcmd_dhcp runs `test -z "${fdtfile}"`).
 *
 * Where to inflate: 128 MiB above ramdisk_addr_r, where `pxe boot` puts the initrd,
 * so an initrd up to 128 MiB is not overwritten before bootm moves it (QEMU virt:
 * 0x4c000000). A board without ramdisk_addr_r cannot take a label with an initrd
 * (`pxe boot` stops at "missing environment variable: ramdisk_addr_r"), but a
 * node's own pxelinux.cfg template may have none; then the base is kernel_addr_r,
 * which `pxe boot` needs for every label: 128 MiB above it clears the compressed
 * kernel loaded there (at most kernel_comp_size, 64 MiB). No fixed address is in
 * RAM on every board (QEMU virt's starts at 0x40000000, a Raspberry Pi's at 0),
 * and setexpr on an empty base fails with its usage text, leaving the address
 * unset. With neither variable nothing is set: `pxe boot` cannot load a kernel
 * there either. bootz (armhf) reads neither variable.
 */
const KERNEL_COMP_DEFAULTS =
  'if test x${kernel_comp_addr_r} = x; then' +
  ' if test x${ramdisk_addr_r} != x; then setexpr kernel_comp_addr_r ${ramdisk_addr_r} + 0x8000000;' +
  ' elif test x${kernel_addr_r} != x; then setexpr kernel_comp_addr_r ${kernel_addr_r} + 0x8000000; fi;' +
  ' fi\n' +
  'if test x${kernel_comp_size} = x; then setenv kernel_comp_size 0x4000000; fi\n';

export const UBOOT_SCRIPT = `echo bootfarm: pxe get and pxe boot\n${KERNEL_COMP_DEFAULTS}pxe get && pxe boot\n`;

const image = ubootScriptImage(UBOOT_SCRIPT, 'bootfarm netboot');

export function ubootScriptAnswer(): FileAnswer {
  return { found: true, from: 'generated:u-boot-script', size: image.length, open: async () => FileCache.fromBuffer(image) };
}
