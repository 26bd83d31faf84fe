// boot.signingKey and secureBoot: site (server/boot/signing.ts, signing-check.ts).
// Real peers: Debian's snakeoil db key (package ovmf, encrypted, passphrase
// "snakeoil"), a throwaway key made by openssl, Debian's ipxe.efi, sbsign and sbverify.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import { findConfigNode } from '../../server/cli/render.js';
import { signingProblems } from '../../server/boot/signing-check.js';
import { signIpxe, signedBy } from '../../server/boot/signing.js';
import { SITE_SIGNED_IPXE } from '../../server/boot/signing-files.js';

const SNAKEOIL = { key: '/usr/share/ovmf/PkKek-1-snakeoil.key', cert: '/usr/share/ovmf/PkKek-1-snakeoil.pem' };

describe('boot.signingKey: iPXE signed with the site key, and what config check refuses', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-signing-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tftp = path.join(dir, 'tftpboot');
  mkdirSync(tftp);
  copyFileSync('/usr/lib/ipxe/ipxe.efi', path.join(tftp, 'ipxe.efi'));
  const passphrase = path.join(dir, 'passphrase');
  writeFileSync(passphrase, 'snakeoil\n');
  const other = { key: path.join(dir, 'other.key'), cert: path.join(dir, 'other.pem') };
  execFileSync(
    'openssl',
    ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', other.key, '-out', other.cert, '-subj', '/CN=other', '-days', '1'],
    { stdio: 'pipe' },
  );
  mkdirSync(path.join(dir, 'images/base/v1/amd64'), { recursive: true });
  symlinkSync('v1', path.join(dir, 'images/base/current'));
  const kernel = path.join(dir, 'images/base/current/amd64/vmlinuz');

  const check = (signingKey: string, nodes = `  - { mac: '52:54:00:5c:00:01', hostname: site-1, secureBoot: site }\n`) => {
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir}/state }
tftp: { root: ${tftp} }
images: { dir: ${dir}/images, default: base }
boot: { ${signingKey} }
nodes:
${nodes}`,
      `${dir}/site.yaml`,
    );
    return signingProblems(
      config,
      config.nodes.map((n) => findConfigNode(config, n.mac)),
    ).map((p) => `${p.key}: ${p.message}`);
  };
  const snakeoil = `signingKey: { key: ${SNAKEOIL.key}, cert: ${SNAKEOIL.cert}, passphraseFile: ${passphrase} }`;

  it('signs ipxe.efi with the encrypted snakeoil key: sbverify accepts it with that certificate and not with another', () => {
    const installed = signIpxe(tftp, { ...SNAKEOIL, passphraseFile: passphrase });
    expect(installed.file).toBe(SITE_SIGNED_IPXE);
    const signed = path.join(tftp, SITE_SIGNED_IPXE);
    expect(signedBy(signed, SNAKEOIL.cert)).toBe(true);
    expect(signedBy(signed, other.cert)).toBe(false);
    expect(signedBy(path.join(tftp, 'ipxe.efi'), SNAKEOIL.cert)).toBe(false);
  });

  it('config check passes the matching pair and refuses a key that is unreadable, not a key, locked, or not the certificate’s', () => {
    signIpxe(tftp, { ...SNAKEOIL, passphraseFile: passphrase });
    execFileSync('sbsign', ['--key', other.key, '--cert', other.cert, '--output', kernel, '/usr/lib/ipxe/ipxe.efi'], { stdio: 'pipe' });
    // The kernel carries a signature, but not the site's.
    expect(check(snakeoil)).toEqual([
      `nodes[0]: site-1 boots with secureBoot: site, but the kernel of image base/amd64 (${kernel}) is not signed by ${SNAKEOIL.cert}, so the firmware would refuse it after iPXE: sign it with sbsign --key ${SNAKEOIL.key} --cert ${SNAKEOIL.cert}`,
    ]);
    rmSync(kernel);
    expect(check(snakeoil)).toEqual([]);
    expect(check(`signingKey: { key: ${dir}/nope.key, cert: ${SNAKEOIL.cert} }`)).toEqual([
      `boot.signingKey.key: cannot read the signing key ${dir}/nope.key: ENOENT`,
    ]);
    expect(check(`signingKey: { key: ${SNAKEOIL.cert}, cert: ${SNAKEOIL.cert} }`)[0]).toMatch(
      new RegExp(`^boot.signingKey.key: ${SNAKEOIL.cert} is not a usable PEM private key: `),
    );
    expect(check(`signingKey: { key: ${SNAKEOIL.key}, cert: ${SNAKEOIL.cert} }`)[0]).toMatch(
      /^boot\.signingKey\.key: .* \(an encrypted key needs boot\.signingKey\.passphraseFile\)$/,
    );
    expect(check(`signingKey: { key: ${other.key}, cert: ${SNAKEOIL.cert} }`)).toEqual([
      `boot.signingKey.cert: ${SNAKEOIL.cert} (C=US, ST=Colorado, L=Fort Collins, O=SnakeOil) is not the certificate of the key ${other.key}: their public keys differ`,
    ]);
    expect(check(`signingKey: { key: ${other.key}, cert: ${other.key} }`)[0]).toMatch(
      new RegExp(`^boot.signingKey.cert: ${other.key} is not a PEM X.509 certificate: `),
    );
  });

  it('refuses secureBoot: site without a key, on an arm64 node, and when the signed iPXE is stale', () => {
    expect(check('kernelArgs: ""')).toEqual([
      'boot.signingKey: site-1 boot with secureBoot: site, which needs boot.signingKey (the db key the site enrolled)',
    ]);
    expect(check(snakeoil, `  - { mac: '52:54:00:5c:00:02', hostname: arm-1, arch: arm64, secureBoot: site }\n`)).toEqual([
      "nodes[0]: arm-1 is arm64: secureBoot: site signs amd64 iPXE only; use secureBoot: true (Debian's shim and signed GRUB)",
    ]);
    // Signed with another key than the configured one (the key was changed, bootloaders not re-run).
    signIpxe(tftp, { ...other, passphraseFile: undefined });
    expect(check(snakeoil)).toEqual([
      `boot.signingKey: ${path.join(tftp, SITE_SIGNED_IPXE)} is not signed by ${SNAKEOIL.cert}: run bootfarm bootloaders --config ${dir}/site.yaml`,
    ]);
  });
});
