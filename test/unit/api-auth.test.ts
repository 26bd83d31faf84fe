// API authentication through fastify's own request cycle (inject): mutations
// need the token, reads too when protectReads is set, and no token configured
// means no mutations at all.
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { apiAuthHook, type ApiAuthSettings } from '../../server/api/auth.js';

async function app(settings: ApiAuthSettings) {
  const f = Fastify();
  f.addHook('onRequest', apiAuthHook(settings));
  f.get('/thing', async () => ({ ok: true }));
  f.post('/thing', async () => ({ ok: true }));
  await f.ready();
  return f;
}

describe('API bearer authentication', () => {
  const token = 'a-long-enough-api-token';
  it('open reads, protected changes', async () => {
    const f = await app({ token, protectReads: false });
    expect((await f.inject({ method: 'GET', url: '/thing' })).statusCode).toBe(200);
    expect((await f.inject({ method: 'POST', url: '/thing' })).statusCode).toBe(401);
    expect((await f.inject({ method: 'POST', url: '/thing', headers: { authorization: `Bearer ${token}x` } })).statusCode).toBe(401);
    expect((await f.inject({ method: 'POST', url: '/thing', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
  });
  it('protectReads puts reads behind the token too', async () => {
    const f = await app({ token, protectReads: true });
    const r = await f.inject({ method: 'GET', url: '/thing' });
    expect(r.statusCode).toBe(401);
    expect(r.json()).toEqual({ error: 'unauthorized', message: 'reads need Authorization: Bearer <api token>' });
    expect((await f.inject({ method: 'GET', url: '/thing', headers: { authorization: `bearer ${token}` } })).statusCode).toBe(200);
  });
  it('without a configured token, changes are refused and say how to configure one', async () => {
    const f = await app({ token: undefined, protectReads: false });
    const r = await f.inject({ method: 'POST', url: '/thing', headers: { authorization: 'Bearer anything-at-all-here' } });
    expect(r.statusCode).toBe(401);
    expect(r.json<{ message: string }>().message).toBe(
      'no API token is configured: set api.token in the configuration or BOOTFARM_API_TOKEN',
    );
  });
});
