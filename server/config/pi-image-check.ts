// `config check`: a Raspberry Pi node whose image lacks a file its model boots
// from is refused now, naming the file, instead of at the Pi's boot as a TFTP
// "file not found" it cannot report. Only images already published are looked at
// (an image built after the check is checked by the next one). Edge: reads the
// images directory.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { piModelName, piNodeBootSet, piRequiredFiles } from '../boot/files/pi-models.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { ConfigProblem } from './errors.js';
import type { ResolvedConfig } from './types.js';

export function piImageProblems(config: ResolvedConfig, nodes: EffectiveNode[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  nodes.forEach((node, index) => {
    if (!node.piSerial) return;
    const set = piNodeBootSet(node);
    if ('refused' in set) return; // the file's own check names it, with its line
    const dir = path.join(config.images.dir, node.image, 'current', node.arch);
    if (!existsSync(dir)) return;
    const missing = piRequiredFiles(set).filter((f) => !existsSync(path.join(dir, 'rpi', f)));
    if (missing.length === 0) return;
    out.push({
      file: config.file,
      line: undefined,
      column: undefined,
      key: `nodes[${index}]`,
      message: `${node.hostname} is a ${piModelName(set.model)} (${set.arch}), but image ${node.image}/${node.arch} has no ${missing.map((f) => `rpi/${f}`).join(', ')} (in ${dir}); rebuild the image with a kernel and firmware for this model, or give the node another image`,
    });
  });
  return out;
}
