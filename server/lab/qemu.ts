// QEMU guests for the tests and the emulation lab: SeaBIOS+iPXE, OVMF or arm64
// AAVMF on a lab tap, accelerated by KVM only where KVM can really run a guest.
import { accessSync, constants, existsSync } from 'node:fs';
import type { NetLab } from './netlab.js';
import type { Background } from './proc.js';
import { qemuTpmArgs } from './swtpm.js';

/**
 * KVM when /dev/kvm is usable and is not the nested "kvm_pvm" backend (which only
 * runs PVM-aware guests: SeaBIOS resets inside iPXE, see e2e-reference pitfalls);
 * TCG otherwise. BOOTFARM_QEMU_ACCEL=kvm|tcg overrides.
 */
export function qemuAccel(): 'kvm' | 'tcg' {
  const forced = process.env.BOOTFARM_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (existsSync('/sys/module/kvm_pvm')) return 'tcg';
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return 'kvm';
  } catch {
    return 'tcg';
  }
}

export function findOvmf(): string | undefined {
  return ['/usr/share/ovmf/OVMF.fd', '/usr/share/qemu/OVMF.fd'].find((p) => existsSync(p));
}

/**
 * The -http kinds are the same firmware with its UEFI PXE switched off, so the
 * "UEFI HTTPv4" boot option runs (DHCP arch 16 / 19, a URI back): the knobs are
 * the fw_cfg files OVMF and ArmVirtQemu read at start (edk2 OvmfPkg/ArmVirtPkg,
 * PcdIPv4PXESupport/PcdIPv6PXESupport).
 */
export type GuestFirmware =
  'seabios' | 'ovmf' | 'aavmf' | 'ovmf-http' | 'aavmf-http' | 'ovmf-sb' | 'aavmf-sb' | 'uboot-arm' | 'uboot-arm64';

/**
 * ovmf-sb: OVMF as a stock server ships, Secure Boot on with Microsoft's keys
 * enrolled (package ovmf). The secure build needs SMM and a secure pflash; the
 * variable store is opened with snapshot=on, so the guest's writes never reach
 * the packaged file.
 */
const OVMF_SECURE_BOOT = { code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd' };

function ovmfSecureBootArgs(vars = OVMF_SECURE_BOOT.vars): string[] {
  for (const f of [OVMF_SECURE_BOOT.code, vars]) if (!existsSync(f)) throw new Error(`${f} not found: apt-get install ovmf`);
  return [
    '-global',
    'driver=cfi.pflash01,property=secure,value=on',
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_SECURE_BOOT.code}`,
    '-drive',
    `if=pflash,format=raw,unit=1,snapshot=on,file=${vars}`,
  ];
}

/**
 * aavmf-sb: arm64 UEFI with Secure Boot on and Microsoft's keys enrolled (package
 * qemu-efi-aarch64). AAVMF_CODE.ms.fd is the same build as AAVMF_CODE.fd (a
 * symlink): Secure Boot is on because the variable store has PK, KEK and db
 * enrolled, and ArmVirtQemu enforces it without SMM (its variable store is not
 * protected from the guest's OS, which a test does not need). Both pflash images
 * are 64 MiB as the virt machine wants; the store is opened with snapshot=on.
 */
const AAVMF_SECURE_BOOT = { code: '/usr/share/AAVMF/AAVMF_CODE.ms.fd', vars: '/usr/share/AAVMF/AAVMF_VARS.ms.fd' };

function aavmfFirmwareArgs(firmware: GuestFirmware): string[] {
  if (firmware !== 'aavmf-sb') {
    if (!existsSync(AAVMF)) throw new Error(`${AAVMF} not found: apt-get install qemu-efi-aarch64`);
    return ['-bios', AAVMF];
  }
  for (const f of Object.values(AAVMF_SECURE_BOOT)) if (!existsSync(f)) throw new Error(`${f} not found: apt-get install qemu-efi-aarch64`);
  return [
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${AAVMF_SECURE_BOOT.code}`,
    '-drive',
    `if=pflash,format=raw,unit=1,snapshot=on,file=${AAVMF_SECURE_BOOT.vars}`,
  ];
}

function httpBootOnly(firmware: GuestFirmware): string[] {
  if (!firmware.endsWith('-http')) return [];
  return ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n'];
}

export const AAVMF = '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd';

/** Debian's U-Boot for QEMU's 32-bit virt machine (package u-boot-qemu). */
const UBOOT_QEMU_ARM = '/usr/lib/u-boot/qemu_arm/u-boot.bin';

/**
 * uboot-arm: an ARMv7 U-Boot board. highmem=off keeps every device below 4 GiB,
 * where the armhf image's armmp kernel (no LPAE) reaches (server/image/arch.ts).
 * The NIC is virtio-mmio: with virtio-net-pci this U-Boot sends 52:52:52:52:52:52
 * instead of the NIC's MAC (test/fixtures/uboot/README.md).
 */
function ubootArmArgs(tap: string, mac: string, options: GuestOptions): string[] {
  if (!existsSync(UBOOT_QEMU_ARM)) throw new Error(`${UBOOT_QEMU_ARM} not found: apt-get install u-boot-qemu`);
  return [
    ...['-M', 'virt,highmem=off', '-cpu', 'cortex-a15', '-smp', '2', '-m', String(options.memoryMb ?? 512), '-accel', 'tcg,thread=multi'],
    ...['-bios', UBOOT_QEMU_ARM, '-nographic', '-nodefaults', '-serial', 'stdio', '-no-reboot'],
    ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-device,netdev=n0,mac=${mac}`],
    ...controlPort(options.controlSocket),
  ];
}

/** Debian's U-Boot for QEMU's arm64 virt machine (package u-boot-qemu). */
const UBOOT_QEMU_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';

/**
 * uboot-arm64: an ARMv8 U-Boot board ("U-Boot.armv8", option 93 = 22), the arm64
 * image's generic kernel with the device tree QEMU hands U-Boot (fdt_addr). The
 * NIC is virtio-mmio like uboot-arm's, the device distro boot finds without a PCI
 * scan.
 */
function ubootArm64Args(tap: string, mac: string, options: GuestOptions): string[] {
  if (!existsSync(UBOOT_QEMU_ARM64)) throw new Error(`${UBOOT_QEMU_ARM64} not found: apt-get install u-boot-qemu`);
  return [
    ...aarch64VirtArgs('cortex-a57', options.memoryMb ?? 512),
    ...['-bios', UBOOT_QEMU_ARM64, '-nographic', '-nodefaults', '-serial', 'stdio', '-no-reboot'],
    ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-device,netdev=n0,mac=${mac}`],
    ...controlPort(options.controlSocket),
  ];
}

export interface GuestOptions {
  /** RAM; the defaults fit firmware tests, a booted Linux with a RAM overlay wants more. */
  memoryMb?: number;
  label?: string;
  /**
   * A virtio serial port named bootfarm.lab (/dev/virtio-ports/bootfarm.lab in
   * the guest) on this host Unix socket (QEMU listens): the lab's command channel
   * into a booted node (server/lab/guest-shell.ts).
   */
  controlSocket?: string;
  /** x86 only: a TPM 2.0 from the swtpm listening on this Unix control socket (server/lab/swtpm.ts, kubernetes.admission: tpm). */
  tpmSocket?: string;
  /** ovmf-sb only: another variable store than Microsoft's keys, e.g. /usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd (a test key in db). */
  secureBootVars?: string;
}

/** QEMU's arm64 `virt` machine under TCG (there is no KVM for arm on x86), two vCPUs, console on stdio. */
export function aarch64VirtArgs(cpu: string, memoryMb: number): string[] {
  return ['-M', 'virt', '-cpu', cpu, '-smp', '2', '-m', String(memoryMb), '-accel', 'tcg,thread=multi'];
}

export function controlPort(socket: string | undefined): string[] {
  if (!socket) return [];
  return [
    '-device',
    'virtio-serial-pci,id=labser',
    '-chardev',
    `socket,id=labctl,path=${socket},server=on,wait=off`,
    '-device',
    'virtserialport,bus=labser.0,chardev=labctl,name=bootfarm.lab',
  ];
}

export async function startGuest(lab: NetLab, firmware: GuestFirmware, mac: string, options: GuestOptions = {}): Promise<Background> {
  const tap = await lab.addTap();
  if (firmware === 'uboot-arm')
    return lab.spawn(lab.switchNs, 'qemu-system-arm', ubootArmArgs(tap, mac, options), options.label ?? 'qemu-uboot-arm');
  if (firmware === 'uboot-arm64')
    return lab.spawn(lab.switchNs, 'qemu-system-aarch64', ubootArm64Args(tap, mac, options), options.label ?? 'qemu-uboot-arm64');
  if (firmware.startsWith('aavmf')) {
    // arm64 UEFI (AAVMF) under TCG: there is no KVM for arm on x86. Its own
    // VirtioNetDxe does UEFI PXE; romfile= keeps QEMU's x86 iPXE ROM off the NIC.
    return lab.spawn(
      lab.switchNs,
      'qemu-system-aarch64',
      [
        ...aarch64VirtArgs('cortex-a57', options.memoryMb ?? 512),
        ...aavmfFirmwareArgs(firmware),
        '-nographic',
        '-nodefaults',
        '-serial',
        'stdio',
        '-no-reboot',
        '-netdev',
        `tap,id=n0,ifname=${tap},script=no,downscript=no`,
        '-device',
        `virtio-net-pci,netdev=n0,mac=${mac},romfile=,bootindex=0`,
        ...httpBootOnly(firmware),
        ...controlPort(options.controlSocket),
      ],
      options.label ?? 'qemu-aavmf',
    );
  }
  const accel = qemuAccel();
  const args = [
    '-machine',
    firmware === 'ovmf-sb' ? 'q35,smm=on' : 'q35',
    '-accel',
    accel,
    '-m',
    String(options.memoryMb ?? 256),
    '-nographic',
    '-nodefaults',
    '-serial',
    'stdio',
    '-no-reboot',
    '-boot',
    'n',
    '-netdev',
    `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    // SeaBIOS boots through the e1000's iPXE option ROM. For OVMF the NIC gets no
    // option ROM (romfile=), so OVMF's own VirtioNet driver and UEFI PXE stack run:
    // with QEMU's iPXE EFI ROM the client would be iPXE, not the firmware's PXE.
    '-device',
    firmware === 'seabios' ? `e1000,netdev=n0,mac=${mac}` : `virtio-net-pci,netdev=n0,mac=${mac},romfile=`,
    ...httpBootOnly(firmware),
    ...controlPort(options.controlSocket),
    ...(options.tpmSocket ? qemuTpmArgs(options.tpmSocket) : []),
  ];
  if (firmware === 'ovmf-sb') args.push(...ovmfSecureBootArgs(options.secureBootVars));
  else if (firmware !== 'seabios') {
    const ovmf = findOvmf();
    if (!ovmf) throw new Error('OVMF firmware not found: apt-get install ovmf');
    args.push('-bios', ovmf);
  }
  return lab.spawn(lab.switchNs, 'qemu-system-x86_64', args, options.label ?? `qemu-${firmware}`);
}
