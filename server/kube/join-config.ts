// The kubeadm JoinConfiguration a node gets: discovery by its own bootstrap
// token pinned to the cluster CA, its name, labels and taints. Rendered from
// templates/join-configuration.yaml.hbs, then parsed back as a guard, so an
// overridden template that produces broken YAML or drops the pin fails loudly.
import { parse } from 'yaml';
import type { ResolvedKubernetes } from '../config/types.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { labelList } from '../boot/node-context.js';
import type { JoinContext, TemplateSet } from '../config/templates.js';

function parseTaint(text: string): { key: string; value: string; effect: string } {
  const colon = text.lastIndexOf(':');
  const [key, value] = text.slice(0, colon).split('=', 2) as [string, string | undefined];
  return { key, value: value ?? '', effect: text.slice(colon + 1) };
}

export function joinContext(node: EffectiveNode, kube: ResolvedKubernetes, token: string): JoinContext {
  // kubelet may set kubernetes.io/arch on itself (NodeRestriction allows it); the rest are the operator's.
  const labels = { ...node.labels, 'kubernetes.io/arch': node.arch === 'armhf' ? 'arm' : node.arch };
  return {
    node: { hostname: node.hostname, mac: node.mac },
    join: {
      apiVersion: kube.kubeadmApiVersion,
      v1beta4: kube.kubeadmApiVersion.endsWith('v1beta4'),
      apiServer: kube.apiServer,
      token,
      caCertHashes: kube.caCertHashes,
      nodeLabels: labelList(labels),
      taints: node.taints.map(parseTaint),
    },
  };
}

interface ParsedJoin {
  apiVersion?: unknown;
  kind?: unknown;
  discovery?: { bootstrapToken?: { token?: unknown; caCertHashes?: unknown } };
}

export function renderJoinConfiguration(templates: TemplateSet, context: JoinContext): string {
  const text = templates.renderJoin(context);
  let doc: ParsedJoin;
  try {
    doc = parse(text) as ParsedJoin;
  } catch (err) {
    throw new Error(`the join configuration template produced invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const discovery = doc?.discovery?.bootstrapToken;
  if (
    doc?.kind !== 'JoinConfiguration' ||
    discovery?.token !== context.join.token ||
    !Array.isArray(discovery.caCertHashes) ||
    discovery.caCertHashes.length === 0
  ) {
    throw new Error(
      'the join configuration template must produce a JoinConfiguration with discovery.bootstrapToken.token and caCertHashes',
    );
  }
  return text;
}
