// The silent-bootloader decision (server/boot/silent-boot-hint.ts): a node's
// timeline after its bootloader fetch in, a hint or nothing out. The x86-64 PE
// header is Debian's ipxe.efi's own; the arm64 one is a minimal PE header.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { classifyBootloader, option93Cpu, peCpu, silentBootHint, type Cpu } from '../../server/boot/silent-boot-hint.js';
import type { NodeEvent } from '../../server/store/store.js';

const mac = '52:54:00:dd:00:01';
const ev = (type: string, detail: NodeEvent['detail']): NodeEvent => ({ at: '2026-12-07T00:00:00.000Z', mac, type, detail });
const offer = (arch: number, bootFile: string, ipxe = false) => ev('dhcp.ack', { ip: '10.9.0.100', arch, ipxe, bootFile });
const got = (file: string, proto: 'tftp' | 'http' = 'tftp') => ev(`${proto}.file`, { path: file, bytes: 1000, from: 'static' });

function arm64Pe(): Buffer {
  const b = Buffer.alloc(0x100);
  b.writeUInt16LE(0x5a4d, 0);
  b.writeUInt32LE(0x80, 0x3c);
  b.writeUInt32LE(0x4550, 0x80);
  b.writeUInt16LE(0xaa64, 0x84);
  return b;
}

/** The hint for a timeline whose last bootloader fetch is the one at `served`. */
const IPXE_CPU = peCpu(readFileSync('/usr/lib/ipxe/ipxe.efi'));
const hint = (events: NodeEvent[], served: number, fileCpu: Cpu | undefined = IPXE_CPU, secureBoot: boolean | 'site' = false) =>
  silentBootHint({ events, served, fileCpu, secureBoot });

describe('silent bootloader hints', () => {
  it('reads the CPU of a PE image and of option 93; a BIOS .kpxe and junk have none', () => {
    expect(peCpu(readFileSync('/usr/lib/ipxe/ipxe.efi'))).toBe('x86_64');
    expect(peCpu(arm64Pe())).toBe('arm64');
    expect(peCpu(readFileSync('/usr/lib/ipxe/undionly.kpxe'))).toBeUndefined();
    expect(peCpu(Buffer.from('MZ'))).toBeUndefined();
    const cut = arm64Pe().subarray(0, 0x82);
    expect(peCpu(cut)).toBeUndefined();
    expect([7, 9, 16, 11, 19, 0, 6].map(option93Cpu)).toEqual(['x86_64', 'x86_64', 'x86_64', 'arm64', 'arm64', undefined, 'i386']);
  });

  it('knows the bootloaders bootfarm hands out and nothing else', () => {
    expect(classifyBootloader('ipxe.efi')).toEqual({ family: 'ipxe', signed: false });
    expect(classifyBootloader('undionly.kpxe')).toEqual({ family: 'ipxe', signed: false });
    expect(classifyBootloader('secureboot/ipxe-site.efi')).toEqual({ family: 'ipxe', signed: true });
    expect(classifyBootloader('secureboot/shimx64.efi')).toEqual({ family: 'shim', signed: true });
    expect(classifyBootloader('secureboot/grubaa64.efi')).toEqual({ family: 'grub', signed: true });
    expect(classifyBootloader('grub/arm64-efi/core.efi')).toEqual({ family: 'grub', signed: false });
    for (const other of ['boot/52-54-00-dd-00-01.ipxe', 'images/base/v1/amd64/vmlinuz', 'grub/grub.cfg', 'grub/arm64-efi/normal.mod'])
      expect(classifyBootloader(other)).toBeUndefined();
  });

  it('UEFI firmware that fetched unsigned iPXE and was never heard from again: Secure Boot likely refused it', () => {
    const events = [offer(7, 'ipxe.efi'), got('ipxe.efi')];
    expect(hint(events, 1)).toEqual({
      kind: 'secure-boot-refused',
      message:
        'firmware likely refused an unsigned bootloader (ipxe.efi; Secure Boot on?): set secureBoot: true on this node (docs/configuration.md, Secure Boot)',
    });
    // The firmware trying its HTTP boot option next fetches the same file again: still nothing from iPXE itself.
    const retried = [...events, offer(16, 'http://10.9.0.1:8080/ipxe.efi'), got('ipxe.efi', 'http')];
    expect(hint(retried, 3)?.kind).toBe('secure-boot-refused');
  });

  it('a file for another CPU than option 93 names: wrong architecture, before any Secure Boot guess', () => {
    expect(hint([offer(11, 'ipxe.efi'), got('ipxe.efi')], 1)).toEqual({
      kind: 'wrong-architecture',
      message:
        "the firmware reports arm64 (DHCP option 93 = 11) but ipxe.efi is built for x86_64: check the node's arch and boot.uefiX64 / boot.uefiArm64",
    });
    expect(hint([offer(7, 'grub/arm64-efi/core.efi'), got('grub/arm64-efi/core.efi')], 1, 'arm64')?.kind).toBe('wrong-architecture');
  });

  it('a bootloader that ran but never asked for its configuration', () => {
    expect(hint([offer(7, 'ipxe.efi'), got('ipxe.efi'), offer(7, 'http://10.9.0.1:8080/boot/x.ipxe', true)], 1)).toEqual({
      kind: 'no-config-request',
      message: 'ipxe.efi started but never asked for its configuration (boot/<mac>.ipxe): check its console for the error',
    });
    expect(
      hint([offer(11, 'grub/arm64-efi/core.efi'), got('grub/arm64-efi/core.efi'), got('grub/arm64-efi/normal.mod')], 1, 'arm64')?.kind,
    ).toBe('no-config-request');
  });

  it('no hint once the bootloader asked for its configuration', () => {
    expect(
      hint([offer(7, 'ipxe.efi'), got('ipxe.efi'), offer(7, 'x', true), got('boot/52-54-00-dd-00-01.ipxe', 'http')], 1),
    ).toBeUndefined();
    expect(
      hint([offer(11, 'grub/arm64-efi/core.efi'), got('grub/arm64-efi/core.efi'), got('grub/grub.cfg-01-52-54-00-dd-00-01')], 1, 'arm64'),
    ).toBeUndefined();
    // The served index must be a bootloader fetch.
    expect(hint([offer(7, 'ipxe.efi'), got('images/base/v1/amd64/vmlinuz')], 1)).toBeUndefined();
  });

  it('a signed bootloader, or a BIOS one, that was never heard from: said without a Secure Boot guess', () => {
    expect(hint([offer(7, 'secureboot/shimx64.efi'), got('secureboot/shimx64.efi')], 1, 'x86_64', true)).toEqual({
      kind: 'bootloader-never-started',
      message:
        "secureboot/shimx64.efi is signed, but nothing came from it: the firmware may not trust its signer (is Microsoft's UEFI CA in its db?) or it stopped; check the console",
    });
    expect(hint([offer(7, 'secureboot/ipxe-site.efi'), got('secureboot/ipxe-site.efi')], 1, 'x86_64', 'site')?.message).toContain(
      'is the site key in its db?',
    );
    // BIOS PXE (option 93 = 0) and a .kpxe, which is no PE image: no CPU on either side.
    expect(
      silentBootHint({ events: [offer(0, 'undionly.kpxe'), got('undionly.kpxe')], served: 1, fileCpu: undefined, secureBoot: false }),
    ).toEqual({
      kind: 'bootloader-never-started',
      message: "nothing came from undionly.kpxe after it was fetched: check the machine's console",
    });
  });
});
