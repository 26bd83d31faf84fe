// The boot policy: client identity + the node's inventory entry -> what this client
// gets. Only the DHCP service asks it (TFTP and HTTP then serve the files its answer
// named); the DHCP handlers only encode its answer. Firmware quirks are explained at
// the branch that handles them (docs/protocol-notes.md §1.8, §1.9, §2.2).
import type { ClientIdentity, FirmwareKind } from '../dhcp/codec/identity.js';
import type { ResolvedNode, SecureBootSetting } from '../config/types.js';
import { SECURE_BOOT_FILES } from './secure-boot-files.js';
import { UBOOT_SCRIPT_PATH } from './uboot/script-file.js';
import { SITE_SIGNED_IPXE } from './signing-files.js';

export interface BootPolicySettings {
  /** The address clients fetch from: siaddr, option 54 in proxy mode, TFTP and HTTP host. */
  serverAddress: string;
  httpPort: number;
  bootFiles: { bios: string; uefiX64: string; uefiArm64: string };
}

export type BootPlan =
  | { kind: 'none'; reason: string }
  | {
      kind: 'file';
      firmware: FirmwareKind;
      /** A path on the TFTP server, or a full URL for iPXE and UEFI HTTP boot. */
      bootFile: string;
      bootServer: string;
      /** Option 60 of the reply: UEFI HTTP boot requires "HTTPClient" (tianocore wiki, "HTTP Boot"). */
      vendorClass: 'PXEClient' | 'HTTPClient';
      /** The client is iPXE already: it gets its script, never another iPXE binary. */
      ipxe: boolean;
    }
  | {
      kind: 'raspberry-pi';
      bootServer: string;
      serial: string | undefined;
      model: 3 | 4 | 5 | undefined;
    };

/**
 * The per-node iPXE script's path. The MAC is written with hyphens: iPXE
 * percent-encodes ':' in URL paths, and hyphens keep the URL readable in logs.
 */
function ipxeScriptPath(mac: string): string {
  return `boot/${mac.replace(/:/g, '-')}.ipxe`;
}

function ipxeScriptUrl(settings: BootPolicySettings, mac: string): string {
  return `http://${settings.serverAddress}:${settings.httpPort}/${ipxeScriptPath(mac)}`;
}

const IPXE_FEATURE_HTTP = 0x13;

/**
 * A UEFI client's first file. With Secure Boot on, firmware runs only what its db
 * trusts (Microsoft's UEFI CA on a stock machine), which Debian's iPXE is not: a
 * secureBoot node gets shim, signed by Microsoft, which then loads Debian's signed
 * GRUB from beside it (server/boot/secure-boot-files.ts).
 */
function uefiBootFile(identity: ClientIdentity, secureBoot: SecureBootSetting, settings: BootPolicySettings): string | undefined {
  // secureBoot: site: the site enrolled its own db key and bootfarm signed iPXE
  // with it (server/boot/signing.ts); only amd64, where Debian ships iPXE (config
  // check refuses site on an arm64 node).
  if (identity.cpu === 'x86_64' && secureBoot === 'site') return SITE_SIGNED_IPXE;
  if (identity.cpu === 'x86_64') return secureBoot ? SECURE_BOOT_FILES.x86_64.shim : settings.bootFiles.uefiX64;
  if (identity.cpu === 'arm64') return secureBoot ? SECURE_BOOT_FILES.arm64.shim : settings.bootFiles.uefiArm64;
  return undefined;
}

export function planBoot(
  identity: ClientIdentity,
  node: (ResolvedNode & { secureBoot?: SecureBootSetting | undefined }) | undefined,
  settings: BootPolicySettings,
): BootPlan {
  const server = settings.serverAddress;
  if (identity.raspberryPi) {
    // The Pi bootloader needs no file name: option 43 "Raspberry Pi Boot" plus the
    // TFTP server address, then it fetches <serial>/start4.elf and friends (Raspberry Pi
    // documentation, boot-net.adoc and eeprom-bootloader.adoc).
    return {
      kind: 'raspberry-pi',
      bootServer: server,
      serial: node?.piSerial ?? identity.raspberryPi.serial,
      model: node?.piModel ?? identity.raspberryPi.model,
    };
  }
  if (identity.ipxe) {
    // iPXE loaded (or burned into the NIC) must get its script, not the iPXE binary
    // again, or it chainloads forever (ipxe.org/howto/dhcpd). An iPXE build without
    // the HTTP feature is handed the same script over TFTP.
    const features = identity.ipxe.features;
    const http = features.size === 0 || features.has(IPXE_FEATURE_HTTP);
    return {
      kind: 'file',
      firmware: identity.firmware,
      bootFile: http ? ipxeScriptUrl(settings, identity.mac) : ipxeScriptPath(identity.mac),
      bootServer: server,
      vendorClass: 'PXEClient',
      ipxe: true,
    };
  }
  if (!identity.wantsNetboot) return { kind: 'none', reason: 'not a network-boot client (no PXEClient/HTTPClient vendor class)' };

  const base = { kind: 'file' as const, firmware: identity.firmware, bootServer: server, ipxe: false };
  switch (identity.firmware) {
    case 'bios':
      return { ...base, bootFile: settings.bootFiles.bios, vendorClass: 'PXEClient' };
    case 'uefi': {
      const file = uefiBootFile(identity, node?.secureBoot ?? false, settings);
      if (file) return { ...base, bootFile: file, vendorClass: 'PXEClient' };
      return { kind: 'none', reason: `no boot file for UEFI architecture ${identity.archCode}` };
    }
    case 'uefi-http': {
      // UEFI HTTP boot takes a full URI in the file field and needs "HTTPClient" back.
      const file = uefiBootFile(identity, node?.secureBoot ?? false, settings);
      if (!file) return { kind: 'none', reason: `no HTTP boot file for architecture ${identity.archCode}` };
      return { ...base, bootFile: `http://${server}:${settings.httpPort}/${file}`, vendorClass: 'HTTPClient' };
    }
    case 'u-boot':
      // U-Boot's distro boot (bootcmd_dhcp) fetches boot.scr.uimg whatever the
      // file field says, and its `pxe` target reads pxelinux.cfg/ beside the file
      // named here: the same name serves both (server/boot/uboot/script-file.ts).
      return { ...base, bootFile: UBOOT_SCRIPT_PATH, vendorClass: 'PXEClient' };
    default:
      return { kind: 'none', reason: `unrecognised client architecture ${identity.archCode ?? '(none sent)'}` };
  }
}
