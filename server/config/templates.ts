// Renders the per-node boot files from handlebars templates in templates/ (or an
// override directory). Compiled with noEscape (these are not HTML: "console=ttyS0"
// must not become "console&#x3D;ttyS0") and strict (a missing variable is an error,
// not an empty string); contexts are plain objects, since handlebars renders
// class getters empty, even in strict mode (handlebars 4.7 blocks prototype access).
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { SetupError } from '../errors.js';

/** templates/ at the repository root: two levels up from server/config, three from dist/server/config. */
const BUILTIN_TEMPLATE_DIR = ((): string => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../templates'), path.resolve(here, '../../../templates')];
  return candidates.find((dir) => existsSync(path.join(dir, 'ipxe.hbs'))) ?? (candidates[0] as string);
})();

/** Boot artefacts: rendered with a BootContext, which never holds a secret. */
const TEMPLATE_NAMES = ['ipxe', 'grub.cfg', 'pxelinux.cfg', 'rpi-config.txt', 'rpi-cmdline.txt', 'lts.conf'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];
/** The join configuration is the only template that sees a token, and has its own context type. */
const JOIN_TEMPLATE = 'join-configuration.yaml';

export interface BootContext {
  node: { hostname: string; mac: string; macHyphen: string; arch: string; ip: string; profiles: string; labels: string };
  server: { address: string; httpPort: number; tftpPort: number; nbdPort: number };
  image: {
    name: string;
    arch: string;
    export: string;
    kernelPath: string;
    initrdPath: string;
    kernelUrl: string;
    initrdUrl: string;
    /** The GRUB device the kernel and initrd come from: (http,<server>:<port>), or (tftp,<server>) for secureBoot (server/boot/node-context.ts). */
    grubDevice: string;
  };
  /** Per model and arch (server/boot/files/pi-models.ts); model 0 and empty names for a node with none. */
  pi: {
    serial: string;
    model: number;
    isPi3: boolean;
    isPi4: boolean;
    isPi5: boolean;
    arm64bit: number;
    kernel: string;
    dtb: string;
    initramfs: string;
  };
  /** The kernel command line: what the initrd needs to find its root, and no secret. */
  kernelArgs: string;
  /** The node's lts.conf variables, keys sorted; each family's keys in `sort -V` order, space separated. */
  lts: { vars: Array<{ key: string; value: string }>; preinitKeys: string; fstabKeys: string; rcfileKeys: string; sysctlKeys: string };
}

export interface JoinContext {
  node: { hostname: string; mac: string };
  join: {
    apiVersion: string;
    v1beta4: boolean;
    apiServer: string;
    token: string;
    caCertHashes: string[];
    /** kubelet --node-labels: k=v,k=v */
    nodeLabels: string;
    taints: Array<{ key: string; value: string; effect: string }>;
  };
}

const SAMPLE_CONTEXT: BootContext = {
  node: {
    hostname: 'node-1',
    mac: '52:54:00:00:00:01',
    macHyphen: '52-54-00-00-00-01',
    arch: 'amd64',
    ip: '10.9.0.11',
    profiles: 'worker',
    labels: 'rack=r1',
  },
  server: { address: '10.9.0.1', httpPort: 8080, tftpPort: 69, nbdPort: 10809 },
  image: {
    name: 'base',
    arch: 'amd64',
    export: 'base/amd64',
    kernelPath: 'images/base/amd64/vmlinuz',
    initrdPath: 'images/base/amd64/initrd.img',
    kernelUrl: 'http://10.9.0.1:8080/images/base/amd64/vmlinuz',
    initrdUrl: 'http://10.9.0.1:8080/images/base/amd64/initrd.img',
    grubDevice: '(http,10.9.0.1:8080)',
  },
  pi: {
    serial: '1234abcd',
    model: 4,
    isPi3: false,
    isPi4: true,
    isPi5: false,
    arm64bit: 1,
    kernel: 'kernel8.img',
    dtb: 'bcm2711-rpi-4-b.dtb',
    initramfs: 'initrd.img',
  },
  kernelArgs: 'ip=dhcp',
  lts: { vars: [{ key: 'PREINIT_00_TIME', value: 'true' }], preinitKeys: 'PREINIT_00_TIME', fstabKeys: '', rcfileKeys: '', sysctlKeys: '' },
};

const SAMPLE_JOIN: JoinContext = {
  node: { hostname: 'node-1', mac: '52:54:00:00:00:01' },
  join: {
    apiVersion: 'kubeadm.k8s.io/v1beta4',
    v1beta4: true,
    apiServer: '10.9.0.20:6443',
    token: 'abcdef.0123456789abcdef',
    caCertHashes: [`sha256:${'0'.repeat(64)}`],
    nodeLabels: 'kubernetes.io/arch=amd64',
    taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }],
  },
};

/** POSIX shell single quoting: the value comes back byte for byte from `. file`. */
export function shellQuote(value: unknown): string {
  return `'${String(value).replace(/'/g, `'\\''`)}'`;
}

export class TemplateSet {
  private readonly compiled = new Map<string, Handlebars.TemplateDelegate<unknown>>();

  /** Compiles every template now, so a broken one fails at start (and `config check`), not at boot. */
  constructor(overrideDir: string | undefined) {
    const hb = Handlebars.create();
    hb.registerHelper('shellQuote', (value: unknown) => shellQuote(value));
    // A JSON string is a valid YAML scalar: labels and names cannot break the document.
    hb.registerHelper('json', (value: unknown) => JSON.stringify(value));
    const all: Array<[string, unknown]> = [
      ...TEMPLATE_NAMES.map((n): [string, unknown] => [n, SAMPLE_CONTEXT]),
      [JOIN_TEMPLATE, SAMPLE_JOIN],
    ];
    for (const [name, sample] of all) {
      const override = overrideDir ? path.join(overrideDir, `${name}.hbs`) : undefined;
      const file = override && existsSync(override) ? override : path.join(BUILTIN_TEMPLATE_DIR, `${name}.hbs`);
      let source: string;
      try {
        source = readFileSync(file, 'utf8');
      } catch (err) {
        throw new SetupError(`template ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      try {
        const template = hb.compile<unknown>(source, { noEscape: true, strict: true });
        // handlebars compiles lazily: render once now, so a syntax error or a
        // variable that does not exist fails here, with the file named.
        template(sample);
        this.compiled.set(name, template);
      } catch (err) {
        throw new SetupError(`template ${file}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }

  render(name: TemplateName, context: BootContext): string {
    return this.run(name, context);
  }

  renderJoin(context: JoinContext): string {
    return this.run(JOIN_TEMPLATE, context);
  }

  private run(name: string, context: unknown): string {
    const template = this.compiled.get(name);
    if (!template) throw new Error(`no template ${name}`);
    return template(context);
  }
}
