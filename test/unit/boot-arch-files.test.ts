// Each firmware architecture gets its own boot file: an arm64 UEFI client
// (option 93 = 11) must be handed the arm64 loader, never the x86-64 one, in the
// plan and in the OFFER's `file` and option 67. Built from OVMF's captured
// DISCOVER with the architecture rewritten (option 93 and option 60 agree).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePacket, encodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { identifyClient } from '../../server/dhcp/codec/identity.js';
import { planBoot, type BootPolicySettings } from '../../server/boot/policy.js';
import { parseConfig } from '../../server/config/load.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { effectiveNode } from '../../server/inventory/effective.js';

const settings: BootPolicySettings = {
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  bootFiles: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'grub/arm64-efi/core.efi' },
};

/** OVMF's PXE DISCOVER, claiming architecture `arch` in option 93 and option 60. */
function discover(arch: number | undefined, vendor: 'PXEClient' | 'HTTPClient' = 'PXEClient', vendorArch = arch): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, 'test/fixtures/dhcp/ovmf-uefi-pxe-discover.bin')));
  if (!r.ok) throw new Error(r.reason);
  const p = r.packet;
  if (arch === undefined) p.options.delete(93);
  else p.options.set(93, Buffer.from([arch >> 8, arch & 0xff]));
  const archText = vendorArch === undefined ? '' : `:Arch:${String(vendorArch).padStart(5, '0')}:UNDI:003001`;
  p.options.set(60, Buffer.from(`${vendor}${archText}`, 'latin1'));
  return p;
}

describe('boot file per firmware architecture', () => {
  it('arm64 UEFI PXE (option 93 = 11) gets the arm64 loader over TFTP', () => {
    const identity = identifyClient(discover(11));
    expect(identity).toMatchObject({ archCode: 11, cpu: 'arm64', firmware: 'uefi', wantsNetboot: true });
    expect(planBoot(identity, undefined, settings)).toMatchObject({
      kind: 'file',
      bootFile: 'grub/arm64-efi/core.efi',
      vendorClass: 'PXEClient',
      ipxe: false,
    });
  });

  it('x86-64 UEFI PXE gets ipxe.efi whether it sends 7 or 9 (RFC 4578 errata 4624)', () => {
    for (const arch of [7, 9]) {
      expect(planBoot(identifyClient(discover(arch)), undefined, settings), String(arch)).toMatchObject({
        kind: 'file',
        bootFile: 'ipxe.efi',
        firmware: 'uefi',
      });
    }
  });

  it('arm64 UEFI HTTP boot (19) gets the arm64 loader as a URL, with HTTPClient', () => {
    const identity = identifyClient(discover(19, 'HTTPClient'));
    expect(identity).toMatchObject({ cpu: 'arm64', firmware: 'uefi-http' });
    expect(planBoot(identity, undefined, settings)).toMatchObject({
      kind: 'file',
      bootFile: 'http://10.9.0.1:8080/grub/arm64-efi/core.efi',
      vendorClass: 'HTTPClient',
    });
  });

  it('the architecture is read from option 60 when option 93 is missing', () => {
    const identity = identifyClient(discover(undefined, 'PXEClient', 11));
    expect(identity).toMatchObject({ archCodes: [], archCode: 11, cpu: 'arm64', firmware: 'uefi' });
    expect(planBoot(identity, undefined, settings)).toMatchObject({ bootFile: 'grub/arm64-efi/core.efi' });
  });

  it('an architecture with no boot file (arm32 UEFI, 10) gets no boot plan, with the code named', () => {
    expect(planBoot(identifyClient(discover(10)), undefined, settings)).toEqual({
      kind: 'none',
      reason: 'no boot file for UEFI architecture 10',
    });
    expect(planBoot(identifyClient(discover(18, 'HTTPClient')), undefined, settings)).toEqual({
      kind: 'none',
      reason: 'no HTTP boot file for architecture 18',
    });
    expect(planBoot(identifyClient(discover(undefined, 'PXEClient', undefined)), undefined, settings)).toEqual({
      kind: 'none',
      reason: 'unrecognised client architecture (none sent)',
    });
  });

  it('secureBoot from the defaults, a profile or the node: UEFI PXE and HTTP boot get shim, BIOS keeps iPXE', () => {
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: /nonexistent/bootfarm-test }
defaults: { secureBoot: true }
profiles: [{ name: 'legacy', match: { macPrefix: '52:54:00:dd' }, secureBoot: false }]
nodes:
  - { mac: '52:54:00:aa:00:01', hostname: sb-default }
  - { mac: '52:54:00:dd:00:02', hostname: sb-off-by-profile }
  - { mac: '52:54:00:dd:00:03', hostname: sb-node, secureBoot: true }
`,
      'test.yaml',
    );
    const [byDefault, offByProfile, onByNode] = config.nodes.map((n) => effectiveNode(n, config.layers, 'config'));
    const plan = (node: typeof byDefault, arch: number, vendor: 'PXEClient' | 'HTTPClient' = 'PXEClient') =>
      planBoot(identifyClient(discover(arch, vendor)), node, settings);
    expect(plan(byDefault, 7)).toMatchObject({ bootFile: 'secureboot/shimx64.efi', vendorClass: 'PXEClient' });
    expect(plan(byDefault, 11)).toMatchObject({ bootFile: 'secureboot/shimaa64.efi' });
    expect(plan(byDefault, 16, 'HTTPClient')).toMatchObject({ bootFile: 'http://10.9.0.1:8080/secureboot/shimx64.efi' });
    expect(plan(byDefault, 19, 'HTTPClient')).toMatchObject({ bootFile: 'http://10.9.0.1:8080/secureboot/shimaa64.efi' });
    expect(plan(byDefault, 0)).toMatchObject({ bootFile: 'undionly.kpxe' });
    expect(plan(offByProfile, 7)).toMatchObject({ bootFile: 'ipxe.efi' });
    expect(plan(onByNode, 7)).toMatchObject({ bootFile: 'secureboot/shimx64.efi' });
  });

  it('secureBoot: site: amd64 UEFI PXE and HTTP boot get iPXE signed with the site key; a profile can still pick shim', () => {
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: /nonexistent/bootfarm-test }
defaults: { secureBoot: site }
profiles: [{ name: 'stock', match: { macPrefix: '52:54:00:dd' }, secureBoot: true }]
nodes:
  - { mac: '52:54:00:aa:00:01', hostname: site-default }
  - { mac: '52:54:00:dd:00:02', hostname: shim-by-profile }
`,
      'test.yaml',
    );
    const [site, shim] = config.nodes.map((n) => effectiveNode(n, config.layers, 'config'));
    const plan = (node: typeof site, arch: number, vendor: 'PXEClient' | 'HTTPClient' = 'PXEClient') =>
      planBoot(identifyClient(discover(arch, vendor)), node, settings);
    expect(plan(site, 7)).toMatchObject({ bootFile: 'secureboot/ipxe-site.efi', vendorClass: 'PXEClient' });
    expect(plan(site, 16, 'HTTPClient')).toMatchObject({ bootFile: 'http://10.9.0.1:8080/secureboot/ipxe-site.efi' });
    expect(plan(site, 0)).toMatchObject({ bootFile: 'undionly.kpxe' });
    // The site-signed iPXE is an x86-64 binary: a site node whose DISCOVER says
    // arm64 gets the arm64 shim, arm32 UEFI nothing, never ipxe-site.efi.
    expect(plan(site, 11)).toMatchObject({ bootFile: 'secureboot/shimaa64.efi' });
    expect(plan(site, 10)).toMatchObject({ kind: 'none', reason: 'no boot file for UEFI architecture 10' });
    expect(plan(shim, 7)).toMatchObject({ bootFile: 'secureboot/shimx64.efi' });
  });

  describe('in a full-mode OFFER', () => {
    let dir: string;
    let store: FileStore;
    let handler: FullModeHandler;
    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-arch-'));
      const config = parseConfig(
        `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp:
  mode: full
  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200], router: 10.9.0.1 }]
`,
        'test.yaml',
      );
      store = (await FileStore.open(dir, config.nodes)).store;
      handler = new FullModeHandler(new LeasePool(config.dhcp.subnets, store, 30_000, 600_000), '10.9.0.1');
    });
    afterAll(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('arm64 UEFI (11) is offered the arm64 loader in `file` and option 67, x86-64 UEFI (7) ipxe.efi', async () => {
      for (const [arch, file] of [
        [11, 'grub/arm64-efi/core.efi'],
        [7, 'ipxe.efi'],
      ] as const) {
        const packet = discover(arch);
        const identity = identifyClient(packet);
        const result = await handler.handle({
          packet,
          messageType: 1,
          identity,
          node: undefined,
          known: false,
          plan: planBoot(identity, undefined, settings),
          source: { address: '0.0.0.0', port: 68 },
          listener: 'dhcp',
          now: Date.now(),
        });
        const sent = (result.replies[0] as { packet: DhcpPacket }).packet;
        const offer = decodePacket(encodePacket(sent).buffer);
        if (!offer.ok) throw new Error(offer.reason);
        expect(offer.packet.file, String(arch)).toBe(file);
        expect(offer.packet.options.get(67)?.toString('latin1'), String(arch)).toBe(file);
      }
    });
  });
});
