// `config check`: a secureBoot node whose image kernel carries no Authenticode
// signature is refused now, naming the file. Under Secure Boot, Debian's GRUB
// hands the kernel to shim to verify and stops at "bad shim signature", with
// nothing on the node's timeline. Whether the signer is one the machine trusts
// (Debian's CA through shim, or a key the site enrolled) only the firmware can
// tell; this check catches the kernel that is not signed at all. Only images
// already published are looked at, as in pi-image-check.ts. Edge: reads the
// images directory and runs sbverify (package sbsigntool).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { EffectiveNode } from '../inventory/effective.js';
import type { ConfigProblem } from './errors.js';
import type { ResolvedConfig } from './types.js';

/** Whether `file` has at least one signature in its PE signature table (`sbverify --list` prints "signature 1" per signature). */
function hasAuthenticodeSignature(file: string): boolean {
  let out: string;
  try {
    out = execFileSync('sbverify', ['--list', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stdout?: string };
    if (e.code === 'ENOENT')
      throw new Error('sbverify not found: apt-get install sbsigntool (config check reads the kernels of secureBoot nodes)');
    // Not a PE image at all (a kernel without an EFI stub): not signed.
    out = e.stdout ?? '';
  }
  return /^signature \d+$/m.test(out);
}

export function secureBootImageProblems(config: ResolvedConfig, nodes: EffectiveNode[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const verdicts = new Map<string, boolean>();
  nodes.forEach((node, index) => {
    if (!node.secureBoot || node.piSerial) return;
    const kernel = path.join(config.images.dir, node.image, 'current', node.arch, 'vmlinuz');
    if (!existsSync(kernel)) return;
    let signed = verdicts.get(kernel);
    if (signed === undefined) {
      signed = hasAuthenticodeSignature(kernel);
      verdicts.set(kernel, signed);
    }
    if (signed) return;
    out.push({
      file: config.file,
      line: undefined,
      column: undefined,
      key: `nodes[${index}]`,
      message: `${node.hostname} boots with secureBoot, but the kernel of image ${node.image}/${node.arch} (${kernel}) is not signed (sbverify --list finds no signature), so GRUB would refuse it; build the image with Debian's signed kernel (linux-image-${node.arch}) or sign it with a key the machines trust`,
    });
  });
  return out;
}
