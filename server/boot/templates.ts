// Renders the per-node boot files from handlebars templates in templates/ (or an
// override directory). Compiled with noEscape (these are not HTML: "console=ttyS0"
// must not become "console&#x3D;ttyS0") and strict (a missing variable is an error,
// not an empty string); contexts are plain objects, since handlebars renders
// class getters empty (anchors.md, handlebars notes).
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { SetupError } from '../errors.js';

/** templates/ at the repository root: two levels up from server/boot, three from dist/server/boot. */
export const BUILTIN_TEMPLATE_DIR = ((): string => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../templates'), path.resolve(here, '../../../templates')];
  return candidates.find((dir) => existsSync(path.join(dir, 'ipxe.hbs'))) ?? (candidates[0] as string);
})();

export const TEMPLATE_NAMES = ['ipxe', 'grub.cfg', 'pxelinux.cfg', 'rpi-config.txt', 'rpi-cmdline.txt'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

export interface BootContext {
  node: { hostname: string; mac: string; macHyphen: string; arch: string; ip: string };
  server: { address: string; httpPort: number; tftpPort: number; nbdPort: number };
  image: { name: string; arch: string; export: string; kernelPath: string; initrdPath: string; kernelUrl: string; initrdUrl: string };
  pi: { serial: string; model: number; isPi4: boolean; isPi5: boolean; kernel: string; initramfs: string };
  /** The kernel command line: what the initrd needs to find its root, and no secret. */
  kernelArgs: string;
}

const SAMPLE_CONTEXT: BootContext = {
  node: { hostname: 'node-1', mac: '52:54:00:00:00:01', macHyphen: '52-54-00-00-00-01', arch: 'amd64', ip: '10.9.0.11' },
  server: { address: '10.9.0.1', httpPort: 8080, tftpPort: 69, nbdPort: 10809 },
  image: { name: 'base', arch: 'amd64', export: 'base/amd64', kernelPath: 'images/base/amd64/vmlinuz', initrdPath: 'images/base/amd64/initrd.img', kernelUrl: 'http://10.9.0.1:8080/images/base/amd64/vmlinuz', initrdUrl: 'http://10.9.0.1:8080/images/base/amd64/initrd.img' },
  pi: { serial: '1234abcd', model: 4, isPi4: true, isPi5: false, kernel: 'kernel8.img', initramfs: 'initrd.img' },
  kernelArgs: 'ip=dhcp',
};

export class TemplateSet {
  private readonly compiled = new Map<TemplateName, Handlebars.TemplateDelegate<BootContext>>();

  /** Compiles every template now, so a broken one fails at start (and `config check`), not at boot. */
  constructor(overrideDir: string | undefined) {
    const hb = Handlebars.create();
    for (const name of TEMPLATE_NAMES) {
      const override = overrideDir ? path.join(overrideDir, `${name}.hbs`) : undefined;
      const file = override && existsSync(override) ? override : path.join(BUILTIN_TEMPLATE_DIR, `${name}.hbs`);
      let source: string;
      try {
        source = readFileSync(file, 'utf8');
      } catch (err) {
        throw new SetupError(`template ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      try {
        const template = hb.compile<BootContext>(source, { noEscape: true, strict: true });
        // handlebars compiles lazily: render once now, so a syntax error or a
        // variable that does not exist fails here, with the file named.
        template(SAMPLE_CONTEXT);
        this.compiled.set(name, template);
      } catch (err) {
        throw new SetupError(`template ${file}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }

  render(name: TemplateName, context: BootContext): string {
    const template = this.compiled.get(name);
    if (!template) throw new Error(`no template ${name}`);
    return template(context);
  }
}
