// Firmware paths in the emulation lab beyond the first case's SeaBIOS and arm64
// UEFI PXE (test/integration/lab.test.ts): each lab kind boots with the firmware
// as Debian ships it and must reach "joined".
import { beforeAll, describe, expect, it } from 'vitest';
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { IMAGES, buildLabImage, fetchedPaths, lab } from '../lib/lab-run.js';
import type { NodeResult } from '../../server/lab/lab.js';

describe('emulation lab: firmware paths', () => {
  beforeAll(buildLabImage, 60 * 60_000);

  it(
    'UEFI HTTP boot with the firmware PXE off (OVMF amd64, AAVMF arm64) fetches its loader, kernel and initrd over HTTP and joins',
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'amd64-uefi-http,arm64-uefi-http']);
      expect(code, stderr.slice(-3000)).toBe(0);
      const version = readlinkSync(path.join(IMAGES, 'lab', 'current'));
      for (const node of json.results) {
        const arch = node.kind.startsWith('arm64') ? 'arm64' : 'amd64';
        expect(node.ok, `${node.kind}: ${node.failure}`).toBe(true);
        // The firmware asked as an HTTP client (arch 16 / 19) and got a URI; nothing came over TFTP.
        const files = node.events.filter((e) => e.type === 'http.file').map((e) => String(e.detail?.path));
        if (arch === 'arm64') expect(files).toContain('grub/arm64-efi/core.efi');
        expect(files, node.kind).toContain(`images/lab/${version}/${arch}/vmlinuz`);
        expect(
          node.events.some((e) => e.type === 'tftp.file'),
          node.kind,
        ).toBe(false);
        for (const step of ['root attached', 'booted', 'joined'] as const)
          expect(node.timeline[step], `${node.kind} ${step}`).toBeTypeOf('number');
      }
      expect(json.cluster.map((n) => n.name).sort()).toEqual(['lab-amd64-uefi-http', 'lab-arm64-uefi-http']);
    },
    30 * 60_000,
  );

  it(
    "OVMF's own UEFI PXE joins, and OVMF with Secure Boot on (Microsoft's keys) joins through shim, Debian's signed GRUB and the signed kernel, its kernel saying Secure boot enabled",
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'amd64-uefi,amd64-uefi-sb']);
      expect(code, stderr.slice(-3000)).toBe(0);
      const byKind = new Map(json.results.map((n) => [n.kind, n]));
      const plain = byKind.get('amd64-uefi');
      const sb = byKind.get('amd64-uefi-sb');
      expect(plain?.ok, `amd64-uefi: ${plain?.failure}`).toBe(true);
      expect(sb?.ok, `amd64-uefi-sb: ${sb?.failure}`).toBe(true);
      if (!plain || !sb) return;
      // OVMF's PXE loads iPXE; Secure Boot is off there and on under the .ms variables.
      expect(fetchedPaths(plain, 'tftp.file')[0]).toBe('ipxe.efi');
      expect(plain.secureBoot).toBe('disabled');
      expectSignedChain(sb, 'amd64', ['secureboot/shimx64.efi', 'secureboot/grubx64.efi']);
      for (const step of ['root attached', 'booted', 'joined'] as const) expect(plain.timeline[step], step).toBeTypeOf('number');
      expect(json.cluster.map((n) => n.name).sort()).toEqual(['lab-amd64-uefi', 'lab-amd64-uefi-sb']);
    },
    30 * 60_000,
  );

  it(
    "AAVMF with Secure Boot on (AAVMF_VARS.ms.fd) joins through Debian's arm64 shim, signed GRUB and signed kernel, its kernel saying Secure boot enabled",
    async () => {
      const { code, json, stderr } = await lab(['--server', 'docker', '--nodes', 'arm64-uefi-sb']);
      expect(code, stderr.slice(-3000)).toBe(0);
      const [sb] = json.results;
      expect(sb?.ok, `arm64-uefi-sb: ${sb?.failure}`).toBe(true);
      if (sb) expectSignedChain(sb, 'arm64', ['secureboot/shimaa64.efi', 'secureboot/grubaa64.efi']);
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-arm64-uefi-sb']);
    },
    30 * 60_000,
  );
});

/** A Secure Boot node's evidence: its kernel said enabled; shim, the GRUB it loads by name, then the kernel, all over TFTP; joined. */
function expectSignedChain(node: NodeResult, arch: 'amd64' | 'arm64', chain: [string, string]): void {
  expect(node.secureBoot).toBe('enabled');
  const version = readlinkSync(path.join(IMAGES, 'lab', 'current'));
  const files = fetchedPaths(node, 'tftp.file');
  expect(files.slice(0, 2)).toEqual(chain);
  expect(files).toContain(`images/lab/${version}/${arch}/vmlinuz`);
  for (const step of ['root attached', 'booted', 'joined'] as const)
    expect(node.timeline[step], `${node.kind} ${step}`).toBeTypeOf('number');
}
