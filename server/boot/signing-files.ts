// Where `bootfarm bootloaders` puts iPXE signed with the site's own db key
// (boot.signingKey, server/boot/signing.ts), under tftp.root; the boot policy
// hands it to amd64 UEFI nodes with `secureBoot: site` (server/boot/policy.ts).
export const SITE_SIGNED_IPXE = 'secureboot/ipxe-site.efi';
