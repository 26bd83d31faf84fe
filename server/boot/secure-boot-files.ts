// Where Debian's signed boot chain lives under tftp.root: `bootfarm bootloaders`
// puts it there (server/boot/bootloaders.ts) and the boot policy hands out the shim
// of a secureBoot node (server/boot/policy.ts). shim loads its second stage by a
// fixed name from its own directory, over the transport it came by (shim netboot.c
// for TFTP, httpboot.c for HTTP), so shim and GRUB share one directory.
export const SECURE_BOOT_FILES = {
  x86_64: { shim: 'secureboot/shimx64.efi', grub: 'secureboot/grubx64.efi' },
  arm64: { shim: 'secureboot/shimaa64.efi', grub: 'secureboot/grubaa64.efi' },
} as const;
