// The agent's side of kubernetes.admission: tpm (server/join/tpm-admission.ts):
// POST /agent/v1/:mac/tpm/challenge and /tpm/answer. Both answer only within an
// open boot, from the address that boot is bound to, with the boot's phone-home
// secret, like the join itself (server/agent/routes.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Inventory } from '../inventory/inventory.js';
import type { EffectiveNode } from '../inventory/effective.js';
import { AgentError, type BootSessions } from '../join/boot-sessions.js';
import { TpmRefusal, type TpmAdmission } from '../join/tpm-admission.js';
import { MacParams } from '../api/schemas.js';
import type { BootSessionRecord } from '../store/store.js';

export interface TpmRouteDeps {
  inventory: Inventory;
  sessions: BootSessions;
  tpm: TpmAdmission;
}

const Base64 = (what: string, maxLength: number) =>
  Type.String({ pattern: '^[A-Za-z0-9+/]+={0,2}$', maxLength, expected: `${what} in base64` });

const ChallengeSchema = Type.Object(
  {
    akPublic: Base64("the AK's TPM2B_PUBLIC (tpm2_createak -u)", 2048),
    akName: Type.Optional(Type.String({ pattern: '^([0-9a-f]{2}){2,66}$', expected: "the AK's Name in hex (tpm2_createak -n)" })),
    ekPublic: Type.Optional(Base64("the EK's TPM2B_PUBLIC (tpm2_createek -u)", 2048)),
  },
  { additionalProperties: false },
);

const AnswerSchema = Type.Object(
  {
    secret: Base64('the secret tpm2_activatecredential recovered', 256),
  },
  { additionalProperties: false },
);

/** The node, and its open boot, if the request comes from the address the boot is bound to and carries the boot's secret. */
function callerBoot(req: FastifyRequest, deps: TpmRouteDeps): { node: EffectiveNode; session: BootSessionRecord } {
  const { mac } = req.params as { mac: string };
  const node = deps.inventory.byMac(mac);
  if (!node) throw new AgentError(404, `no node with MAC ${mac}`);
  if (!deps.sessions.admitBoundAddress(node, req.ip, req.url.split('?')[0] ?? ''))
    throw new AgentError(401, `no boot of ${node.hostname} is open from ${req.ip}`);
  const session = deps.sessions.authenticate(node.mac, req.headers.authorization);
  if (session.state !== 'booting') throw new AgentError(410, `this boot is over (${session.state})`);
  return { node, session };
}

async function answerError(reply: FastifyReply, err: unknown): Promise<void> {
  if (err instanceof TpmRefusal) {
    await reply.code(err.status).type('application/json').send({ error: err.name, reason: err.reason, message: err.message });
  } else if (err instanceof AgentError) {
    await reply.code(err.status).type('application/json').send({ error: err.name, message: err.message });
  } else {
    throw err;
  }
}

export function registerTpmRoutes(app: FastifyInstance, deps: TpmRouteDeps): void {
  app.register(
    async (agent) => {
      agent.post(
        '/:mac/tpm/challenge',
        {
          bodyLimit: 16 * 1024,
          schema: {
            summary:
              "kubernetes.admission: tpm: a credential sealed to the node's registered EK, bound to the agent's AK (tpm2_activatecredential -i)",
            tags: ['agent'],
            params: MacParams,
            body: ChallengeSchema,
          },
        },
        async (req, reply) => {
          try {
            const { node, session } = callerBoot(req, deps);
            const body = req.body as { akPublic: string; akName?: string; ekPublic?: string };
            const made = deps.tpm.challenge(node, session.bootId, {
              akPublic: Buffer.from(body.akPublic, 'base64'),
              akName: body.akName === undefined ? undefined : Buffer.from(body.akName, 'hex'),
              ekPublic: body.ekPublic === undefined ? undefined : Buffer.from(body.ekPublic, 'base64'),
            });
            await reply.header('cache-control', 'no-store').send({
              credential: made.credential.toString('base64'),
              ekName: made.ekName.toString('hex'),
              akName: made.akName.toString('hex'),
              ekType: made.ekType,
            });
          } catch (err) {
            await answerError(reply, err);
          }
        },
      );

      agent.post(
        '/:mac/tpm/answer',
        {
          bodyLimit: 4 * 1024,
          schema: {
            summary: 'kubernetes.admission: tpm: the secret the TPM recovered; attests this boot',
            tags: ['agent'],
            params: MacParams,
            body: AnswerSchema,
          },
        },
        async (req, reply) => {
          try {
            const { node, session } = callerBoot(req, deps);
            await deps.tpm.answer(node, session.bootId, Buffer.from((req.body as { secret: string }).secret, 'base64'));
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
