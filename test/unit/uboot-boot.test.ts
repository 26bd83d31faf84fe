// U-Boot boards (issue 13): what U-Boot's DHCP says (a captured DISCOVER of
// Debian's qemu_arm build, test/fixtures/uboot/README.md) -> its boot plan, and the
// script image it sources, byte for byte what U-Boot's own mkimage writes.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { identifyClient, type ClientIdentity } from '../../server/dhcp/codec/identity.js';
import { planBoot, type BootPlan, type BootPolicySettings } from '../../server/boot/policy.js';
import { ProxyModeHandler } from '../../server/dhcp/server/proxy-handler.js';
import { ubootScriptImage } from '../../server/boot/uboot/script-image.js';
import { UBOOT_SCRIPT } from '../../server/boot/uboot/script-file.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

const settings: BootPolicySettings = {
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  bootFiles: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'grub/arm64-efi/core.efi' },
};

function ubootDiscover(fixture = 'qemu-arm-discover.bin'): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, 'test/fixtures/uboot', fixture)));
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

/** What proxy mode answers this DISCOVER. */
function proxyAnswer(packet: DhcpPacket, identity: ClientIdentity, plan: BootPlan) {
  return new ProxyModeHandler('10.9.0.1', 0).handle({
    packet,
    messageType: readMessageType(packet.options) as number,
    identity,
    node: undefined,
    known: false,
    plan,
    source: { address: '0.0.0.0', port: 68 },
    listener: 'dhcp',
    now: Date.now(),
  });
}

describe('U-Boot clients', () => {
  it('a captured U-Boot DISCOVER (93 = 21, 60 "U-Boot.armv7") is a U-Boot board and gets boot.scr.uimg over TFTP', () => {
    const identity = identifyClient(ubootDiscover());
    expect(identity).toMatchObject({
      mac: '52:54:00:b0:00:21',
      archCode: 21,
      vendorClass: 'U-Boot.armv7',
      cpu: 'arm32',
      firmware: 'u-boot',
      wantsNetboot: true,
    });
    expect(planBoot(identity, undefined, settings)).toEqual({
      kind: 'file',
      firmware: 'u-boot',
      bootFile: 'boot.scr.uimg',
      bootServer: '10.9.0.1',
      vendorClass: 'PXEClient',
      ipxe: false,
    });
  });

  it('an arm64 U-Boot (a captured qemu_arm64 DISCOVER: 93 = 22, "U-Boot.armv8") and one that sends only its vendor class are U-Boot boards too', () => {
    const arm64 = identifyClient(ubootDiscover('qemu-arm64-discover.bin'));
    expect(arm64).toMatchObject({ mac: '52:54:00:b0:00:22', archCode: 22, vendorClass: 'U-Boot.armv8', cpu: 'arm64', firmware: 'u-boot' });
    expect(planBoot(arm64, undefined, settings)).toMatchObject({ kind: 'file', firmware: 'u-boot', bootFile: 'boot.scr.uimg' });
    const vciOnly = ubootDiscover();
    vciOnly.options.delete(93);
    expect(identifyClient(vciOnly)).toMatchObject({ firmware: 'u-boot', wantsNetboot: true });
  });

  it("U-Boot's EFI loader (PXEClient arch 10, distro boot's second DHCP) is UEFI, not the U-Boot script path", () => {
    const efi = ubootDiscover();
    efi.options.set(93, Buffer.from([0, 10]));
    efi.options.set(60, Buffer.from('PXEClient:Arch:00010:UNDI:003000', 'latin1'));
    const identity = identifyClient(efi);
    expect(identity.firmware).toBe('uefi');
    expect(planBoot(identity, undefined, settings).kind).toBe('none');
  });

  it('proxy mode sends U-Boot no offer: it would request the addressless proxy offer', async () => {
    const packet = ubootDiscover();
    const identity = identifyClient(packet);
    const result = await proxyAnswer(packet, identity, planBoot(identity, undefined, settings));
    expect(result).toMatchObject({ replies: [], outcome: 'ignored-not-netboot', detail: { reason: 'U-Boot cannot use a proxy offer' } });
  });

  it('iPXE that reports a U-Boot architecture (93 = 22) is iPXE, not a U-Boot board: proxy mode offers it its script', async () => {
    // iPXE on ARM runs as an EFI application and sends 93 = 11, so this pair is
    // forged or a quirk; either way the client is iPXE: it takes proxy offers
    // (U-Boot does not) and gets its script, never boot.scr.uimg.
    const packet = ubootDiscover();
    packet.options.set(93, Buffer.from([0, 22]));
    packet.options.set(77, Buffer.from('\x04iPXE', 'latin1'));
    const identity = identifyClient(packet);
    expect(identity).toMatchObject({ cpu: 'arm64', ipxe: { userClass: 'iPXE' } });
    expect(identity.firmware).not.toBe('u-boot');
    const plan = planBoot(identity, undefined, settings);
    expect(plan).toMatchObject({ kind: 'file', ipxe: true, bootFile: 'http://10.9.0.1:8080/boot/52-54-00-b0-00-21.ipxe' });
    expect((await proxyAnswer(packet, identity, plan)).outcome).toBe('proxy-offer');
  });

  it("the served script image is byte for byte mkimage -T script's (u-boot-tools)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-uboot-'));
    try {
      writeFileSync(path.join(dir, 'script'), UBOOT_SCRIPT);
      execFileSync(
        'mkimage',
        ['-A', 'arm', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'bootfarm netboot', '-d', 'script', 'script.img'],
        { cwd: dir, env: { ...process.env, SOURCE_DATE_EPOCH: '0' }, stdio: 'pipe' },
      );
      expect(ubootScriptImage(UBOOT_SCRIPT, 'bootfarm netboot').toString('hex')).toBe(
        readFileSync(path.join(dir, 'script.img')).toString('hex'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
