// Per-node files rendered from templates: first in the resolver chain, so a node's
// own config always wins over a static file of the same name.
import type { ResolvedConfig } from '../../config/types.js';
import type { EffectiveNode } from '../../inventory/effective.js';
import { bootContext } from '../node-context.js';
import type { TemplateName, TemplateSet } from '../../config/templates.js';
import { FileCache } from './file-cache.js';
import { macFromPath, type NodeDirectory } from './node-directory.js';
import { piNodeBootSet } from './pi-models.js';
import type { FileAnswer, FileRequest, FileResolver } from './resolver.js';
import { UBOOT_SCRIPT_PATH, ubootScriptAnswer } from '../uboot/script-file.js';

const PI_SERIAL = /^[0-9a-f]{8}$/;

/** The templates whose output carries the node's kernel command line: serving one starts a boot. */
const BOOT_SCRIPTS: ReadonlySet<TemplateName> = new Set(['ipxe', 'grub.cfg', 'pxelinux.cfg', 'rpi-cmdline.txt']);

/**
 * Starts the node's boot when its boot script is served (server/join/boot-script-issuer.ts):
 * the one-time nonce for its kernel command line, or why this client gets no script.
 */
export interface BootScriptIssuer {
  issue(node: EffectiveNode, clientAddress: string): Promise<{ nonce: string } | { refused: string }>;
}

export class GeneratedFileResolver implements FileResolver {
  readonly name = 'generated';

  /** `live` is read per request: a configuration reload changes the next file rendered, not one in flight. */
  constructor(
    private readonly live: { readonly config: ResolvedConfig; readonly templates: TemplateSet },
    private readonly nodes: NodeDirectory,
    private readonly bootScripts?: BootScriptIssuer,
  ) {}

  /** Which template and node a path names, if any. */
  private route(request: FileRequest): { template: TemplateName; node: EffectiveNode | undefined } | undefined {
    const parts = request.path.split('/');
    const [first, second] = parts;
    if (parts.length === 2 && first === 'boot' && second?.endsWith('.ipxe')) {
      const mac = macFromPath(second.slice(0, -5));
      return mac ? { template: 'ipxe', node: this.nodes.byMac(mac) } : undefined;
    }
    if (parts.length === 2 && first === 'grub') {
      // GRUB's netboot search: grub.cfg-01-<mac>, ..., then grub.cfg.
      if (second === 'grub.cfg') return { template: 'grub.cfg', node: this.nodes.byAddress(request.clientAddress) };
      const mac = second?.startsWith('grub.cfg-01-') ? macFromPath(second.slice(12)) : undefined;
      return mac ? { template: 'grub.cfg', node: this.nodes.byMac(mac) } : undefined;
    }
    if (parts.length === 2 && first === 'pxelinux.cfg' && second?.startsWith('01-')) {
      const mac = macFromPath(second.slice(3));
      return mac ? { template: 'pxelinux.cfg', node: this.nodes.byMac(mac) } : undefined;
    }
    // A Pi asks for <serial>/config.txt when its prefix probe found the directory,
    // and for config.txt alone when it did not (eeprom-bootloader.adoc, TFTP_PREFIX).
    const piFile = parts.length === 2 && PI_SERIAL.test(first ?? '') ? second : parts.length === 1 ? first : undefined;
    if (piFile === 'config.txt' || piFile === 'cmdline.txt') {
      const node = parts.length === 2 ? this.nodes.byPiSerial(first as string) : this.nodes.byAddress(request.clientAddress);
      if (!node?.piSerial) return undefined;
      return { template: piFile === 'config.txt' ? 'rpi-config.txt' : 'rpi-cmdline.txt', node };
    }
    return undefined;
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    // One script for every U-Boot board; its node-specific part is the pxelinux.cfg it fetches next.
    if (request.path === UBOOT_SCRIPT_PATH) return ubootScriptAnswer();
    const route = this.route(request);
    if (!route) return undefined;
    if (!route.node) return { found: false, denied: false, detail: `no node for ${request.path}` };
    if (route.template === 'rpi-config.txt' || route.template === 'rpi-cmdline.txt') {
      // A Pi 4's config.txt handed to a Pi 5 names a kernel it cannot boot: no guess.
      const set = piNodeBootSet(route.node);
      if ('refused' in set) return { found: false, denied: false, detail: set.refused };
    }
    const { config, templates } = this.live;
    let nonce: string | undefined;
    if (this.bootScripts && BOOT_SCRIPTS.has(route.template)) {
      const issued = await this.bootScripts.issue(route.node, request.clientAddress);
      if ('refused' in issued) return { found: false, denied: true, detail: issued.refused, refusal: 'boot-script-refused' };
      nonce = issued.nonce;
    }
    const data = Buffer.from(
      templates.render(route.template, bootContext(route.node, config, nonce === undefined ? undefined : { nonce })),
    );
    return { found: true, from: `${this.name}:${route.node.hostname}`, size: data.length, open: async () => FileCache.fromBuffer(data) };
  }
}
