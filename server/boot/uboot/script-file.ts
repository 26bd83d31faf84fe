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

// No quote characters: U-Boot's hush would take one as the start of a string.
export const UBOOT_SCRIPT = 'echo bootfarm: pxe get and pxe boot\npxe get && pxe boot\n';

const image = ubootScriptImage(UBOOT_SCRIPT, 'bootfarm netboot');

export function ubootScriptAnswer(): FileAnswer {
  return { found: true, from: 'generated:u-boot-script', size: image.length, open: async () => FileCache.fromBuffer(image) };
}
