// What a DHCP request says about the machine (server/dhcp/codec/identity.ts) and the
// plan it gets (server/boot/policy.ts), option by option: every architecture
// code bootfarm maps, where the code comes from when option 93 is missing, how
// iPXE and Raspberry Pi bootloaders are recognised, and iPXE's HTTP feature.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { identifyClient, isRaspberryPiMac } from '../../server/dhcp/codec/identity.js';
import { planBoot, type BootPolicySettings } from '../../server/boot/policy.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

const settings: BootPolicySettings = {
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  bootFiles: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'grub/arm64-efi/core.efi' },
};

interface Shape {
  mac?: string;
  vendor?: string;
  arch?: number[];
  userClass?: Buffer;
  ipxeEncap?: Buffer;
  machineId?: Buffer;
}

/** OVMF's captured DISCOVER with options 60, 93, 77, 175 and 97 replaced by `shape`'s. */
function discover(shape: Shape): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, 'test/fixtures/dhcp/ovmf-uefi-pxe-discover.bin')));
  if (!r.ok) throw new Error(r.reason);
  const p = r.packet;
  for (const code of [60, 93, 77, 175, 97]) p.options.delete(code);
  if (shape.mac) p.chaddr = Buffer.from(shape.mac.replace(/:/g, ''), 'hex');
  if (shape.vendor !== undefined) p.options.set(60, Buffer.from(shape.vendor, 'latin1'));
  if (shape.arch) p.options.set(93, Buffer.concat(shape.arch.map((a) => Buffer.from([a >> 8, a & 0xff]))));
  if (shape.userClass) p.options.set(77, shape.userClass);
  if (shape.ipxeEncap) p.options.set(175, shape.ipxeEncap);
  if (shape.machineId) p.options.set(97, shape.machineId);
  return p;
}
const pxe = (arch: number) => ({ vendor: `PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:003001`, arch: [arch] });
const userClasses = (...names: string[]) =>
  Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));

describe('client identity: architecture', () => {
  it.each([
    [0, 'x86', 'bios'],
    [6, 'x86', 'uefi'],
    [15, 'x86', 'uefi-http'],
    [7, 'x86_64', 'uefi'],
    [9, 'x86_64', 'uefi'],
    [16, 'x86_64', 'uefi-http'],
    [11, 'arm64', 'uefi'],
    [19, 'arm64', 'uefi-http'],
    // 21-24: U-Boot by IANA's table (ARM32/ARM64 U-Boot and their HTTP variants).
    [22, 'arm64', 'u-boot'],
    [24, 'arm64', 'u-boot'],
    [10, 'arm32', 'uefi'],
    [18, 'arm32', 'uefi-http'],
    [21, 'arm32', 'u-boot'],
    [23, 'arm32', 'u-boot'],
    [2, 'unknown', 'uefi'],
  ])('option 93 = %i is %s %s', (arch, cpu, firmware) => {
    expect(identifyClient(discover(pxe(arch)))).toMatchObject({ archCode: arch, archCodes: [arch], cpu, firmware, wantsNetboot: true });
  });

  it('the first option 93 code counts; option 60 is read only when 93 is missing, and only in its exact form', () => {
    expect(identifyClient(discover({ vendor: 'PXEClient:Arch:00011:UNDI:003001', arch: [7, 11] }))).toMatchObject({
      archCode: 7,
      archCodes: [7, 11],
      cpu: 'x86_64',
    });
    expect(identifyClient(discover({ vendor: 'HTTPClient:Arch:00016:UNDI:003001' }))).toMatchObject({
      archCode: 16,
      firmware: 'uefi-http',
    });
    for (const vendor of ['xPXEClient:Arch:00011', 'PXEClient:Arch:0001', 'PXEClient:Arch:1', 'PXEClient:Arch:abcde']) {
      expect(identifyClient(discover({ vendor })), vendor).toMatchObject({ archCode: undefined, cpu: 'unknown', firmware: 'unknown' });
    }
  });

  it('an HTTPClient vendor class makes any architecture HTTP boot, and a PXEClient or HTTPClient prefix is what asks for netboot', () => {
    expect(identifyClient(discover({ vendor: 'HTTPClient:Arch:00007:UNDI:003001', arch: [7] }))).toMatchObject({
      firmware: 'uefi-http',
      wantsNetboot: true,
    });
    expect(identifyClient(discover({ vendor: 'MSFT 5.0', arch: [7] }))).toMatchObject({ firmware: 'uefi', wantsNetboot: false });
    expect(planBoot(identifyClient(discover({ vendor: 'MSFT 5.0', arch: [7] })), undefined, settings)).toEqual({
      kind: 'none',
      reason: 'not a network-boot client (no PXEClient/HTTPClient vendor class)',
    });
  });
});

describe('client identity: iPXE', () => {
  it('is recognised by user class "iPXE" among others, or by option 175 alone', () => {
    expect(identifyClient(discover({ ...pxe(0), userClass: userClasses('other', 'iPXE') })).ipxe).toEqual({
      userClass: 'iPXE',
      features: new Set(),
    });
    expect(identifyClient(discover({ ...pxe(0), userClass: userClasses('gPXE') })).ipxe).toBeUndefined();
    expect(
      identifyClient(discover({ ...pxe(0), userClass: userClasses('custom'), ipxeEncap: Buffer.from([0x13, 1, 1, 0x24, 1, 1]) })).ipxe,
    ).toEqual({ userClass: 'custom', features: new Set([0x13, 0x24]) });
    expect(identifyClient(discover({ ...pxe(0), ipxeEncap: Buffer.from([0x15, 1, 1]) })).ipxe).toEqual({
      userClass: undefined,
      features: new Set([0x15]),
    });
  });

  it('gets its script over HTTP when it has the HTTP feature or says nothing of its features, else the script path over TFTP', () => {
    const mac = '52:54:00:12:34:01';
    const plan = (ipxeEncap: Buffer | undefined) =>
      planBoot(
        identifyClient(discover({ mac, ...pxe(0), userClass: userClasses('iPXE'), ...(ipxeEncap ? { ipxeEncap } : {}) })),
        undefined,
        settings,
      );
    expect(plan(undefined)).toMatchObject({
      kind: 'file',
      ipxe: true,
      bootFile: 'http://10.9.0.1:8080/boot/52-54-00-12-34-01.ipxe',
      vendorClass: 'PXEClient',
    });
    expect(plan(Buffer.from([0x13, 1, 1]))).toMatchObject({ bootFile: 'http://10.9.0.1:8080/boot/52-54-00-12-34-01.ipxe' });
    expect(plan(Buffer.from([0x15, 1, 1]))).toMatchObject({ kind: 'file', ipxe: true, bootFile: 'boot/52-54-00-12-34-01.ipxe' });
  });
});

describe('client identity: Raspberry Pi by OUI', () => {
  it('knows every Raspberry Pi OUI, and no other', () => {
    for (const oui of ['b8:27:eb', 'dc:a6:32', 'e4:5f:01', '28:cd:c1', '2c:cf:67', '88:a2:9e', 'd8:3a:dd'])
      expect(isRaspberryPiMac(`${oui}:01:02:03`), oui).toBe(true);
    expect(isRaspberryPiMac('52:54:00:01:02:03')).toBe(false);
  });

  it('a Pi MAC is the Pi bootloader with option 93 = 0, 41 or none, and netboots even without a vendor class; a Pi 3 by its OUI', () => {
    const serial = Buffer.concat([Buffer.from([0]), Buffer.from('78563412'.repeat(4), 'hex')]);
    expect(identifyClient(discover({ mac: 'b8:27:eb:01:02:03', ...pxe(0), machineId: serial }))).toMatchObject({
      firmware: 'raspberry-pi',
      cpu: 'arm64',
      wantsNetboot: true,
      raspberryPi: { model: 3, serial: '12345678', boardRevision: undefined },
    });
    // A Pi 3B (not B+) ROM sends 16 x 0x44 for every board: no serial, not serial 44444444.
    const pi3bConstant = Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0x44)]);
    expect(identifyClient(discover({ mac: 'b8:27:eb:01:02:04', ...pxe(0), machineId: pi3bConstant }))).toMatchObject({
      firmware: 'raspberry-pi',
      raspberryPi: { model: 3, serial: undefined },
    });
    expect(identifyClient(discover({ mac: 'dc:a6:32:01:02:03', arch: [41] }))).toMatchObject({
      firmware: 'raspberry-pi',
      raspberryPi: { model: undefined },
    });
    expect(identifyClient(discover({ mac: 'dc:a6:32:01:02:03' }))).toMatchObject({
      firmware: 'raspberry-pi',
      wantsNetboot: true,
      vendorClass: undefined,
    });
  });

  it('a Pi MAC running iPXE, or sending another architecture, is not the Pi bootloader', () => {
    expect(identifyClient(discover({ mac: 'dc:a6:32:01:02:03', ...pxe(0), userClass: userClasses('iPXE') }))).toMatchObject({
      raspberryPi: undefined,
      firmware: 'bios',
    });
    expect(identifyClient(discover({ mac: 'dc:a6:32:01:02:03', ...pxe(11) }))).toMatchObject({
      raspberryPi: undefined,
      firmware: 'uefi',
      cpu: 'arm64',
    });
  });
});
