// A node's effective configuration: defaults, then its profiles, then the node
// itself, each layer overriding the one before (as LTSP's [Default] and per-MAC
// sections do). Pure: everything it needs is already loaded and validated.
import type { LtsValue } from '../config/schema.js';
import { evaluateLtsConf } from '../config/lts-conf.js';
import { versionSorted } from '../config/version-sort.js';
import type { ConfigLayer, LayerSet, NodeArch, ProfileMatch, ResolvedNode, ResolvedProfile, SecureBootSetting } from '../config/types.js';

/** The LTSP families applied in `sort -V` order of their keys (docs/protocol-notes.md §6.2). */
const LTS_FAMILIES = ['PREINIT', 'FSTAB', 'RCFILE', 'SYSCTL'] as const;
type LtsFamily = (typeof LTS_FAMILIES)[number];

export interface EffectiveNode extends ResolvedNode {
  arch: NodeArch;
  image: string;
  /** Names of the profiles applied, in order. */
  profiles: string[];
  labels: Record<string, string>;
  taints: string[];
  /** Every lts variable, upper-case keys, values as strings, keys sorted. */
  lts: Record<string, string>;
  /** Keys of each family in `sort -V` order. */
  ltsOrder: Record<LtsFamily, string[]>;
  /** Whether the boot ends with kubeadm join (when a kubernetes section exists). */
  join: boolean;
  /** Extra kernel arguments of all layers, in layer order. */
  kernelArgs: string;
  /** NBD_TO_RAM / IMAGE_TO_RAM: the initramfs copies the image to RAM. */
  toRam: boolean;
  /** true: UEFI boots through shim and Debian's signed GRUB; site: iPXE signed with boot.signingKey (the last layer that sets secureBoot wins). */
  secureBoot: SecureBootSetting;
  /** Where the node entry came from. */
  origin: 'config' | 'api' | 'unknown';
}

/** Default architecture when none is set: a Pi (it has a serial) is arm64, anything else amd64. */
export function inferArch(node: Pick<ResolvedNode, 'arch' | 'piSerial'>): NodeArch {
  return node.arch ?? (node.piSerial ? 'arm64' : 'amd64');
}

function profileMatches(match: ProfileMatch, node: ResolvedNode): boolean {
  if (match.arch !== undefined && match.arch !== inferArch(node)) return false;
  if (match.macPrefix !== undefined && !node.mac.startsWith(match.macPrefix)) return false;
  if (match.piModel !== undefined && match.piModel !== node.piModel) return false;
  if (match.label) {
    for (const [key, value] of Object.entries(match.label)) if (node.labels?.[key] !== value) return false;
  }
  return true;
}

/** The profiles that apply to a node: the one it names, or else every profile whose match holds, in file order. */
function selectProfiles(node: ResolvedNode, profiles: ResolvedProfile[]): ResolvedProfile[] {
  if (node.profile) {
    const named = profiles.find((p) => p.name === node.profile);
    return named ? [named] : [];
  }
  return profiles.filter((p) => p.match !== undefined && profileMatches(p.match, node));
}

const TRUE_WORDS = new Set(['y', 'yes', 'true', '1']);
/** lts.conf(5) booleans: Y/y/True/true (and yes/1, which LTSP's shell tests accept too). */
function ltsTrue(value: string | undefined): boolean {
  return value !== undefined && TRUE_WORDS.has(value.trim().toLowerCase());
}

function applyLts(vars: Map<string, string>, entries: Record<string, LtsValue>): void {
  for (const [rawKey, rawValue] of Object.entries(entries)) {
    const key = rawKey.toUpperCase();
    const value = String(rawValue);
    if (value.toUpperCase() === 'NONE') vars.delete(key);
    else vars.set(key, value);
  }
}

export function effectiveNode(node: ResolvedNode, layers: LayerSet, origin: EffectiveNode['origin']): EffectiveNode {
  const profiles = selectProfiles(node, layers.profiles);
  const nodeLayer: ConfigLayer = {
    image: node.image,
    lts: node.lts,
    labels: node.labels,
    taints: node.taints,
    join: node.join,
    kernelArgs: node.kernelArgs,
    secureBoot: node.secureBoot,
  };
  const stack: ConfigLayer[] = [layers.defaults, ...profiles, nodeLayer];

  let image = layers.defaultImage;
  const labels: Record<string, string> = {};
  let taints: string[] = [];
  let join = true;
  let secureBoot: SecureBootSetting = false;
  const kernelArgs: string[] = [];
  const vars = new Map<string, string>();
  for (const layer of stack) {
    if (layer.image) image = layer.image;
    Object.assign(labels, layer.labels ?? {});
    if (layer.taints) taints = [...layer.taints];
    if (layer.join !== undefined) join = layer.join;
    if (layer.secureBoot !== undefined) secureBoot = layer.secureBoot;
    if (layer.kernelArgs) kernelArgs.push(layer.kernelArgs);
    // Within a layer the imported file comes first and the inline lts overrides it.
    if (layer.ltsFile) {
      for (const [key, value] of evaluateLtsConf(layer.ltsFile.parsed, { hostname: node.hostname, ip: node.ip, mac: node.mac }))
        vars.set(key, value);
    }
    if (layer.lts) applyLts(vars, layer.lts);
  }
  // The inventory names the node: an lts HOSTNAME cannot rename it behind the DHCP and join records.
  vars.set('HOSTNAME', node.hostname);
  const lts: Record<string, string> = {};
  for (const key of [...vars.keys()].sort()) lts[key] = vars.get(key) as string;
  const ltsOrder = Object.fromEntries(
    LTS_FAMILIES.map((family) => [family, versionSorted([...vars.keys()].filter((k) => k.startsWith(`${family}_`)))]),
  ) as Record<LtsFamily, string[]>;
  return {
    ...node,
    arch: inferArch(node),
    image,
    profiles: profiles.map((p) => p.name),
    labels,
    taints,
    lts,
    ltsOrder,
    join,
    kernelArgs: kernelArgs.join(' '),
    toRam: ltsTrue(vars.get('NBD_TO_RAM')) || ltsTrue(vars.get('LTSP_NBD_TO_RAM')) || ltsTrue(vars.get('IMAGE_TO_RAM')),
    secureBoot,
    origin,
  };
}
