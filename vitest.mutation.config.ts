import { defineConfig } from 'vitest/config';

// The unit tier that Stryker runs against each mutant (stryker.config.json):
// in-process tests of the modules that decide what bootfarm answers. Nothing
// here needs root or a network namespace; curl on loopback is the only peer.
// Tests that spawn the CLI cannot see a mutant (it lives in this process
// only) and would only add minutes: they live in their own files
// (node-render, config-cli), outside this list.
export const MUTATION_TESTS = [
  'test/unit/boot-arch-files.test.ts',
  'test/unit/boot-replies.test.ts',
  'test/unit/boot-credentials.test.ts',
  'test/unit/boot-script-issuer.test.ts',
  'test/unit/boot-sessions.test.ts',
  'test/unit/boot-sessions-more.test.ts',
  'test/unit/client-identity.test.ts',
  'test/unit/config.test.ts',
  'test/unit/config-load.test.ts',
  'test/unit/config-load-more.test.ts',
  'test/unit/config-live.test.ts',
  'test/unit/dhcp-address-conflicts.test.ts',
  'test/unit/dhcp-codec.test.ts',
  'test/unit/dhcp-full-claims.test.ts',
  'test/unit/dhcp-full-decisions.test.ts',
  'test/unit/dhcp-full-skew.test.ts',
  'test/unit/dhcp-full-pi-claims.test.ts',
  'test/unit/dhcp-proxy-replies.test.ts',
  'test/unit/dhcp-option-readers.test.ts',
  'test/unit/http-range.test.ts',
  'test/unit/lease-pool.test.ts',
  'test/unit/lease-pool-decisions.test.ts',
  'test/unit/lease-pool-held-elsewhere.test.ts',
  'test/unit/lts-conf.test.ts',
  'test/unit/nbd-catalog.test.ts',
  'test/unit/nbd-config.test.ts',
  'test/unit/nbd-protocol.test.ts',
  'test/unit/nbd-session.test.ts',
  'test/unit/nbd-session-backpressure.test.ts',
  'test/unit/nbd-session-handshake.test.ts',
  'test/unit/node-config.test.ts',
  'test/unit/pi-bootloader.test.ts',
  'test/unit/tftp-options.test.ts',
  'test/unit/tpm-admission.test.ts',
  'test/unit/tpm-ek-registry.test.ts',
  'test/unit/tpm-ek-trust-undo.test.ts',
  'test/unit/tftp-packet.test.ts',
  'test/unit/tftp-transfer.test.ts',
  'test/unit/uboot-boot.test.ts',
  'test/unit/version-sort.test.ts',
];

export default defineConfig({
  test: {
    include: MUTATION_TESTS,
    pool: 'forks',
    // A mutant that makes a test loop must fail that test, not hang the run.
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
