// `bootfarm render`: prints exactly what a node will get, from the configuration
// file alone (no running server): the same inventory layering and templates.
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/types.js';
import { effectiveNode, type EffectiveNode } from '../inventory/effective.js';
import { TemplateSet, type TemplateName } from '../config/templates.js';
import { bootContext } from '../boot/node-context.js';
import { joinContext, renderJoinConfiguration } from '../kube/join-config.js';
import { normalizeMac } from '../util/mac.js';
import { SetupError } from '../errors.js';

const ARTEFACTS: Record<string, TemplateName | 'join'> = {
  'lts.conf': 'lts.conf',
  ipxe: 'ipxe',
  'grub.cfg': 'grub.cfg',
  'pxelinux.cfg': 'pxelinux.cfg',
  'cmdline.txt': 'rpi-cmdline.txt',
  'config.txt': 'rpi-config.txt',
  join: 'join',
};

/** What the join configuration shows for the token: it only exists once the node boots. */
const TOKEN_PLACEHOLDER = '<minted at boot: [a-z0-9]{6}.[a-z0-9]{16}>';

export function findConfigNode(config: ResolvedConfig, key: string): EffectiveNode {
  const mac = normalizeMac(key);
  const node = config.nodes.find((n) => n.mac === mac || n.hostname.toLowerCase() === key.toLowerCase());
  if (!node)
    throw new SetupError(
      `--node ${key}: no node with that MAC or hostname in ${config.file} (${config.nodes.map((n) => n.hostname).join(', ') || 'no nodes'})`,
    );
  return effectiveNode(node, config.layers, 'config');
}

export function renderArtefact(config: ResolvedConfig, node: EffectiveNode, artefact: string): string {
  const template = ARTEFACTS[artefact];
  if (!template) throw new SetupError(`unknown artefact ${JSON.stringify(artefact)}; expected one of ${Object.keys(ARTEFACTS).join(', ')}`);
  const templates = new TemplateSet(config.boot.templatesDir);
  if (template === 'join') {
    if (!config.kubernetes) throw new SetupError(`${config.file} has no kubernetes section: nodes do not join`);
    if (!node.join) throw new SetupError(`${node.hostname} does not join (join: false)`);
    return renderJoinConfiguration(templates, joinContext(node, config.kubernetes, TOKEN_PLACEHOLDER));
  }
  if ((template === 'rpi-cmdline.txt' || template === 'rpi-config.txt') && !node.piSerial) {
    throw new SetupError(`${node.hostname} is not a Raspberry Pi (no piSerial): it has no ${artefact}`);
  }
  return templates.render(template, bootContext(node, config));
}

export function registerRenderCommand(program: Command, fail: (err: unknown) => never): void {
  program
    .command('render')
    .description(`print a rendered artefact for one node: ${Object.keys(ARTEFACTS).join(', ')}`)
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .requiredOption('-n, --node <mac|hostname>', 'the node')
    .argument('<artefact>', Object.keys(ARTEFACTS).join(' | '))
    .action((artefact: string, opts: { config: string; node: string }) => {
      try {
        const config = loadConfig(opts.config);
        const text = renderArtefact(config, findConfigNode(config, opts.node), artefact);
        process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      } catch (err) {
        fail(err);
      }
    });
}
