// The configuration in force, as one swappable holder: services that answer from
// the configuration (inventory, generated boot files, agent) read it per request,
// so a reload (server/reload.ts) replaces it whole and every next request sees the
// new one, while a request already answered (a transfer in flight) keeps what it got.
// Which keys a reload may change is decided here, in mergeReload.
import type { ResolvedConfig } from './types.js';
import type { TemplateSet } from './templates.js';

/** What reads the configuration per request. */
export interface ConfigSource {
  readonly config: ResolvedConfig;
}

/** The configuration and the templates compiled from it (boot.templatesDir), swapped together. */
export class LiveConfig implements ConfigSource {
  private state: { config: ResolvedConfig; templates: TemplateSet };

  constructor(config: ResolvedConfig, templates: TemplateSet) {
    this.state = { config, templates };
  }

  get config(): ResolvedConfig {
    return this.state.config;
  }

  get templates(): TemplateSet {
    return this.state.templates;
  }

  /** One assignment: a reader sees the old pair or the new one, never half of each. */
  swap(config: ResolvedConfig, templates: TemplateSet): void {
    this.state = { config, templates };
  }
}

// Keys a reload applies: nodes, profiles, defaults, unknownNodes, images.default,
// boot.kernelArgs and boot.templatesDir (LIVE_SECTIONS and LIVE_FIELDS below).
// Everything else is read once at start: sockets are bound (ports, addresses,
// interfaces), the state directory is open, services were built from it (DHCP
// subnets and boot files, NBD, the API token, Kubernetes minting).

export interface ReloadMerge {
  /** The configuration to serve: the new file's live keys over the running one. */
  config: ResolvedConfig;
  /** Dotted keys whose new value waits for a restart (the old one keeps serving). */
  restartRequired: string[];
}

/** Resolved sections that carry the live keys (profiles and defaults resolve into layers). */
const LIVE_SECTIONS = new Set(['file', 'nodes', 'layers', 'unknownNodes']);
const LIVE_FIELDS: Record<string, ReadonlySet<string>> = { images: new Set(['default']), boot: new Set(['kernelArgs', 'templatesDir']) };

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function mergeReload(running: ResolvedConfig, next: ResolvedConfig): ReloadMerge {
  const restartRequired: string[] = [];
  const sections = new Set([...Object.keys(running), ...Object.keys(next)]) as Set<keyof ResolvedConfig>;
  for (const section of sections) {
    if (LIVE_SECTIONS.has(section)) continue;
    const before = running[section] as unknown;
    const after = next[section] as unknown;
    if (same(before, after)) continue;
    if (before === null || typeof before !== 'object' || after === null || typeof after !== 'object' || Array.isArray(before)) {
      restartRequired.push(section);
      continue;
    }
    const live = LIVE_FIELDS[section];
    const fields = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const field of fields) {
      if (live?.has(field)) continue;
      if (!same((before as Record<string, unknown>)[field], (after as Record<string, unknown>)[field]))
        restartRequired.push(`${section}.${field}`);
    }
  }
  const config: ResolvedConfig = {
    ...running,
    nodes: next.nodes,
    layers: next.layers,
    unknownNodes: next.unknownNodes,
    images: { ...running.images, default: next.images.default },
    boot: { ...running.boot, kernelArgs: next.boot.kernelArgs, templatesDir: next.boot.templatesDir },
  };
  return { config, restartRequired };
}
