// The HTTP API (/api/v1): nodes, discovered machines, leases, profiles and each
// node's boot timeline. Thin: every handler calls the inventory or the store.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { Inventory, NodeInput } from '../inventory/inventory.js';
import { InventoryError } from '../inventory/inventory.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { Store } from '../store/store.js';
import { AgentError, type BootSessions } from '../join/boot-sessions.js';
import type { ResolvedConfig } from '../config/types.js';
import { apiAuthHook } from './auth.js';
import {
  DiscoveredView,
  EnrolSchema,
  ErrorView,
  LeaseView,
  MacParams,
  NodeEventView,
  NodeInputSchema,
  NodeView,
  ProfileView,
  type NodeViewT,
} from './schemas.js';
import { normalizeMac } from '../util/mac.js';

export interface ApiDeps {
  config: ResolvedConfig;
  inventory: Inventory;
  store: Store;
  sessions: BootSessions;
}

const iso = (ms: number) => new Date(ms).toISOString();

function nodeView(node: EffectiveNode, deps: ApiDeps): NodeViewT {
  const now = Date.now();
  const lease = deps.store.leases().find((l) => l.mac === node.mac && l.state === 'bound' && l.expiresAt > now);
  const session = deps.sessions.state(node.mac);
  const events = deps.store.events(node.mac);
  const last = events[events.length - 1];
  return {
    mac: node.mac,
    hostname: node.hostname,
    arch: node.arch,
    ip: node.ip,
    piSerial: node.piSerial,
    piModel: node.piModel,
    image: node.image,
    profiles: node.profiles,
    labels: node.labels,
    taints: node.taints,
    join: node.join,
    origin: node.origin,
    lts: node.lts,
    lease: lease
      ? { ip: lease.ip, mac: lease.mac, state: lease.state, expiresAt: iso(lease.expiresAt), hostname: lease.hostname }
      : undefined,
    boot: session
      ? {
          bootId: session.bootId,
          state: session.state,
          startedAt: iso(session.startedAt),
          joinServed: session.joinServed,
          tokenId: session.tokenId,
          approval:
            deps.config.kubernetes?.admission !== 'approve' || session.nonceUsedAt === undefined
              ? undefined
              : session.approvedAt !== undefined
                ? 'approved'
                : session.state === 'booting'
                  ? 'pending'
                  : undefined,
        }
      : undefined,
    lastEvent: last ? { at: last.at, type: last.type } : undefined,
  };
}

async function fail(reply: FastifyReply, err: unknown): Promise<void> {
  if (err instanceof InventoryError) {
    await reply
      .code(err.status)
      .send({ error: err.status === 404 ? 'not found' : err.status === 409 ? 'conflict' : 'bad request', message: err.message });
    return;
  }
  throw err;
}

const errors = { 400: ErrorView, 401: ErrorView, 404: ErrorView, 409: ErrorView };

export function registerApiRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { inventory, store } = deps;
  app.register(
    async (api) => {
      api.addHook('onRequest', apiAuthHook(deps.config.api));

      api.get(
        '/nodes',
        {
          schema: {
            summary: 'List nodes with their effective configuration, lease and boot state',
            tags: ['nodes'],
            response: { 200: Type.Object({ nodes: Type.Array(NodeView) }) },
          },
        },
        async () => ({ nodes: inventory.nodes().map((n) => nodeView(n, deps)) }),
      );

      api.post(
        '/nodes',
        {
          schema: { summary: 'Add a node', tags: ['nodes'], body: NodeInputSchema, response: { 201: NodeView, ...errors } },
        },
        async (req, reply) => {
          try {
            const node = await inventory.create(req.body as NodeInput);
            await reply.code(201).send(nodeView(node, deps));
          } catch (err) {
            await fail(reply, err);
          }
        },
      );

      api.get(
        '/nodes/:mac',
        {
          schema: { summary: 'One node', tags: ['nodes'], params: MacParams, response: { 200: NodeView, ...errors } },
        },
        async (req, reply) => {
          const node = inventory.knownByMac((req.params as { mac: string }).mac);
          if (!node)
            return reply
              .code(404)
              .send({ error: 'not found', message: `no node with MAC ${normalizeMac((req.params as { mac: string }).mac)}` });
          return nodeView(node, deps);
        },
      );

      api.put(
        '/nodes/:mac',
        {
          schema: {
            summary: 'Replace a node added through the API',
            tags: ['nodes'],
            params: MacParams,
            body: NodeInputSchema,
            response: { 200: NodeView, ...errors },
          },
        },
        async (req, reply) => {
          try {
            const node = await inventory.update((req.params as { mac: string }).mac, req.body as NodeInput);
            await reply.send(nodeView(node, deps));
          } catch (err) {
            await fail(reply, err);
          }
        },
      );

      api.delete(
        '/nodes/:mac',
        {
          schema: {
            summary: 'Remove a node added through the API',
            tags: ['nodes'],
            params: MacParams,
            response: { 204: Type.Null(), ...errors },
          },
        },
        async (req, reply) => {
          try {
            await inventory.remove((req.params as { mac: string }).mac);
            await reply.code(204).send();
          } catch (err) {
            await fail(reply, err);
          }
        },
      );

      api.get(
        '/nodes/:mac/events',
        {
          schema: {
            summary: "A node's boot timeline: DHCP, files fetched, root attached, agent steps, booted, joined, failed",
            tags: ['nodes'],
            params: MacParams,
            response: { 200: Type.Object({ events: Type.Array(NodeEventView) }), ...errors },
          },
        },
        async (req, reply) => {
          const node = inventory.knownByMac((req.params as { mac: string }).mac);
          if (!node)
            return reply
              .code(404)
              .send({ error: 'not found', message: `no node with MAC ${normalizeMac((req.params as { mac: string }).mac)}` });
          return { events: store.events(node.mac).map((e) => ({ at: e.at, type: e.type, detail: e.detail })) };
        },
      );

      api.post(
        '/nodes/:mac/approve',
        {
          schema: {
            summary: "Approve the node's boot in flight (kubernetes.admission: approve): its join token is minted and its join served",
            tags: ['nodes'],
            params: MacParams,
            response: { 200: NodeView, ...errors },
          },
        },
        async (req, reply) => {
          const node = inventory.knownByMac((req.params as { mac: string }).mac);
          if (!node)
            return reply
              .code(404)
              .send({ error: 'not found', message: `no node with MAC ${normalizeMac((req.params as { mac: string }).mac)}` });
          if (deps.config.kubernetes?.admission !== 'approve')
            return reply.code(409).send({
              error: 'conflict',
              message: `kubernetes.admission is ${deps.config.kubernetes?.admission ?? 'not configured'}, not approve: boots need no approval`,
            });
          try {
            await deps.sessions.approve(node, `api ${req.ip}`);
          } catch (err) {
            if (err instanceof AgentError) return reply.code(409).send({ error: 'conflict', message: err.message });
            throw err;
          }
          return nodeView(node, deps);
        },
      );

      api.get(
        '/discovered',
        {
          schema: {
            summary: 'Machines that asked to boot but are in no inventory (unknownNodes: discover)',
            tags: ['discovered'],
            response: { 200: Type.Object({ machines: Type.Array(DiscoveredView) }) },
          },
        },
        async () => ({ machines: inventory.discovered() }),
      );

      api.post(
        '/discovered/:mac/enrol',
        {
          schema: {
            summary: 'Turn a discovered machine into a node',
            tags: ['discovered'],
            params: MacParams,
            body: EnrolSchema,
            response: { 201: NodeView, ...errors },
          },
        },
        async (req, reply) => {
          try {
            const node = await inventory.enrol((req.params as { mac: string }).mac, req.body as Omit<NodeInput, 'mac'>);
            await reply.code(201).send(nodeView(node, deps));
          } catch (err) {
            await fail(reply, err);
          }
        },
      );

      api.get(
        '/leases',
        {
          schema: {
            summary: 'DHCP leases (full mode)',
            tags: ['leases'],
            response: { 200: Type.Object({ leases: Type.Array(LeaseView) }) },
          },
        },
        async () => ({
          leases: store.leases().map((l) => ({ ip: l.ip, mac: l.mac, state: l.state, expiresAt: iso(l.expiresAt), hostname: l.hostname })),
        }),
      );

      api.get(
        '/profiles',
        {
          schema: {
            summary: 'Profiles from the configuration',
            tags: ['profiles'],
            response: { 200: Type.Object({ profiles: Type.Array(ProfileView) }) },
          },
        },
        async () => ({
          profiles: deps.config.layers.profiles.map((p) => ({
            name: p.name,
            match: p.match,
            image: p.image,
            labels: p.labels,
            join: p.join,
          })),
        }),
      );
    },
    { prefix: '/api/v1' },
  );
}
