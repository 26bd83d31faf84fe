// A configuration reload (SIGHUP, `bootfarm reload`): read the file again, validate
// it as `bootfarm serve` would, and swap it in whole, or refuse it whole and keep
// serving the running one. Synchronous from the read to the swap, so two reloads
// never interleave and no request sees a half-applied configuration.
import type { Logger } from 'pino';
import { loadConfig } from './config/load.js';
import { ConfigError } from './config/errors.js';
import { mergeReload, type LiveConfig } from './config/live.js';
import type { ResolvedNode } from './config/types.js';
import { TemplateSet } from './config/templates.js';
import { SetupError } from './errors.js';
import type { Metrics } from './metrics.js';

export type ReloadOutcome =
  | {
      outcome: 'applied';
      file: string;
      nodes: { added: number; removed: number; changed: number };
      profiles: number;
      restartRequired: string[];
    }
  | { outcome: 'refused'; file: string; problems: string[] };

export interface ReloadDeps {
  live: LiveConfig;
  /** The store: its nodes from the configuration file are replaced, those from the API checked (server/store/store.ts). */
  store: { replaceConfigNodes(nodes: ResolvedNode[]): void; nodes(): ResolvedNode[]; isConfigNode(mac: string): boolean };
  metrics: Pick<Metrics, 'configReloads'>;
  logger: Logger;
}

function nodeChanges(before: ResolvedNode[], after: ResolvedNode[]): { added: number; removed: number; changed: number } {
  const old = new Map(before.map((n) => [n.mac, JSON.stringify(n)]));
  let added = 0;
  let changed = 0;
  for (const node of after) {
    const was = old.get(node.mac);
    if (was === undefined) added++;
    else if (was !== JSON.stringify(node)) changed++;
    old.delete(node.mac);
  }
  return { added, removed: old.size, changed };
}

/** `trigger` names what asked (SIGHUP, control socket) in the log line. */
export function reloadConfig(deps: ReloadDeps, trigger: string): ReloadOutcome {
  const running = deps.live.config;
  const file = running.file;
  let merged;
  let templates: TemplateSet;
  try {
    const next = loadConfig(file);
    merged = mergeReload(running, next);
    // Compiled and sample-rendered now: a broken template is refused here, not at a node's boot.
    templates = new TemplateSet(merged.config.boot.templatesDir);
  } catch (err) {
    // Whatever failed, the running configuration is untouched: a reload never ends the server.
    const problems =
      err instanceof ConfigError
        ? err.message.split('\n')
        : err instanceof SetupError
          ? [err.message]
          : [`${file}: ${(err as Error).message}`];
    deps.metrics.configReloads.inc({ outcome: 'refused' });
    deps.logger.error({ trigger, file, problems }, 'configuration reload refused; the running configuration keeps serving');
    return { outcome: 'refused', file, problems };
  }
  const nodes = nodeChanges(running.nodes, merged.config.nodes);
  deps.store.replaceConfigNodes(merged.config.nodes);
  deps.live.swap(merged.config, templates);
  deps.metrics.configReloads.inc({ outcome: 'applied' });
  const outcome: ReloadOutcome = {
    outcome: 'applied',
    file,
    nodes,
    profiles: merged.config.layers.profiles.length,
    restartRequired: merged.restartRequired,
  };
  deps.logger.info({ trigger, file, nodes, profiles: outcome.profiles }, 'configuration reloaded');
  // An API node naming a profile the file no longer defines boots with none: worth a line, not a refusal.
  const profiles = new Set(merged.config.layers.profiles.map((p) => p.name));
  for (const node of deps.store.nodes()) {
    if (node.profile && !profiles.has(node.profile) && !deps.store.isConfigNode(node.mac)) {
      deps.logger.warn(
        { trigger, node: node.hostname, mac: node.mac, profile: node.profile },
        'configuration reload: a node added through the API names a profile the file no longer defines; it gets no profile until one is defined or the node changed',
      );
    }
  }
  if (merged.restartRequired.length > 0) {
    deps.logger.warn(
      { trigger, file, keys: merged.restartRequired },
      'configuration reload: these keys changed but take effect only at a restart; their running values are kept',
    );
  }
  return outcome;
}
