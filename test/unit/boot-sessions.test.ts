// The token and session decisions of server/join/boot-sessions.ts, in-process
// over the real FileStore with a scripted token minter and a clock the test
// moves: the one-time nonce and its handout, the one-time join token, expiry,
// revocation, what a restart keeps, and every refusal (its status, its count in
// bootfarm_agent_credential_refused_total and its alarm on the timeline). The
// same paths over HTTP with a real agent: test/integration/join.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { BootSessions, type BootSessionDeps } from '../../server/join/boot-sessions.js';
import { FileStore } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';
import {
  TEST_TIMEOUT_MS,
  MAC,
  ADDRESS,
  OTHER,
  T0,
  TTL_SECONDS,
  node,
  kubernetes,
  sha256,
  ScriptedMinter,
  refusal,
  useBootSessionsHarness,
} from '../lib/boot-sessions-harness.js';

describe('boot sessions: nonce, secret, join token', () => {
  const h = useBootSessionsHarness();

  describe('the boot script opens a boot bound to its address', () => {
    it(
      'a first script: a fresh nonce whose digest only is kept, the boot bound to the address, one boot in flight',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
        const s = h.record();
        expect(s).toMatchObject({
          state: 'booting',
          address: ADDRESS,
          nonceDigest: sha256(nonce),
          nonceUsedAt: undefined,
          secretDigest: undefined,
          joinServed: false,
          tokenId: undefined,
          openedAt: T0,
          startedAt: T0,
        });
        expect(s.bootId).toMatch(/^[0-9a-f]{16}$/);
        expect(JSON.stringify(h.store.sessions())).not.toContain(nonce);
        expect(await h.inFlight()).toBe(1);
        expect(h.events('boot.session')).toEqual([
          { at: new Date(T0).toISOString(), mac: MAC, type: 'boot.session', detail: { bootId: s.bootId, join: true, address: ADDRESS } },
        ]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the boot says it will not join when the node does not, or there is no cluster, no minter, or the node is unknown',
      async () => {
        let macs = 0;
        const joins = async (n: EffectiveNode, over: Partial<BootSessionDeps>) => {
          const mac = `52:54:00:5e:01:0${macs++}`;
          await new BootSessions(h.deps(over)).issueBootNonce({ ...n, mac }, ADDRESS);
          return h.store.events(mac).at(-1)?.detail?.join;
        };
        expect(await joins(node({ join: false }), {})).toBe(false);
        expect(await joins(node(), { kubernetes: undefined })).toBe(false);
        expect(await joins(node(), { minter: undefined })).toBe(false);
        expect(await joins(node({ origin: 'unknown' }), {})).toBe(false);
        expect(await joins(node({ origin: 'api' }), {})).toBe(true);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the script fetched again before the nonce is spent (a TFTP retry) gets the same nonce and the same boot',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = h.record();
        h.clock += 60_000;
        expect(await h.sessions.issueBootNonce(node(), ADDRESS)).toBe(nonce);
        expect(h.record()).toMatchObject({ bootId, nonceDigest: sha256(nonce), openedAt: T0 });
        expect(await h.inFlight()).toBe(1);
        expect(h.events('boot.session')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'after a restart lost the nonce, the script fetched again gets a new nonce for the same boot; the old one no longer opens it',
      async () => {
        const old = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = h.record();
        const restarted = new BootSessions(h.deps());
        const renewed = await restarted.issueBootNonce(node(), ADDRESS);
        expect(renewed).not.toBe(old);
        expect(h.record()).toMatchObject({ bootId, nonceDigest: sha256(renewed), state: 'booting' });
        // The renewed nonce is remembered: a second fetch gets it again.
        expect(await restarted.issueBootNonce(node(), ADDRESS)).toBe(renewed);
        const err = await refusal(() => restarted.openConfig(node(), { nonce: old, authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(h.record().state).toBe('revoked');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a script for another address while the boot is bound is refused (403), counted, and an alarm; the boot goes on',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const before = h.record();
        h.clock += 900_000 - 1;
        const err = await refusal(() => h.sessions.issueBootNonce(node(), OTHER));
        expect(err.status).toBe(403);
        expect(err.message).toBe('a boot of n1 bound to another address is under way');
        expect(h.record()).toEqual(before);
        expect(await h.mismatches()).toBe(1);
        expect(await h.refused('from-another-address')).toBe(1);
        expect(h.events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: before.bootId, from: OTHER, boundTo: ADDRESS, path: 'boot script' },
        ]);
        expect(h.logged('boot credential refused')).toMatchObject([
          { node: 'n1', mac: MAC, bootId: before.bootId, reason: 'from-another-address', from: OTHER },
        ]);
        // The node's own address still gets its nonce.
        expect(await h.sessions.issueBootNonce(node(), ADDRESS)).toBe(nonce);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      '900 s after the script, another address starts the next boot (the old one superseded)',
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        const first = h.record();
        h.clock += 900_000;
        const nonce = await h.sessions.issueBootNonce(node(), OTHER);
        const next = h.record();
        expect(next.bootId).not.toBe(first.bootId);
        expect(next).toMatchObject({ address: OTHER, nonceDigest: sha256(nonce), openedAt: h.clock, startedAt: h.clock, state: 'booting' });
        expect(await h.inFlight()).toBe(1);
        const durations = (await h.metrics.bootDuration.get()).values.filter((v) => v.metricName === 'bootfarm_boot_duration_seconds_sum');
        expect(durations).toMatchObject([{ labels: { outcome: 'superseded' }, value: 900 }]);
        expect(h.events('boot.session')).toHaveLength(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot whose token is valid stays bound past 900 s; once the token's expiry passes another address may boot",
      async () => {
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        h.clock += 1_000_000;
        expect((await refusal(() => h.sessions.issueBootNonce(node(), OTHER))).status).toBe(403);
        h.clock = T0 + TTL_SECONDS * 1000;
        await h.sessions.issueBootNonce(node(), OTHER);
        expect(h.record().address).toBe(OTHER);
        expect(h.minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a script served again to the boot's address after its nonce was spent is the node's next boot",
      async () => {
        await h.openBoot();
        const first = h.record();
        h.clock += 5_000;
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.record().bootId).not.toBe(first.bootId);
        expect(h.record()).toMatchObject({ nonceDigest: sha256(nonce), nonceUsedAt: undefined, state: 'booting' });
        expect(await h.inFlight()).toBe(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "a boot's duration counts from its first DISCOVER; a DISCOVER during the boot does not move the next boot's start",
      async () => {
        h.sessions.noteDiscover(node());
        h.clock += 10_000;
        h.sessions.noteDiscover(node());
        h.clock += 10_000;
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.record()).toMatchObject({ startedAt: T0, openedAt: T0 + 20_000 });
        // The start is used once: the next boot without a DISCOVER starts at its script.
        h.clock += 900_000;
        await h.sessions.issueBootNonce(node(), OTHER);
        expect(h.record().startedAt).toBe(h.clock);
        // A DISCOVER after the boot opened is the next boot's start...
        h.clock += 1_000;
        h.sessions.noteDiscover(node());
        const discoverAt = h.clock;
        h.clock += 1_000;
        h.sessions.noteDiscover(node());
        h.clock += 900_000;
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.record().startedAt).toBe(discoverAt);
        // ...and a DISCOVER noted before a boot that opened since (by another instance over the same state) is replaced.
        h.sessions.noteDiscover(node());
        h.clock += 900_000;
        await new BootSessions(h.deps()).issueBootNonce(node(), OTHER);
        h.clock += 1_000;
        h.sessions.noteDiscover(node());
        const replacedAt = h.clock;
        h.clock += 900_000;
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.record().startedAt).toBe(replacedAt);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the configuration fetch spends the nonce once', () => {
    it(
      'the nonce buys a secret (digest kept), rebinds the boot to the fetching address and mints the token',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        h.clock += 3_000;
        const { session, secret } = await h.sessions.openConfig(node(), { nonce, authorization: undefined }, OTHER);
        expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
        expect(session).toMatchObject({ nonceUsedAt: T0 + 3_000, secretDigest: sha256(secret), address: OTHER, state: 'booting' });
        expect(h.record()).toMatchObject({ bootId: session.bootId, nonceUsedAt: T0 + 3_000, secretDigest: sha256(secret), address: OTHER });
        expect(h.events('boot.nonce-spent').map((e) => e.detail)).toEqual([
          { bootId: session.bootId, address: OTHER, scriptAddress: ADDRESS },
        ]);
        expect(h.minter.mints).toEqual([{ hostname: 'n1', ttlSeconds: TTL_SECONDS }]);
        await vi.waitFor(() => expect(h.events('token.minted')).toHaveLength(1));
        expect(h.record()).toMatchObject({ tokenId: 'tok000', tokenExpiresAt: h.clock + TTL_SECONDS * 1000 });
        expect(await h.minted('ok')).toBe(1);
        expect(h.events('token.minted').map((e) => e.detail)).toEqual([{ tokenId: 'tok000' }]);
        expect(h.logged('bootstrap token minted')).toMatchObject([
          {
            node: 'n1',
            mac: MAC,
            tokenId: 'tok000',
            expiresAt: new Date(h.clock + TTL_SECONDS * 1000).toISOString(),
            minter: 'kubernetes-api',
          },
        ]);
        // The fetch from the script's own address names no script address.
        const again = await h.sessions.issueBootNonce(node(), OTHER);
        await h.sessions.openConfig(node(), { nonce: again, authorization: undefined }, OTHER);
        expect(h.events('boot.nonce-spent').at(-1)?.detail).toEqual({ bootId: h.record().bootId, address: OTHER });
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a node that does not join gets its secret and no token',
      async () => {
        await h.openBoot(h.sessions, node({ join: false }));
        expect(h.record().secretDigest).toBeDefined();
        expect(h.minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a later fetch with the secret gets the same boot back; a wrong secret is refused (401) and the boot goes on',
      async () => {
        const secret = await h.openBoot();
        const opened = h.record();
        h.clock += 1_000;
        const again = await h.sessions.openConfig(node(), { nonce: undefined, authorization: h.bearer(secret) }, ADDRESS);
        expect(again).toEqual({ session: opened, secret });
        const err = await refusal(() =>
          h.sessions.openConfig(node(), { nonce: undefined, authorization: h.bearer('x'.repeat(32)) }, ADDRESS),
        );
        expect([err.status, err.message]).toEqual([401, "the secret is not this boot's"]);
        expect(h.record().state).toBe('booting');
        expect(await h.refused('secret-mismatch')).toBe(1);
        expect(h.events('security.secret-mismatch')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a fetch with neither nonce nor secret is refused as missing, the boot goes on',
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce: undefined, authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "this boot's nonce (bootfarm.nonce on the kernel command line) is required"]);
        expect(await h.refused('missing')).toBe(1);
        expect(h.record().state).toBe('booting');
        expect(h.events().filter((e) => e.type.startsWith('security.'))).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a wrong nonce from the boot address revokes the boot (401, alarm, event with reason)',
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce: 'y'.repeat(32), authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "the nonce is not this boot's; the boot is revoked"]);
        expect(h.record().state).toBe('revoked');
        expect(await h.refused('nonce-mismatch')).toBe(1);
        expect(await h.inFlight()).toBe(0);
        expect(h.events('revoked').map((e) => e.detail)).toEqual([
          { bootId: h.record().bootId, seconds: 0, reason: "a wrong boot nonce was presented from the boot's own address" },
        ]);
        expect(h.logged('boot revoked')).toMatchObject([{ mac: MAC, bootId: h.record().bootId }]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the nonce presented a second time revokes the boot and its token',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        await h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect([err.status, err.message]).toEqual([401, "this boot's nonce was used already; the boot is revoked"]);
        expect(h.record()).toMatchObject({ state: 'revoked', tokenId: undefined });
        expect(await h.refused('nonce-replay')).toBe(1);
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.events('token.revoked').map((e) => e.detail)).toEqual([
          { tokenId: 'tok000', why: 'the boot nonce was presented a second time' },
        ]);
        // Once the boot is over, the nonce is a replay; anything else is a boot that is over.
        const replay = await refusal(() => h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect([replay.status, replay.message]).toEqual([401, "this boot's nonce was used already and the boot is over"]);
        expect(await h.refused('nonce-replay')).toBe(2);
        const over = await refusal(() => h.sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect([over.status, over.message]).toEqual([401, 'no boot of n1 is open: its boot script (with bootfarm.nonce) comes first']);
        expect(await h.refused('boot-over')).toBe(1);
        expect(await h.refused('missing')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'with no boot at all the fetch is refused as missing',
      async () => {
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce: 'z'.repeat(32), authorization: undefined }, ADDRESS));
        expect(err.status).toBe(401);
        expect(await h.refused('missing')).toBe(1);
        expect(await h.refused('boot-over')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot kept from before nonces (no digest) is superseded at start and opens nothing',
      async () => {
        await h.store.putSession({
          mac: MAC,
          bootId: 'old',
          secret: 'in-the-clear',
          startedAt: T0,
          openedAt: T0,
          state: 'booting',
          joinServed: false,
          tokenId: undefined,
          tokenExpiresAt: undefined,
        });
        await h.sessions.start();
        expect(h.record()).toMatchObject({ state: 'superseded', secret: undefined });
        expect(await h.inFlight()).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'an alarm of one kind is put on the timeline at most every 10 s; every refusal is counted',
      async () => {
        const secret = await h.openBoot();
        const wrong = { nonce: undefined, authorization: h.bearer(`${secret}x`) };
        await refusal(() => h.sessions.openConfig(node(), wrong, ADDRESS));
        h.clock += 9_999;
        await refusal(() => h.sessions.openConfig(node(), wrong, ADDRESS));
        expect(h.events('security.secret-mismatch')).toHaveLength(1);
        h.clock += 1;
        await refusal(() => h.sessions.openConfig(node(), wrong, ADDRESS));
        expect(h.events('security.secret-mismatch')).toHaveLength(2);
        expect(await h.refused('secret-mismatch')).toBe(3);
        // A new boot starts the alarms afresh.
        await h.sessions.issueBootNonce(node(), ADDRESS);
        const next = await h.sessions.issueBootNonce(node(), ADDRESS);
        const fresh = (await h.sessions.openConfig(node(), { nonce: next, authorization: undefined }, ADDRESS)).secret;
        await refusal(() => h.sessions.openConfig(node(), { nonce: undefined, authorization: h.bearer(`${fresh}x`) }, ADDRESS));
        expect(h.events('security.secret-mismatch')).toHaveLength(3);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the join token is handed out once', () => {
    it(
      'the join gets the minted token once; the second request is refused (410)',
      async () => {
        const secret = await h.openBoot();
        const token = await h.sessions.takeJoinToken(node(), h.bearer(secret));
        expect(token).toMatchObject({ id: 'tok000', token: 'tok000.abcdefghijklmnop' });
        expect(h.record().joinServed).toBe(true);
        expect(h.minter.mints).toHaveLength(1);
        expect(h.events('join.served').map((e) => e.detail)).toEqual([{ tokenId: 'tok000' }]);
        expect(h.logged('join configuration served')).toMatchObject([{ node: 'n1', tokenId: 'tok000' }]);
        const err = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        expect([err.status, err.message]).toEqual([410, 'the join configuration of this boot was handed out already']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'two racing join requests: one gets the token, the other 410',
      async () => {
        const secret = await h.openBoot();
        const results = await Promise.allSettled([
          h.sessions.takeJoinToken(node(), h.bearer(secret)),
          h.sessions.takeJoinToken(node(), h.bearer(secret)),
        ]);
        expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token that was not minted yet (restart) is minted for the join',
      async () => {
        const secret = await h.openBoot(h.sessions, node({ join: false }));
        const joining = new BootSessions(h.deps());
        const token = await joining.takeJoinToken(node(), h.bearer(secret));
        expect(token.id).toBe('tok000');
        expect(h.minter.mints).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a node that does not join, or no kubernetes section: 409 naming why',
      async () => {
        const secret = await h.openBoot(h.sessions, node({ join: false }));
        const err = await refusal(() => h.sessions.takeJoinToken(node({ join: false }), h.bearer(secret)));
        expect([err.status, err.message]).toEqual([409, 'node n1 does not join (join: false)']);
        const bare = new BootSessions(h.deps({ kubernetes: undefined }));
        const none = await refusal(() => bare.takeJoinToken(node(), h.bearer(secret)));
        expect([none.status, none.message]).toEqual([409, 'no kubernetes section is configured']);
        expect(h.record().joinServed).toBe(false);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the join of a boot that is over is refused (410); so are missing and wrong secrets (401)',
      async () => {
        const secret = await h.openBoot();
        await h.sessions.report(node(), h.bearer(secret), 'kubelet', 'failed', 'no route');
        const err = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        expect([err.status, err.message]).toEqual([410, 'this boot is over (failed)']);
        const missing = await refusal(() => h.sessions.takeJoinToken(node(), undefined));
        expect([missing.status, missing.message]).toEqual([401, "a bearer secret from this boot's configuration is required"]);
        expect(await h.refused('missing')).toBe(1);
        const wrong = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer('w'.repeat(32))));
        expect([wrong.status, wrong.message]).toEqual([401, "the secret is not this boot's"]);
        expect(await h.refused('secret-mismatch')).toBe(1);
        const nobody = await refusal(() => h.sessions.authenticate('52:54:00:5e:00:99', h.bearer(secret)));
        expect(nobody.status).toBe(401);
        expect(await h.refused('missing')).toBe(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed mint: the join gets 502 naming the cause, counted and on the timeline',
      async () => {
        h.minter.failMint = new Error('forbidden');
        const secret = await h.openBoot();
        const err = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        expect([err.status, err.message]).toEqual([502, 'minting the bootstrap token failed: forbidden']);
        expect(await h.minted('failed')).toBe(1);
        expect(h.events('token.failed').map((e) => e.detail)).toEqual([{ reason: 'forbidden' }]);
        expect(h.logged('bootstrap token not minted')).toMatchObject([{ node: 'n1', mac: MAC, err: 'forbidden' }]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a boot that ends while its token is minted: the token is deleted, the join gets 410',
      async () => {
        let release = () => {};
        h.minter.gate = new Promise((resolve) => (release = resolve));
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        const join = refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        await vi.waitFor(() => expect(h.record().joinServed).toBe(true));
        // The next boot waits for the mint in flight to end before its token can be deleted.
        const next = h.sessions.issueBootNonce(node(), ADDRESS);
        await vi.waitFor(() => expect(h.record().state).toBe('superseded'));
        release();
        await next;
        const err = await join;
        expect([err.status, err.message]).toEqual([410, 'the boot ended while its token was being minted']);
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.record().tokenId).toBeUndefined();
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a static token: never recorded as a token id, never deleted by bootfarm',
      async () => {
        h.minter = new ScriptedMinter('static', () => h.clock);
        h.sessions = new BootSessions(h.deps());
        const secret = await h.openBoot();
        expect((await h.sessions.takeJoinToken(node(), h.bearer(secret))).id).toBe('tok000');
        expect(h.record()).toMatchObject({ tokenId: undefined, tokenExpiresAt: T0 + TTL_SECONDS * 1000 });
        await h.sessions.report(node(), h.bearer(secret), 'join', 'ok', undefined);
        expect(h.record().state).toBe('joined');
        expect(h.minter.revoked).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('admission: approve and tpm', () => {
    it(
      'approve: the join waits (423) until an operator approves; the approval mints and is kept',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        const secret = await h.openBoot();
        expect(h.minter.mints).toEqual([]);
        expect(h.events('boot.pending-admission').map((e) => e.detail)).toEqual([
          { bootId: h.record().bootId, reason: 'waiting for an operator: bootfarm node approve n1' },
        ]);
        const waiting = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        expect([waiting.status, waiting.message]).toEqual([423, 'waiting for an operator: bootfarm node approve n1']);
        expect(h.record().joinServed).toBe(false);
        h.clock += 5_000;
        const approved = await h.sessions.approve(node(), 'alice');
        expect(approved).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice', state: 'booting' });
        expect(h.record()).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice' });
        expect(h.events('boot.approved').map((e) => e.detail)).toEqual([{ bootId: approved.bootId, by: 'alice' }]);
        expect(h.logged('boot approved')).toMatchObject([{ node: 'n1', by: 'alice' }]);
        expect(h.minter.mints).toHaveLength(1);
        // A second approval changes nothing and mints nothing more.
        h.clock += 5_000;
        expect(await h.sessions.approve(node(), 'bob')).toMatchObject({ approvedAt: T0 + 5_000, approvedBy: 'alice' });
        expect(h.events('boot.approved')).toHaveLength(1);
        expect((await h.sessions.takeJoinToken(node(), h.bearer(secret))).id).toBe('tok000');
        expect(h.minter.mints).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: an approval given for a boot of a node that does not join mints nothing',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        await h.openBoot(h.sessions, node({ join: false }));
        expect(h.events('boot.pending-admission')).toEqual([]);
        await h.sessions.approve(node({ join: false }), 'alice');
        expect(h.minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: nothing to approve before the nonce is spent, after the boot, or with no boot (409 says which)',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        const none = await refusal(() => h.sessions.approve(node(), 'alice'));
        expect([none.status, none.message]).toEqual([409, 'n1 has no boot waiting for approval']);
        await h.sessions.issueBootNonce(node(), ADDRESS);
        const early = await refusal(() => h.sessions.approve(node(), 'alice'));
        expect([early.status, early.message]).toEqual([
          409,
          'n1 has no boot waiting for approval (its last boot is still at its boot script)',
        ]);
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { secret } = await h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS);
        await h.sessions.report(node(), h.bearer(secret), 'join', 'ok', undefined);
        const late = await refusal(() => h.sessions.approve(node(), 'alice'));
        expect([late.status, late.message]).toEqual([409, 'n1 has no boot waiting for approval (its last boot is joined)']);
        expect(h.minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'approve: an approval while the token is minted already mints no second one',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'approve' }) }));
        await h.openBoot();
        let release = () => {};
        h.minter.gate = new Promise((resolve) => (release = resolve));
        await h.sessions.approve(node(), 'alice');
        await h.store.putSession({ ...h.record(), approvedAt: undefined });
        await h.sessions.approve(node(), 'bob');
        release();
        expect(h.minter.mints).toHaveLength(1);
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: the join waits (423) until the TPM answered; noteAdmitted then mints for that boot only',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'tpm' }) }));
        const secret = await h.openBoot();
        const { bootId } = h.record();
        const waiting = await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)));
        expect([waiting.status, waiting.message]).toEqual([423, "waiting for n1's TPM to answer its credential challenge"]);
        h.sessions.noteAdmitted(MAC, bootId);
        expect(h.minter.mints).toEqual([]);
        h.attested.add(`${MAC} ${bootId}`);
        h.sessions.noteAdmitted(MAC, 'another-boot');
        h.sessions.noteAdmitted('52:54:00:5e:00:99', bootId);
        expect(h.minter.mints).toEqual([]);
        h.sessions.noteAdmitted(MAC, bootId);
        expect(h.minter.mints).toHaveLength(1);
        h.sessions.noteAdmitted(MAC, bootId);
        expect(h.minter.mints).toHaveLength(1);
        expect((await h.sessions.takeJoinToken(node(), h.bearer(secret))).id).toBe('tok000');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: no attestation source means no boot is attested; an admission for a boot that is over mints nothing',
      async () => {
        h.sessions = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'tpm' }), attested: undefined }));
        const secret = await h.openBoot();
        expect((await refusal(() => h.sessions.takeJoinToken(node(), h.bearer(secret)))).status).toBe(423);
        const tpm = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'tpm' }) }));
        h.attested.add(`${MAC} ${h.record().bootId}`);
        const nodeLess = new BootSessions(h.deps({ kubernetes: kubernetes({ admission: 'tpm' }), nodeByMac: undefined }));
        nodeLess.noteAdmitted(MAC, h.record().bootId);
        expect(h.minter.mints).toEqual([]);
        await tpm.report(node(), h.bearer(secret), 'kubelet', 'failed', undefined);
        tpm.noteAdmitted(MAC, h.record().bootId);
        expect(h.minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tpm: an admission arriving by MAC for a node that does not join mints nothing',
      async () => {
        h.sessions = new BootSessions(
          h.deps({ kubernetes: kubernetes({ admission: 'tpm' }), nodeByMac: (mac) => (mac === MAC ? node({ join: false }) : undefined) }),
        );
        await h.openBoot();
        h.attested.add(`${MAC} ${h.record().bootId}`);
        h.sessions.noteAdmitted(MAC, h.record().bootId);
        expect(h.minter.mints).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('reports end the boot', () => {
    it(
      "join ok: joined, the token deleted and forgotten, the boot's duration observed",
      async () => {
        h.sessions.noteDiscover(node());
        h.clock += 2_000;
        const secret = await h.openBoot();
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        h.clock += 40_000;
        await h.sessions.report(node(), h.bearer(secret), 'join', 'ok', 'joined');
        expect(h.record()).toMatchObject({ state: 'joined', tokenId: undefined });
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(await h.inFlight()).toBe(0);
        expect(h.events('joined').map((e) => e.detail)).toEqual([{ bootId: h.record().bootId, seconds: 42, reason: undefined }]);
        expect(h.events('token.revoked').map((e) => e.detail)).toEqual([{ tokenId: 'tok000', why: 'joined' }]);
        expect(h.logged('bootstrap token deleted')).toMatchObject([{ mac: MAC, tokenId: 'tok000', why: 'joined' }]);
        expect(h.events('agent.join').map((e) => e.detail)).toEqual([{ status: 'ok', detail: 'joined', bootId: h.record().bootId }]);
        expect((await h.metrics.agentReports.get()).values).toMatchObject([{ labels: { step: 'join', status: 'ok' }, value: 1 }]);
        expect(h.logged('node reported')).toMatchObject([{ node: 'n1', step: 'join', status: 'ok' }]);
        // A report after the end is recorded and changes nothing.
        await h.sessions.report(node(), h.bearer(secret), 'join', 'failed', 'late');
        expect(h.record().state).toBe('joined');
        expect(h.events('agent.join')).toHaveLength(2);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed step fails the boot with the step and its detail (4096 characters at most) as the reason',
      async () => {
        const secret = await h.openBoot();
        await h.sessions.report(node(), h.bearer(secret), 'kubeadm', 'failed', 'x'.repeat(5000));
        expect(h.record().state).toBe('failed');
        expect(h.events('agent.kubeadm')[0]?.detail?.detail).toBe('x'.repeat(4096));
        expect(h.events('failed')[0]?.detail?.reason).toBe(`kubeadm: ${'x'.repeat(4096)}`);
        const again = await h.openBoot();
        await h.sessions.report(node(), h.bearer(again), 'image', 'failed', undefined);
        expect(h.events('failed').at(-1)?.detail?.reason).toBe('image: failed');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'booted ends a boot that does not join; a joining boot goes on to its join; other steps change nothing',
      async () => {
        const secret = await h.openBoot();
        await h.sessions.report(node(), h.bearer(secret), 'booted', 'ok', undefined);
        await h.sessions.report(node(), h.bearer(secret), 'network', 'ok', undefined);
        expect(h.record().state).toBe('booting');
        const plain = await h.openBoot(h.sessions, node({ join: false }));
        await h.sessions.report(node({ join: false }), h.bearer(plain), 'network', 'ok', undefined);
        expect(h.record().state).toBe('booting');
        await h.sessions.report(node({ join: false }), h.bearer(plain), 'booted', 'ok', undefined);
        expect(h.record().state).toBe('booted');
        expect(h.events('booted')).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a token delete that fails is kept and retried by the sweep',
      async () => {
        const secret = await h.openBoot();
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        h.minter.failRevoke = true;
        await h.sessions.report(node(), h.bearer(secret), 'join', 'ok', undefined);
        expect(h.record()).toMatchObject({ state: 'joined', tokenId: 'tok000' });
        expect(h.logged('bootstrap token not deleted; retrying later')).toMatchObject([
          { mac: MAC, tokenId: 'tok000', err: 'the API server is down' },
        ]);
        h.minter.failRevoke = false;
        await h.sessions.sweep();
        expect(h.record().tokenId).toBeUndefined();
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.events('token.revoked').map((e) => e.detail)).toEqual([{ tokenId: 'tok000', why: 'retry' }]);
        await h.sessions.sweep();
        expect(h.minter.revoked).toEqual(['tok000']);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('the address a boot is bound to', () => {
    it(
      "no boot: not bound (the caller asks the inventory); the boot's address: bound",
      async () => {
        expect(h.sessions.admitBoundAddress(node(), ADDRESS, '/agent/config')).toBe(false);
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.sessions.admitBoundAddress(node(), ADDRESS, '/agent/config')).toBe(true);
        const secret = (
          await h.sessions.openConfig(
            node(),
            { nonce: await h.sessions.issueBootNonce(node(), ADDRESS), authorization: undefined },
            ADDRESS,
          )
        ).secret;
        await h.sessions.report(node(), h.bearer(secret), 'kubelet', 'failed', undefined);
        expect(h.sessions.admitBoundAddress(node(), OTHER, '/agent/config')).toBe(false);
        expect(await h.mismatches()).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "before the nonce is spent, another of the node's own addresses is let through; after, refused",
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.sessions.admitBoundAddress(node(), OTHER, '/agent/config', undefined, true)).toBe(true);
        expect((await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/config'))).status).toBe(403);
        await h.sessions.openConfig(node(), { nonce: await h.sessions.issueBootNonce(node(), ADDRESS), authorization: undefined }, ADDRESS);
        const err = await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/config', undefined, true));
        expect([err.status, err.message]).toEqual([403, 'this boot of n1 is bound to another address']);
        expect(h.record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a request from another address is refused, counted, and on the timeline at most every 10 s',
      async () => {
        await h.openBoot();
        const { bootId } = h.record();
        for (let i = 0; i < 3; i++) await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(await h.mismatches()).toBe(3);
        expect(h.events('security.address-mismatch').map((e) => e.detail)).toEqual([
          { bootId, boundTo: ADDRESS, from: OTHER, path: '/agent/report' },
        ]);
        expect(h.logged('agent request from another address than the one this boot is bound to: refused')).toMatchObject([
          { node: 'n1', mac: MAC, bootId, boundTo: ADDRESS, from: OTHER, path: '/agent/report' },
        ]);
        h.clock += 9_999;
        await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(h.events('security.address-mismatch')).toHaveLength(1);
        h.clock += 1;
        await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(h.events('security.address-mismatch')).toHaveLength(2);
        // A new boot starts afresh.
        await h.sessions.issueBootNonce(node(), ADDRESS);
        await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/report'));
        expect(h.events('security.address-mismatch')).toHaveLength(3);
        expect(h.record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "the boot's nonce or secret from another address revokes the boot (a stolen credential)",
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const err = await refusal(() => h.sessions.admitBoundAddress(node(), OTHER, '/agent/config', { nonce, authorization: undefined }));
        expect([err.status, err.message]).toEqual([403, 'this boot of n1 is bound to another address; the boot is revoked']);
        await vi.waitFor(() => expect(h.events('revoked')).toHaveLength(1));
        expect(h.events('revoked')[0]?.detail?.reason).toBe(`this boot's credential was presented from ${OTHER}, not from ${ADDRESS}`);
        expect(h.events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: h.record().bootId, from: OTHER, path: '/agent/config', boundTo: ADDRESS },
        ]);
        const secret = await h.openBoot();
        await refusal(() =>
          h.sessions.admitBoundAddress(node(), OTHER, '/agent/join', { nonce: undefined, authorization: h.bearer(secret) }),
        );
        await vi.waitFor(() => expect(h.record().state).toBe('revoked'));
        // Someone else's credentials are an address mismatch only.
        const other = await h.openBoot();
        await refusal(() =>
          h.sessions.admitBoundAddress(node(), OTHER, '/agent/join', { nonce: 'q'.repeat(32), authorization: h.bearer(`${other}q`) }),
        );
        expect(h.record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a failed write while revoking is logged, not thrown',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const failing = new BootSessions(
          h.deps({
            store: Object.assign(Object.create(h.store) as FileStore, { putSession: () => Promise.reject(new Error('disk full')) }),
          }),
        );
        await refusal(() => failing.admitBoundAddress(node(), OTHER, '/agent/config', { nonce, authorization: undefined }));
        await vi.waitFor(() => expect(h.logged('revoking a boot failed')).toMatchObject([{ mac: MAC, err: 'disk full' }]));
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "the last boot's credential from an address that is not the node's: an alarm, and the boot revoked if it is still on",
      async () => {
        const secret = await h.openBoot();
        h.sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: h.bearer('n'.repeat(32)) });
        expect(h.events().filter((e) => e.type.startsWith('security.'))).toEqual([]);
        h.sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: h.bearer(secret) });
        expect(h.events('security.from-another-address').map((e) => e.detail)).toEqual([
          { bootId: h.record().bootId, from: OTHER, path: '/agent/config', boundTo: ADDRESS },
        ]);
        await vi.waitFor(() => expect(h.events('revoked')).toHaveLength(1));
        expect(h.events('revoked')[0]?.detail?.reason).toBe(`this boot's credential was presented from ${OTHER}`);
        h.clock += 10_000;
        h.sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: h.bearer(secret) });
        expect(h.events('security.from-another-address')).toHaveLength(2);
        expect(h.events('revoked')).toHaveLength(1);
        expect(await h.refused('from-another-address')).toBe(2);
        // A node that never booted: nothing to compare.
        h.sessions.noteForeignCredential(node({ mac: '52:54:00:5e:00:99' }), OTHER, '/agent/config', {
          nonce: 'a',
          authorization: undefined,
        });
        expect(await h.refused('from-another-address')).toBe(2);
        // A boot recorded before boots were bound to an address.
        await h.store.putSession({ ...h.record(), address: undefined });
        h.clock += 10_000;
        h.sessions.noteForeignCredential(node(), OTHER, '/agent/config', { nonce: undefined, authorization: h.bearer(secret) });
        expect(h.events('security.from-another-address').at(-1)?.detail?.boundTo).toBe('');
        await h.store.putSession({ ...h.record(), state: 'booting' });
        expect(h.sessions.admitBoundAddress(node(), OTHER, '/agent/config')).toBe(false);
      },
      TEST_TIMEOUT_MS,
    );
  });

  describe('expiry and restart', () => {
    it(
      'a nonce not spent within 900 s expires the boot; a token past its TTL expires it and is deleted',
      async () => {
        await h.sessions.issueBootNonce(node(), ADDRESS);
        h.clock += 900_000 - 1;
        await h.sessions.sweep();
        expect(h.record().state).toBe('booting');
        h.clock += 1;
        await h.sessions.sweep();
        expect(h.record().state).toBe('expired');
        expect(await h.inFlight()).toBe(0);
        // An expired boot's nonce is a replay.
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        const expiresAt = h.record().tokenExpiresAt ?? 0;
        h.clock = expiresAt - 1;
        await h.sessions.sweep();
        expect(h.record().state).toBe('booting');
        h.clock = expiresAt;
        await h.sessions.sweep();
        expect(h.record()).toMatchObject({ state: 'expired', tokenId: undefined });
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.events('token.revoked').at(-1)?.detail).toEqual({ tokenId: 'tok000', why: 'token TTL passed' });
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'an expired boot leaves its unspent nonce unusable; the script then opens a new boot',
      async () => {
        const nonce = await h.sessions.issueBootNonce(node(), ADDRESS);
        const { bootId } = h.record();
        h.clock += 900_000;
        await h.sessions.sweep();
        const err = await refusal(() => h.sessions.openConfig(node(), { nonce, authorization: undefined }, ADDRESS));
        expect(err.message).toBe("this boot's nonce was used already and the boot is over");
        const next = await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(next).not.toBe(nonce);
        expect(h.record().bootId).not.toBe(bootId);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart keeps a token handed out and deletes one minted but not handed out',
      async () => {
        const secret = await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        await h.sessions.takeJoinToken(node(), h.bearer(secret));
        const restarted = new BootSessions(h.deps());
        await restarted.start();
        await restarted.stop();
        expect(h.minter.revoked).toEqual([]);
        expect(h.record()).toMatchObject({ state: 'booting', joinServed: true, tokenId: 'tok000' });
        expect(await h.inFlight()).toBe(2);
        // Its join is not served twice after the restart either.
        expect((await refusal(() => restarted.takeJoinToken(node(), h.bearer(secret)))).status).toBe(410);

        await h.store.putSession({ ...h.record(), joinServed: false });
        const again = new BootSessions(h.deps());
        await again.start();
        await again.stop();
        expect(h.minter.revoked).toEqual(['tok000']);
        expect(h.record()).toMatchObject({ state: 'booting', tokenId: undefined });
        expect(h.events('token.revoked').at(-1)?.detail).toEqual({ tokenId: 'tok000', why: 'bootfarm restarted' });
        // The join request then mints a fresh one.
        expect((await again.takeJoinToken(node(), h.bearer(secret))).id).toBe('tok001');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart with a join marked served but no token: the join may ask again (not with a static token)',
      async () => {
        const secret = await h.openBoot(h.sessions, node({ join: false }));
        await h.store.putSession({ ...h.record(), joinServed: true });
        const restarted = new BootSessions(h.deps());
        await restarted.start();
        await restarted.stop();
        expect(h.record().joinServed).toBe(false);
        expect((await restarted.takeJoinToken(node(), h.bearer(secret))).id).toBe('tok000');

        await h.store.putSession({ ...h.record(), joinServed: true, tokenId: undefined });
        const staticMinter = new ScriptedMinter('static', () => h.clock);
        const withStatic = new BootSessions(h.deps({ minter: staticMinter }));
        await withStatic.start();
        await withStatic.stop();
        expect(h.record().joinServed).toBe(true);
        // A boot that is over keeps what it had.
        await h.store.putSession({ ...h.record(), state: 'joined', joinServed: true });
        const over = new BootSessions(h.deps());
        await over.start();
        await over.stop();
        expect(h.record().joinServed).toBe(true);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a restart deletes the token a finished boot still held; a finished boot is not counted in flight',
      async () => {
        await h.openBoot();
        await vi.waitFor(() => expect(h.record().tokenId).toBe('tok000'));
        await h.store.putSession({ ...h.record(), state: 'failed' });
        const metricsAfter = new Metrics();
        const restarted = new BootSessions(h.deps({ metrics: metricsAfter }));
        await restarted.start();
        await restarted.stop();
        expect(h.minter.revoked).toEqual(['tok000']);
        expect((await metricsAfter.bootsInFlight.get()).values[0]?.value ?? 0).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the sweeper runs every quarter of the token TTL, between 1 s and 15 s, until stopped',
      async () => {
        vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
        const expiresWithin = async (ttlSeconds: number | undefined, intervalMs: number) => {
          const s = new BootSessions(
            h.deps({ kubernetes: ttlSeconds === undefined ? undefined : kubernetes({ tokenTtlSeconds: ttlSeconds }) }),
          );
          await s.issueBootNonce(node(), ADDRESS);
          h.clock += 900_000;
          await s.start();
          vi.advanceTimersByTime(intervalMs - 1);
          const before = h.record().state;
          vi.advanceTimersByTime(1);
          await vi.waitFor(() => expect(h.record().state).toBe('expired'));
          await s.stop();
          return before;
        };
        expect(await expiresWithin(8, 2_000)).toBe('booting');
        expect(await expiresWithin(2, 1_000)).toBe('booting');
        expect(await expiresWithin(3600, 15_000)).toBe('booting');
        expect(await expiresWithin(undefined, 15_000)).toBe('booting');
        // Stopped: no more sweeps.
        const s = new BootSessions(h.deps());
        await s.start();
        await s.stop();
        await s.issueBootNonce(node(), ADDRESS);
        h.clock += 900_000;
        vi.advanceTimersByTime(60_000);
        expect(h.record().state).toBe('booting');
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "state() is the node's last boot",
      async () => {
        expect(h.sessions.state(MAC)).toBeUndefined();
        await h.sessions.issueBootNonce(node(), ADDRESS);
        expect(h.sessions.state(MAC)).toEqual(h.record());
      },
      TEST_TIMEOUT_MS,
    );
  });
});
