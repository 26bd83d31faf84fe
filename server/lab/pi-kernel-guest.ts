// A lab Pi past its firmware. QEMU's raspi machines cannot netboot (no EEPROM or
// ROM network stack, no USB/Ethernet of a real board), so the lab's scripted
// bootloader stands in for the firmware and this boots what it fetched from
// bootfarm — the node's own kernel, initramfs and cmdline.txt for its model — in
// an arm64 `virt` guest with the Pi's MAC on the lab bridge. From there the path
// is the node's own: its initramfs takes a lease, attaches its NBD root, and its
// agent presents the boot's nonce from cmdline.txt and joins.
import { readFileSync } from 'node:fs';
import type { NetLab } from './netlab.js';
import type { Background } from './proc.js';
import { aarch64VirtArgs, controlPort } from './qemu.js';

/** What the scripted bootloader's PI_BOOT_REPORT says about the files it fetched (TFTP) or took out of boot.img (HTTP). */
interface FetchedFiles {
  files: ReadonlyArray<{ role: string; mode: 'probe' | 'fetch'; outcome: string; savedTo?: string }>;
  http?: { extracted: ReadonlyArray<{ role: string; savedTo: string }> } | undefined;
}

export interface PiKernelFiles {
  kernel: string;
  initramfs: string;
  /** cmdline.txt as served, one line. */
  cmdline: string;
}

/**
 * The kernel, initramfs and cmdline.txt the scripted bootloader saved, or why
 * they cannot be booted (a node whose config.txt names no initramfs, say). In
 * HTTP boot they are the ones it took out of the verified boot.img, never TFTP's.
 */
export function piKernelFiles(report: FetchedFiles): PiKernelFiles | string {
  const saved = (role: string) =>
    report.http
      ? report.http.extracted.find((f) => f.role === role)?.savedTo
      : report.files.find((f) => f.role === role && f.mode === 'fetch' && f.outcome === 'ok' && f.savedTo)?.savedTo;
  const kernel = saved('kernel');
  const initramfs = saved('initramfs');
  const cmdline = saved('cmdline');
  const missing = [kernel ? '' : 'kernel', initramfs ? '' : 'initramfs', cmdline ? '' : 'cmdline.txt'].filter((m) => m !== '');
  if (!kernel || !initramfs || !cmdline)
    return `the Pi bootloader ${report.http ? 'took out of boot.img' : 'fetched'} no ${missing.join(', ')}: nothing to boot`;
  return { kernel, initramfs, cmdline: readFileSync(cmdline, 'utf8').replace(/\s+/g, ' ').trim() };
}

/**
 * cmdline.txt as a `virt` guest needs it. A Pi's console is `serial0`, an alias
 * in the Pi's device tree; `virt` has a PL011 at ttyAMA0 and no such alias. The
 * last console= is /dev/console, so the lab adds ttyAMA0 after the node's own.
 * Nothing else changes: the nonce, the export and the agent's arguments are
 * bootfarm's, byte for byte.
 */
function virtCmdline(cmdline: string): string {
  return `${cmdline} console=ttyAMA0`;
}

export async function startPiKernelGuest(
  lab: NetLab,
  mac: string,
  files: PiKernelFiles,
  options: { memoryMb: number; label: string; controlSocket?: string },
): Promise<Background> {
  const tap = await lab.addTap();
  return lab.spawn(
    lab.switchNs,
    'qemu-system-aarch64',
    [
      // cortex-a72: a Pi 4's core (a Pi 5's A76 is not in bookworm's QEMU).
      ...aarch64VirtArgs('cortex-a72', options.memoryMb),
      '-nographic',
      '-nodefaults',
      '-serial',
      'stdio',
      '-no-reboot',
      '-kernel',
      files.kernel,
      '-initrd',
      files.initramfs,
      '-append',
      virtCmdline(files.cmdline),
      '-netdev',
      `tap,id=n0,ifname=${tap},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,netdev=n0,mac=${mac},romfile=`,
      ...controlPort(options.controlSocket),
    ],
    options.label,
  );
}
