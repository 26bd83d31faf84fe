// `config check` refuses secureBoot for an image whose kernel is not signed, naming
// the file. Real peers: the "kernels" are Debian's iPXE EFI binary (a PE image with
// no signature) and the same binary signed by sbsign with a throwaway key.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import { secureBootImageProblems } from '../../server/config/secure-boot-check.js';
import { findConfigNode } from '../../server/cli/render.js';

describe('config check: secureBoot nodes need a signed kernel', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-sb-check-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  for (const image of ['signed', 'unsigned']) {
    mkdirSync(path.join(dir, 'images', image, 'v1', 'amd64'), { recursive: true });
    symlinkSync('v1', path.join(dir, 'images', image, 'current'));
  }
  const kernel = (image: string) => path.join(dir, 'images', image, 'current', 'amd64', 'vmlinuz');
  copyFileSync('/usr/lib/ipxe/ipxe.efi', kernel('unsigned'));
  const key = path.join(dir, 'db.key');
  const cert = path.join(dir, 'db.pem');
  execFileSync(
    'openssl',
    ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=bootfarm test db', '-days', '1'],
    {
      stdio: 'pipe',
    },
  );
  execFileSync('sbsign', ['--key', key, '--cert', cert, '--output', kernel('signed'), '/usr/lib/ipxe/ipxe.efi'], { stdio: 'pipe' });

  const problems = (nodes: string) => {
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir}/state }
images: { dir: ${dir}/images, default: signed }
profiles: [{ name: sb, match: { macPrefix: '52:54:00:5b' }, secureBoot: true }]
nodes:
${nodes}`,
      'site.yaml',
    );
    return secureBootImageProblems(
      config,
      config.nodes.map((n) => findConfigNode(config, n.mac)),
    ).map((p) => `${p.key}: ${p.message}`);
  };

  it('a signed kernel passes; an unsigned one is refused for the secureBoot node, naming the file', () => {
    expect(problems(`  - { mac: '52:54:00:5b:00:01', hostname: sb-1 }\n`)).toEqual([]);
    expect(
      problems(
        `  - { mac: '52:54:00:5b:00:01', hostname: sb-1, image: unsigned }\n  - { mac: '52:54:00:00:00:02', hostname: plain-1, image: unsigned }\n`,
      ),
    ).toEqual([
      `nodes[0]: sb-1 boots with secureBoot, but the kernel of image unsigned/amd64 (${kernel('unsigned')}) is not signed (sbverify --list finds no signature), so GRUB would refuse it; build the image with Debian's signed kernel (linux-image-amd64) or sign it with a key the machines trust`,
    ]);
  });
});
