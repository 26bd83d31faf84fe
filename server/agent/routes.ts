// What a booting node's agent talks to (docs/node-contract.md §3). Every route
// answers only the address that holds the node's lease (or its configured or
// observed address) and, once the node's boot script was served, only the
// address it went to. /config needs the boot's one-time nonce (its kernel
// command line) or, later, the secret it returned; /join and /report the secret.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Inventory } from '../inventory/inventory.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { AgentError, type BootSessions, type PresentedCredentials, type ReportStatus } from '../join/boot-sessions.js';
import type { ResolvedConfig } from '../config/types.js';
import { bootContext } from '../boot/node-context.js';
import { shellQuote, type TemplateSet } from '../config/templates.js';
import { joinContext, renderJoinConfiguration } from '../kube/join-config.js';
import { MacParams, ReportSchema } from '../api/schemas.js';
import type { Metrics } from '../metrics.js';
import { RateLimiter } from '../util/rate-limited-log.js';

export interface AgentDeps {
  config: ResolvedConfig;
  inventory: Inventory;
  sessions: BootSessions;
  templates: TemplateSet;
  logger: Logger;
  metrics: Metrics;
}

/** The node named in the path, if the request comes from that node's address. */
function callerNode(req: FastifyRequest, deps: AgentDeps): EffectiveNode {
  const { mac } = req.params as { mac: string };
  const node = deps.inventory.byMac(mac);
  if (!node) throw new AgentError(404, `no node with MAC ${mac}`);
  // Once this boot's script was served, the address it went to is the node's,
  // whatever a DHCP REQUEST asserted since.
  const path = req.url.split('?')[0] ?? '';
  const isNodeAddress = deps.inventory.isNodeAddress(node.mac, req.ip);
  if (deps.sessions.admitBoundAddress(node, req.ip, path, presentedCredentials(req), isNodeAddress)) return node;
  if (!isNodeAddress) {
    deps.sessions.noteForeignCredential(node, req.ip, path, presentedCredentials(req));
    const limit = refusalLog.take(Date.now());
    if (limit.log)
      deps.logger.warn(
        { node: node.hostname, mac: node.mac, client: req.ip, path, suppressedSinceLast: limit.suppressed },
        "agent request from an address that is not the node's: refused",
      );
    throw new AgentError(403, `${req.ip} is not the address of ${node.hostname}`);
  }
  return node;
}

/** Refusals of strangers are logged at a bounded rate: an attacker's loop cannot flood the log (they are all counted). */
const refusalLog = new RateLimiter(10, 60_000);

/** The header the agent sends the nonce from its kernel command line in (imagebuild/agent/lib.sh). */
const NONCE_HEADER = 'x-bootfarm-nonce';

function presentedCredentials(req: FastifyRequest): PresentedCredentials {
  const nonce = req.headers[NONCE_HEADER];
  return { nonce: typeof nonce === 'string' ? nonce : undefined, authorization: req.headers.authorization };
}

async function answerError(reply: FastifyReply, err: unknown): Promise<void> {
  if (err instanceof AgentError) {
    // Waiting for admission (approve, tpm): the agent asks again.
    if (err.status === 423) void reply.header('retry-after', '5');
    await reply.code(err.status).type('application/json').send({ error: err.name, message: err.message });
    return;
  }
  throw err;
}

/** The node's lts.conf plus this boot's identity and secret, as shell assignments. */
function agentConfigText(
  node: EffectiveNode,
  deps: Pick<AgentDeps, 'config' | 'templates'>,
  boot: { bootId: string; secret: string; join: boolean },
): string {
  const lts = deps.templates.render('lts.conf', bootContext(node, deps.config));
  const http = `http://${deps.config.server.address}:${deps.config.http.port}`;
  const lines = [
    `BOOTFARM_BOOT_ID=${shellQuote(boot.bootId)}`,
    `BOOTFARM_SECRET=${shellQuote(boot.secret)}`,
    `BOOTFARM_JOIN=${boot.join ? "'true'" : "'false'"}`,
    // How the join is admitted (imagebuild/agent/agent: tpm runs tpm-attest first).
    `BOOTFARM_ADMISSION=${shellQuote(deps.config.kubernetes?.admission ?? 'auto')}`,
    `BOOTFARM_REPORT_URL=${shellQuote(`${http}/agent/v1/${node.mac}/report`)}`,
    `BOOTFARM_JOIN_URL=${shellQuote(`${http}/agent/v1/${node.mac}/join`)}`,
  ];
  return `${lts.endsWith('\n') ? lts : `${lts}\n`}${lines.join('\n')}\n`;
}

export function registerAgentRoutes(app: FastifyInstance, deps: AgentDeps): void {
  app.register(
    async (agent) => {
      agent.get(
        '/:mac/config',
        {
          schema: {
            summary:
              "The node's configuration (shell assignments) and this boot's phone-home secret, for the boot's one-time nonce (header x-bootfarm-nonce) or the secret itself",
            tags: ['agent'],
            params: MacParams,
          },
        },
        async (req, reply) => {
          try {
            const node = callerNode(req, deps);
            const { session, secret } = await deps.sessions.openConfig(node, presentedCredentials(req), req.ip);
            const join = deps.config.kubernetes !== undefined && node.join && node.origin !== 'unknown';
            await reply
              .type('text/plain; charset=utf-8')
              .header('cache-control', 'no-store')
              .send(agentConfigText(node, deps, { bootId: session.bootId, secret, join }));
          } catch (err) {
            await answerError(reply, err);
          }
        },
      );

      agent.get(
        '/:mac/join',
        {
          schema: {
            summary: 'The kubeadm JoinConfiguration with a token minted for this node; once per boot',
            tags: ['agent'],
            params: MacParams,
          },
        },
        async (req, reply) => {
          try {
            const node = callerNode(req, deps);
            const token = await deps.sessions.takeJoinToken(node, req.headers.authorization);
            const kube = deps.config.kubernetes;
            if (!kube) throw new AgentError(409, 'no kubernetes section is configured');
            const text = renderJoinConfiguration(deps.templates, joinContext(node, kube, token.token));
            await reply.type('application/yaml').header('cache-control', 'no-store').send(text);
          } catch (err) {
            await answerError(reply, err);
          }
        },
      );

      agent.post(
        '/:mac/report',
        {
          schema: { summary: 'A boot step the node reports (phone-home)', tags: ['agent'], params: MacParams, body: ReportSchema },
        },
        async (req, reply) => {
          try {
            const node = callerNode(req, deps);
            const body = req.body as { step: string; status: ReportStatus; detail?: string };
            await deps.sessions.report(node, req.headers.authorization, body.step, body.status, body.detail);
            await reply.code(204).send();
          } catch (err) {
            await answerError(reply, err);
          }
        },
      );
    },
    { prefix: '/agent/v1' },
  );
}
