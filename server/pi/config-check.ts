// What `config check` (and every load) refuses about Pi HTTP boot: a node with
// piBoot: http that has no serial to name its HTTP path, a Pi 3B+ (no EEPROM),
// or no usable signing key. Called from server/config/load.ts semanticProblems.
import path from 'node:path';
import type { ConfigFile } from '../config/schema.js';
import { GENERATED_KEY_FILE, signingKeyProblem } from './signing-key.js';

type Problem<P> = (segments: Array<string | number>, message: string) => P;

export function piHttpProblems<P>(cfg: ConfigFile, configDir: string, problem: Problem<P>): P[] {
  const out: P[] = [];
  const httpNodes = (cfg.nodes ?? []).map((n, index) => ({ n, index })).filter(({ n }) => n.piBoot === 'http');
  for (const { n, index } of httpNodes) {
    if (!n.piSerial) out.push(problem(['nodes', index, 'piBoot'], "piBoot: http needs piSerial (the node's HTTP_PATH is pi/<serial>)"));
    if (n.piModel === 3)
      out.push(problem(['nodes', index, 'piBoot'], 'piBoot: http is a Pi 4/5 EEPROM feature; a Pi 3B+ (piModel 3) boots over TFTP'));
  }
  const first = httpNodes[0];
  if (first === undefined) return out;
  // Only when a node needs it: a configured key must be usable, a generated one usable if it exists.
  const configured = cfg.pi?.signingKey;
  const file = configured
    ? path.resolve(configDir, configured)
    : path.join(path.resolve(configDir, cfg.server.stateDir), GENERATED_KEY_FILE);
  const why = signingKeyProblem(file, configured === undefined);
  if (why)
    out.push(
      problem(
        configured ? ['pi', 'signingKey'] : ['nodes', first.index, 'piBoot'],
        `piBoot: http (${first.n.hostname}) needs a usable signing key: ${why}${configured ? '' : ` (the key bootfarm generated; delete it to generate a new one, then program the new public key: bootfarm pi eeprom-config)`}`,
      ),
    );
  return out;
}
