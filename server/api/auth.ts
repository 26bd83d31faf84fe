// API authentication: mutations need `Authorization: Bearer <api token>`, and
// so do reads unless api.protectReads is false (node MACs, addresses and lts
// contents are not for anonymous readers). Without a configured token, what
// needs one is refused outright rather than left open.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface ApiAuthSettings {
  token: string | undefined;
  protectReads: boolean;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer (\S+)$/i.exec(header ?? '')?.[1];
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function apiAuthHook(settings: ApiAuthSettings) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const isRead = READ_METHODS.has(req.method);
    if (isRead && !settings.protectReads) return;
    if (!settings.token) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'no API token is configured: set api.token in the configuration or BOOTFARM_API_TOKEN' });
      return;
    }
    if (!bearerMatches(req.headers.authorization, settings.token)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: `${isRead ? 'reads' : 'changes'} need Authorization: Bearer <api token>` });
    }
  };
}
