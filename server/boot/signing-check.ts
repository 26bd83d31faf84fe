// `config check` for `secureBoot: site` and boot.signingKey: a key that cannot be
// read, is not a key, or does not match its certificate is refused now, naming
// the file and the key, not at `bootfarm bootloaders` on the day a rack is
// added. So is a site node the signed iPXE or its kernel would leave at the
// firmware's "Access Denied": under Secure Boot the firmware checks the kernel
// iPXE loads against its db too, so the kernel must carry the site's signature.
// Edge: reads files and runs sbverify (server/boot/signing.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ConfigProblem } from '../config/errors.js';
import type { ResolvedConfig } from '../config/types.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { SITE_SIGNED_IPXE } from './signing-files.js';
import { SigningKeyError, loadSigningKey, signedBy } from './signing.js';

export function signingProblems(config: ResolvedConfig, nodes: EffectiveNode[]): ConfigProblem[] {
  const problem = (key: string, message: string): ConfigProblem => ({
    file: config.file,
    line: undefined,
    column: undefined,
    key,
    message,
  });
  const out: ConfigProblem[] = [];
  const signing = config.boot.signingKey;
  let keyUsable = false;
  if (signing) {
    try {
      loadSigningKey(signing);
      keyUsable = true;
    } catch (err) {
      if (!(err instanceof SigningKeyError)) throw err;
      out.push(problem(`boot.signingKey.${err.key}`, err.message));
    }
  }
  const site = nodes.map((node, index) => ({ node, index })).filter(({ node }) => node.secureBoot === 'site' && !node.piSerial);
  if (site.length > 0 && !signing)
    out.push(
      problem(
        'boot.signingKey',
        `${site.map(({ node }) => node.hostname).join(', ')} boot with secureBoot: site, which needs boot.signingKey (the db key the site enrolled)`,
      ),
    );
  for (const { node, index } of site.filter(({ node }) => node.arch === 'arm64'))
    out.push(
      problem(
        `nodes[${index}]`,
        `${node.hostname} is arm64: secureBoot: site signs amd64 iPXE only; use secureBoot: true (Debian's shim and signed GRUB)`,
      ),
    );
  if (!signing || !keyUsable || site.length === 0) return out;
  const ipxe = path.join(config.tftp.root, SITE_SIGNED_IPXE);
  if (!existsSync(ipxe) || !signedBy(ipxe, signing.cert))
    out.push(
      problem(
        'boot.signingKey',
        `${ipxe} is ${existsSync(ipxe) ? 'not signed by' : 'missing, so not signed with'} ${signing.cert}: run bootfarm bootloaders --config ${config.file}`,
      ),
    );
  const verdicts = new Map<string, boolean>();
  for (const { node, index } of site.filter(({ node }) => node.arch !== 'arm64')) {
    const kernel = path.join(config.images.dir, node.image, 'current', node.arch, 'vmlinuz');
    if (!existsSync(kernel)) continue;
    const signed = verdicts.get(kernel) ?? signedBy(kernel, signing.cert);
    verdicts.set(kernel, signed);
    if (!signed)
      out.push(
        problem(
          `nodes[${index}]`,
          `${node.hostname} boots with secureBoot: site, but the kernel of image ${node.image}/${node.arch} (${kernel}) is not signed by ${signing.cert}, so the firmware would refuse it after iPXE: sign it with sbsign --key ${signing.key} --cert ${signing.cert}`,
        ),
      );
  }
  return out;
}
