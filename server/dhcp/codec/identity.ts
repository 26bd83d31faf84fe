// Client identity: what a DHCP request says about the machine that sent it.
// This is the first step of every boot: identity -> boot plan (policy.ts) -> replies.
// What the clients send: docs/protocol-notes.md §1.5 (PXE, UEFI, iPXE) and §2.1 (Pi).
import type { DhcpPacket } from './packet.js';
import {
  readClientArch,
  readClientId,
  readIpxeEncapsulated,
  readRaspberryPiMachineId,
  readRepeatedSerialMachineId,
  readUserClass,
  readVendorClass,
  readClientMachineId,
} from './readers.js';
import { macFromBuffer } from '../../util/mac.js';

/** CPU architecture of the firmware that is booting. */
type FirmwareCpu = 'x86' | 'x86_64' | 'arm64' | 'arm32' | 'unknown';
/** How the firmware loads its first file. */
export type FirmwareKind = 'bios' | 'uefi' | 'uefi-http' | 'raspberry-pi' | 'u-boot' | 'unknown';

interface IpxeInfo {
  userClass: string | undefined;
  /** iPXE feature codes from option 175 (features.h): 0x13 HTTP, 0x15 TFTP, 0x24 EFI ... */
  features: ReadonlySet<number>;
}

interface RaspberryPiInfo {
  model: 3 | 4 | 5 | undefined;
  /** 8 hex digits, as the bootloader uses it for its TFTP prefix. */
  serial: string | undefined;
  boardRevision: number | undefined;
}

export interface ClientIdentity {
  mac: string;
  /** The lease key: option 61 when sent (RFC 2131 §4.2), otherwise the MAC. */
  leaseKey: string;
  vendorClass: string | undefined;
  /** All option 93 codes; `archCode` is the first. */
  archCodes: number[];
  archCode: number | undefined;
  cpu: FirmwareCpu;
  firmware: FirmwareKind;
  /** Option 60 starts with PXEClient or HTTPClient: the client wants boot information. */
  wantsNetboot: boolean;
  ipxe: IpxeInfo | undefined;
  raspberryPi: RaspberryPiInfo | undefined;
  /** Option 97's 16-byte machine identifier, hex, if valid. */
  machineId: string | undefined;
}

/** Raspberry Pi Ltd / Foundation OUIs (LTSP's list, which is a superset of Tinkerbell's). */
const RASPBERRY_PI_OUIS = new Set(['b8:27:eb', 'dc:a6:32', 'e4:5f:01', '28:cd:c1', '2c:cf:67', '88:a2:9e', 'd8:3a:dd']);

export function isRaspberryPiMac(mac: string): boolean {
  return RASPBERRY_PI_OUIS.has(mac.slice(0, 8));
}

const HTTP_ARCH_CODES = new Set([15, 16, 17, 18, 19, 20, 23, 24, 26, 28, 30, 38, 40]);

/**
 * U-Boot's DHCP sends 93 = 21 (ARM32 U-Boot) or 22 (ARM64 U-Boot) and option 60
 * "U-Boot.<arch>" (CONFIG_BOOTP_VCI_STRING; Debian's qemu_arm: "U-Boot.armv7"), never
 * PXEClient (test/fixtures/uboot/). 23/24, its HTTP variants, get the same TFTP
 * answer (bootfarm has no U-Boot HTTP path); its EFI loader's own DHCP says
 * PXEClient arch 10/11 and is UEFI.
 */
const UBOOT_ARCH_CODES = new Set([21, 22, 23, 24]);

function cpuOfArch(code: number): FirmwareCpu {
  switch (code) {
    case 0:
      return 'x86';
    case 6:
    case 15:
      return 'x86';
    // IANA has 7 = x64 UEFI and 9 = EBC, RFC 4578 the reverse; x64 firmware sends
    // either (RFC 4578 errata 4624), so both mean x86-64, as in LTSP and pixiecore.
    case 7:
    case 9:
    case 16:
      return 'x86_64';
    case 11:
    case 19:
    case 22:
    case 24:
      return 'arm64';
    case 10:
    case 18:
    case 21:
    case 23:
      return 'arm32';
    default:
      return 'unknown';
  }
}

/** Option 60 "PXEClient:Arch:00007:UNDI:003016" carries the architecture too. */
function archFromVendorClass(vendorClass: string | undefined): number | undefined {
  const m = vendorClass?.match(/^(?:PXEClient|HTTPClient):Arch:(\d{5})/);
  return m ? Number(m[1]) : undefined;
}

export function identifyClient(packet: DhcpPacket): ClientIdentity {
  const mac = macFromBuffer(packet.chaddr);
  const options = packet.options;
  const vendorClass = readVendorClass(options);
  const archCodes = readClientArch(options) ?? [];
  const archCode = archCodes[0] ?? archFromVendorClass(vendorClass);
  const isHttpClient = vendorClass?.startsWith('HTTPClient') === true;
  const uboot = !isHttpClient && (vendorClass?.startsWith('U-Boot') === true || (archCode !== undefined && UBOOT_ARCH_CODES.has(archCode)));
  const wantsNetboot = vendorClass?.startsWith('PXEClient') === true || isHttpClient || uboot;

  const userClasses = readUserClass(options);
  const encapsulated = readIpxeEncapsulated(options);
  const ipxeUserClass = userClasses?.find((c) => c === 'iPXE');
  // iPXE marks itself with user class "iPXE" and/or option 175 (its encapsulated
  // settings); either is enough, since iPXE builds may drop one of them.
  const ipxe: IpxeInfo | undefined =
    ipxeUserClass !== undefined || encapsulated !== undefined
      ? { userClass: ipxeUserClass ?? userClasses?.[0], features: new Set(encapsulated ? encapsulated.keys() : []) }
      : undefined;

  // Pi 3, 4 and 5 all send option 93 = 0 (x86 BIOS), so a Pi is recognised by its
  // OUI or by the Pi 4/5 option 97 FourCC, never by its architecture (boot-net.adoc's trace;
  // tinkerbell: "Raspberry PI 5 report an option 93 of 0").
  const piId = readRaspberryPiMachineId(options);
  const piByMac = isRaspberryPiMac(mac);
  let raspberryPi: RaspberryPiInfo | undefined;
  if (piId) {
    raspberryPi = { model: piId.model, serial: piId.serial, boardRevision: piId.boardRevision };
  } else if (piByMac && ipxe === undefined && (archCode === undefined || archCode === 0 || archCode === 41)) {
    // Only the Pi's own bootloader (93 = 0, or 41 "ARM rpiboot"): a Pi running UEFI
    // from an SD card sends 11 and is booted as the UEFI machine it then is.
    const legacySerial = readRepeatedSerialMachineId(options);
    raspberryPi = { model: mac.startsWith('b8:27:eb') ? 3 : undefined, serial: legacySerial, boardRevision: undefined };
  }

  let cpu: FirmwareCpu = archCode === undefined ? 'unknown' : cpuOfArch(archCode);
  let firmware: FirmwareKind;
  if (raspberryPi) {
    firmware = 'raspberry-pi';
    cpu = 'arm64';
  } else if (uboot && ipxe === undefined) {
    firmware = 'u-boot';
  } else if (archCode === undefined) {
    firmware = 'unknown';
  } else if (isHttpClient || HTTP_ARCH_CODES.has(archCode)) {
    firmware = 'uefi-http';
  } else if (archCode === 0) {
    firmware = 'bios';
  } else {
    firmware = 'uefi';
  }

  const machineId = readClientMachineId(options);
  return {
    mac,
    leaseKey: readClientId(options) ?? mac,
    vendorClass,
    archCodes,
    archCode,
    cpu,
    firmware,
    wantsNetboot: wantsNetboot || raspberryPi !== undefined,
    ipxe,
    raspberryPi,
    machineId: machineId?.toString('hex'),
  };
}
