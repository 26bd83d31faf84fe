// More token and session decisions of server/join/boot-sessions.ts (the
// survivors of the first mutation run), on test/lib/boot-sessions-harness.ts
// like boot-sessions.test.ts, kept in a file of their own so that the mutants
// boot-sessions.test.ts kills keep their recorded results (Stryker re-tests
// every mutant a changed test file killed). The same paths over HTTP with a
// real agent: test/integration/join.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { BootSessions } from '../../server/join/boot-sessions.js';
import {
  TEST_TIMEOUT_MS,
  MAC,
  ADDRESS,
  OTHER,
  T0,
  node,
  sha256,
  ScriptedMinter,
  refusal,
  useBootSessionsHarness,
} from '../lib/boot-sessions-harness.js';

describe('boot sessions: more decisions', () => {
  const h = useBootSessionsHarness();

  describe('what the timeline and the log say', () => {
    it(
      'a superseded or expired boot puts no end event on the timeline (only joined, booted, failed and revoked do)',
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        h.clock += 900_000;
        await h.sessions.sweep();
        expect(h.record().state).toBe('expired');
        await h.openBoot();
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.store.events(MAC).map((e) => e.type)).not.toContain('expired');
        expect(h.store.events(MAC).map((e) => e.type)).not.toContain('superseded');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a token without an expiry set by bootfarm (a static one) is logged as the cluster's to expire",
      async () => {
        const staticMinter = new ScriptedMinter('static', () => h.clock);
        staticMinter.mint = (n, ttlSeconds) => {
          staticMinter.mints.push({ hostname: n.hostname, ttlSeconds });
          return Promise.resolve({ id: 'static', secret: 'abcdefghijklmnop', token: 'static.abcdefghijklmnop', expiresAt: undefined });
        };
        h.sessions = new BootSessions(h.deps({ minter: staticMinter }));
        const secret = await h.openBoot();
        expect((await h.sessions.takeJoinToken(node(), h.bearer(secret))).id).toBe('static');
        expect(h.record()).toMatchObject({ tokenId: undefined, tokenExpiresAt: undefined });
        expect(h.logged('bootstrap token minted')).toMatchObject([
          { tokenId: 'static', expiresAt: 'set by the cluster', minter: 'static' },
        ]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot that ends while its token is minted, and the delete of that token fails: the join still gets 410',
      async () => {
        let release = () => {};
        h.minter.gate = new Promise((resolve) => (release = resolve));
        h.minter.failRevoke = true;
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        const join = refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        await vi.waitFor(() => expect(h.record().joinServed).toBe(true));
        const next = h.sessions.issueBootNonce(node(), ADDRESS);
        await vi.waitFor(() => expect(h.record().state).toBe('superseded'));
        release();
        await next;
        expect((await join).status).toBe(410);
        expect(h.record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a new boot of one node leaves another node's alarms as they were",
      async () => {
        const otherNode = node({ mac: '52:54:00:5e:00:02', hostname: 'n2' });
        await h.sessions.issueBootNonce(otherNode, OTHER);
        const otherSecret = (
          await h.sessions.openConfig(
            otherNode,
            { nonce: await h.sessions.issueBootNonce(otherNode, OTHER), authorization: undefined },
            OTHER,
          )
        ).secret;
        const wrong = { nonce: undefined, authorization: h.bearer(`${otherSecret}x`) };
        await refusal(() => h.sessions.openConfig(otherNode, wrong, OTHER));
        await h.sessions.issueBootNonce(node(), ADDRESS);
        await refusal(() => h.sessions.openConfig(otherNode, wrong, OTHER));
        expect(h.store.events(otherNode.mac).filter((e) => e.type === 'security.secret-mismatch')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('more refusals and races', () => {
    it(
      'a boot kept from before nonces, not yet superseded by a start: the fetch is refused as missing, not as a boot that is over',
      async () => {
        await h.store.putSession({
          mac: MAC,
          bootId: 'old',
          startedAt: T0,
          openedAt: T0,
          state: 'booting',
          joinServed: false,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(await h.refused('missing')).toBe(1);
        expect(await h.refused('boot-over')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a first fetch that carries the nonce and some Authorization header: the nonce decides',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await h.sessions.openConfig(node(), { nonce, authorization: h.bearer('s'.repeat(32)) }, ADDRESS);
        expect(h.record()).toMatchObject({ secretDigest: sha256(secret), state: 'booting' });
        expect(await h.refused('secret-mismatch')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token minted for a boot that another instance superseded meanwhile is deleted, never written into the new boot',
      async () => {
        let release = () => {};
        h.minter.gate = new Promise((resolve) => (release = resolve));
        await h.openBoot();
        // Over the same state: the node's next boot opens from the same address.
        await new BootSessions(h.deps()).issueBootNonce(node(), ADDRESS);
        const next = h.record();
        expect(next.state).toBe('booting');
        release();
        await vi.waitFor(() => expect(h.minter.revoked).toEqual(['tok000']));
        expect(h.record()).toEqual(next);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart with no token minter configured any more leaves a recorded token id alone and starts',
      async () => {
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        const withoutMinter = new BootSessions(h.deps({ minter: undefined, kubernetes: undefined }));
        await withoutMinter.start();
        await withoutMinter.stop();
        expect(h.record().tokenId).toBe('tok000');
        expect(h.minter.revoked).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot superseded with its token: the token is deleted naming the new boot as why; only a revoked boot logs 'boot revoked'",
      async () => {
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.events('token.revoked').map((e) => e.detail)).toEqual([
          { tokenId: 'tok000', why: 'a new boot began (its boot script was served again)' },
        ]);
        expect(h.logged('boot revoked')).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a token deleted while the node's next boot records its own: the new boot's token id is kept",
      async () => {
        const secret = await h.openBoot();
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        let release = () => {};
        const held = new Promise<void>((resolve) => (release = resolve));
        const revoke = h.minter.revoke.bind(h.minter);
        h.minter.revoke = async (tokenId) => {
          await held;
          return revoke(tokenId);
        };
        const reported = h.sessions.report(node(), h.bearer(secret), 'join', 'ok', undefined);
        await vi.waitFor(() => expect(h.record().state).toBe('joined'));
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok001'));
        release();
        await reported;
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.record().tokenId).toBe('tok001');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart deletes the token of a boot that is over even when its join was served',
      async () => {
        const secret = await h.openBoot();
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        await h.store.putSession({ ...h.record(), state: 'failed' });
        const restarted = new BootSessions(h.deps());
        await restarted.start();
        await restarted.stop();
        expect(h.minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart leaves a boot that is over as it was, even one from before nonces',
      async () => {
        await h.store.putSession({
          mac: MAC,
          bootId: 'old',
          startedAt: T0,
          openedAt: T0,
          state: 'joined',
          joinServed: true,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        const restarted = new BootSessions(h.deps());
        await restarted.start();
        await restarted.stop();
        expect(h.record().state).toBe('joined');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a failed delete of a finished boot's token is retried by the sweep after the token's TTL too",
      async () => {
        const secret = await h.openBoot();
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        h.minter.failRevoke = true;
        await h.sessions.report(node(), h.bearer(secret), 'join', 'ok', undefined);
        h.minter.failRevoke = false;
        h.clock = (h.record().tokenExpiresAt ?? 0) + 1;
        await h.sessions.sweep();
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.record()).toMatchObject({ state: 'joined', tokenId: undefined });
      },
      TEST_TIMEOUT_MS,
    );
  });
});
