// Where the arm64 bootloader packages come from (server/boot/bootloaders.ts): the
// lab image's .debs first; else the current version from the Debian mirror, never
// a copy an earlier download left in the cache (it would shadow GRUB and shim
// fixes for good); the cached copy only when the download fails. Real apt-get
// against the configured mirror, real dpkg-deb and grub-mknetdir.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { installGrubArm64 } from '../../server/boot/bootloaders.js';

const PKG = 'grub-efi-arm64-bin';
const debIn = (dir: string) => readdirSync(dir).find((f) => f.startsWith(`${PKG}_`) && f.endsWith('_arm64.deb'));

describe('arm64 bootloader packages: image first, then the mirror, the cache only as a fallback', () => {
  let work: string;
  /** The current .deb, downloaded by the first case. */
  let current: string;

  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-arm64-debs-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('downloads the current version even when the cache holds an older one', () => {
    const cache = path.join(work, 'cache-stale');
    mkdirSync(cache, { recursive: true });
    // An older version left by an earlier download: not even a valid .deb, so using it fails loudly.
    writeFileSync(path.join(cache, `${PKG}_2.02~beta2-1_arm64.deb`), 'stale');
    const [installed] = installGrubArm64(path.join(work, 'tftp-1'), { cacheDir: cache });
    expect(installed?.file).toBe('grub/arm64-efi/core.efi');
    expect(path.basename(installed?.source ?? '')).toMatch(/^grub-efi-arm64-bin_2\.(0[6-9]|[1-9]\d)[^_]*_arm64\.deb$/);
    expect(existsSync(path.join(work, 'tftp-1', 'grub', 'arm64-efi', 'core.efi'))).toBe(true);
    current = installed?.source as string;
  }, 300_000);

  it("takes the image's .deb without asking the mirror", () => {
    const seed = path.join(work, 'seed');
    mkdirSync(seed);
    copyFileSync(current, path.join(seed, path.basename(current)));
    const cache = path.join(work, 'cache-seeded');
    const [installed] = installGrubArm64(path.join(work, 'tftp-2'), { cacheDir: cache, seedDirs: [seed] });
    expect(installed?.source).toBe(path.join(seed, path.basename(current)));
    // No apt state was made: nothing was fetched.
    expect(existsSync(path.join(cache, 'apt-lists'))).toBe(false);
    expect(debIn(cache)).toBeUndefined();
  }, 120_000);

  it('uses the cached copy when the mirror cannot be reached, and says so', () => {
    const cache = path.join(work, 'cache-offline');
    mkdirSync(cache);
    copyFileSync(current, path.join(cache, path.basename(current)));
    // Names that are no version (a bad %-escape, a stray file): skipped, not a crash.
    writeFileSync(path.join(cache, `${PKG}_%E0%A4_arm64.deb`), 'stray');
    writeFileSync(path.join(cache, `${PKG}_not a version_arm64.deb`), 'stray');
    // An apt with no sources: its update succeeds with nothing, its download finds no package.
    const aptConf = path.join(work, 'apt-offline.conf');
    writeFileSync(
      aptConf,
      `Dir::Etc::SourceList "${path.join(work, 'none.list')}";\nDir::Etc::SourceParts "${path.join(work, 'none.d')}";\n`,
    );
    const previous = process.env.APT_CONFIG;
    process.env.APT_CONFIG = aptConf;
    try {
      const [installed] = installGrubArm64(path.join(work, 'tftp-3'), { cacheDir: cache });
      expect(installed?.source).toMatch(
        new RegExp(
          `^${path.join(cache, path.basename(current)).replace(/[.+~]/g, '\\$&')} \\(cached copy: the download failed \\(downloading ${PKG} \\(arm64\\) failed`,
        ),
      );
      expect(existsSync(path.join(work, 'tftp-3', 'grub', 'arm64-efi', 'core.efi'))).toBe(true);
    } finally {
      if (previous === undefined) delete process.env.APT_CONFIG;
      else process.env.APT_CONFIG = previous;
    }
  }, 120_000);
});
