// A Raspberry Pi node (one with a piSerial) must say, or let bootfarm work out,
// which model it is, and its image arch must be one that model boots: a Pi 4's
// config.txt handed to a Pi 5 names a kernel it cannot load. The per-model facts:
// server/boot/files/pi-models.ts. Pure over the parsed file.
import { piBootSet, inferPiModelFromMac } from '../boot/files/pi-models.js';
import type { ConfigFile } from './schema.js';
import type { ConfigProblem } from './errors.js';

type Problem = (segments: ReadonlyArray<string | number>, message: string) => ConfigProblem;

export function piNodeProblems(cfg: ConfigFile, problem: Problem): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  (cfg.nodes ?? []).forEach((n, index) => {
    if (!n.piSerial) return;
    const model = n.piModel ?? inferPiModelFromMac(n.mac);
    if (model === undefined) {
      out.push(
        problem(
          ['nodes', index, 'piModel'],
          `expected 3, 4 or 5 for this Raspberry Pi (piSerial ${n.piSerial}): its MAC ${n.mac} does not settle the model (only b8:27:eb does, the Pi 3B+), and each model boots different files`,
        ),
      );
      return;
    }
    // A Pi node without arch boots arm64 (server/inventory/effective.ts inferArch).
    const set = piBootSet(model, n.arch ?? 'arm64');
    if ('refused' in set) out.push(problem(['nodes', index, 'arch'], set.refused));
  });
  return out;
}
