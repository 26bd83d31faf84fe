// The lab's reading of a UEFI node's console for Secure Boot (server/lab/secure-boot-evidence.ts)
// and the Secure Boot kinds' configuration (server/lab/lab-nodes.ts, lab-config.ts).
import { describe, expect, it } from 'vitest';
import { secureBootFailure, secureBootState } from '../../server/lab/secure-boot-evidence.js';
import { secureBootChains, specFor } from '../../server/lab/lab-nodes.js';
import { labServerConfig } from '../../server/lab/lab-config.js';

describe('Secure Boot evidence on a lab console', () => {
  it("reads the kernel's line, the last one when it booted twice, and nothing from a console without it", () => {
    expect(secureBootState(['EFI stub: Booting Linux Kernel...', '[    0.000000] secureboot: Secure boot enabled'])).toBe('enabled');
    expect(secureBootState(['[    0.000000] secureboot: Secure boot enabled', '[    0.000000] secureboot: Secure boot disabled'])).toBe(
      'disabled',
    );
    expect(secureBootState(['>>Start PXE over IPv4.', 'Access Denied'])).toBeUndefined();
  });

  it('fails a Secure Boot kind unless its kernel said enabled; other kinds pass whatever it said', () => {
    expect(secureBootFailure(true, 'enabled')).toBeUndefined();
    expect(secureBootFailure(true, 'disabled')).toMatch(/did not enforce/);
    expect(secureBootFailure(true, undefined)).toMatch(/never printed/);
    expect(secureBootFailure(false, 'disabled')).toBeUndefined();
  });
});

describe('the Secure Boot lab kinds', () => {
  it('set secureBoot in the node config (unless injected off) and ask for the arm64 chain only for arm64', () => {
    const specs = [specFor('amd64-uefi-sb', 0), specFor('arm64-uefi-sb', 0), specFor('amd64-uefi', 0)];
    const input = {
      workDir: '/w',
      imagesDir: '/i',
      image: 'lab',
      specs,
      tpmEks: new Map<string, string>(),
      admission: 'approve' as const,
      apiToken: 't',
      kube: { caCertFile: '/ca', kubeconfig: '/kc' },
    };
    const nodes = (c: Record<string, unknown>) =>
      (c.nodes as Array<{ hostname: string; secureBoot?: boolean }>).map((n) => [n.hostname, n.secureBoot]);
    expect(nodes(labServerConfig(input))).toEqual([
      ['lab-amd64-uefi-sb', true],
      ['lab-arm64-uefi-sb', true],
      ['lab-amd64-uefi', undefined],
    ]);
    expect(nodes(labServerConfig({ ...input, secureBootOff: ['amd64-uefi-sb'] }))[0]).toEqual(['lab-amd64-uefi-sb', undefined]);
    expect(secureBootChains(['amd64-uefi', 'amd64-uefi-sb'])).toEqual({ any: true, arm64: false });
    expect(secureBootChains(['arm64-uefi-sb'])).toEqual({ any: true, arm64: true });
    expect(secureBootChains(['amd64-uefi', 'arm64-uefi'])).toEqual({ any: false, arm64: false });
  });
});
