// A node's boot, as the agent and the Kubernetes join see it. The boot opens
// when bootfarm serves the node's boot script (iPXE, GRUB, pxelinux, Pi
// cmdline.txt) to an address the inventory knows as the node's: the session is
// bound to that address and the script's kernel command line carries a fresh
// one-time nonce. The agent's first configuration fetch spends the nonce and
// gets the boot's phone-home secret; a bootstrap token is minted right then (so
// the cluster's bootstrapsigner has signed cluster-info by the time kubeadm
// runs); the join configuration is handed out once; the token is deleted when
// the node reports it joined, when the boot fails, is superseded by a new one or
// revoked, or when its TTL passes. The token lives only in memory and in the
// cluster; nonce and secret only as digests (server/join/boot-credentials.ts).
import { randomBytes } from 'node:crypto';
import { bearerOf, credentialMatches, issueCredential } from './boot-credentials.js';
import type { Logger } from 'pino';
import type { ResolvedKubernetes } from '../config/types.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { BootSessionRecord, Store } from '../store/store.js';
import type { Metrics } from '../metrics.js';
import type { MintedToken, TokenMinter } from '../kube/minter.js';

export class AgentError extends Error {
  constructor(
    readonly status: 401 | 403 | 404 | 409 | 410 | 423 | 502,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export type ReportStatus = 'ok' | 'failed';

const SWEEP_INTERVAL_MS = 15_000;
/** A refused request from another address is a timeline event at most this often per node: an attacker's loop cannot fill the state file. */
const MISMATCH_EVENT_INTERVAL_MS = 10_000;
const DETAIL_LIMIT = 4096;
/**
 * A boot whose nonce was not spent this long after its script was served is
 * over: the node did not get as far as its agent (or the script went to an
 * address that is not booting), and another address may start the node's next boot.
 */
const UNSPENT_NONCE_SECONDS = 900;
/** How long a boot in flight keeps its address: no other address gets the node's boot script meanwhile (longer while its token is valid). */
const BOUND_BOOT_SECONDS = 900;

/** Why a presented boot credential was refused, as counted in bootfarm_agent_credential_refused_total. */
export type CredentialRefusal = 'missing' | 'nonce-mismatch' | 'nonce-replay' | 'secret-mismatch' | 'from-another-address' | 'boot-over';

/** What the agent presented: the nonce from its kernel command line, or the secret from its configuration. */
export interface PresentedCredentials {
  nonce: string | undefined;
  authorization: string | undefined;
}

export interface BootSessionDeps {
  store: Store;
  /**
   * kubernetes.admission: tpm: whether this boot proved its node's registered
   * TPM (server/join/tpm-admission.ts). Absent: no boot is attested.
   */
  attested?: (mac: string, bootId: string) => boolean;
  /** The node a MAC names, for admissions that arrive by MAC (noteAdmitted). */
  nodeByMac?: (mac: string) => EffectiveNode | undefined;
  kubernetes: ResolvedKubernetes | undefined;
  minter: TokenMinter | undefined;
  metrics: Metrics;
  logger: Logger;
  now?: () => number;
}

export class BootSessions {
  /** Nonces of boots whose script was served and whose nonce is unspent, by MAC: memory only (a script fetched again gets the same one). */
  private readonly unspentNonces = new Map<string, { bootId: string; nonce: string }>();
  /** Minted tokens by MAC: memory only, never persisted, never logged. */
  private readonly tokens = new Map<string, Promise<MintedToken>>();
  /** When a node's current boot began (its first DHCP DISCOVER), before its session opens. */
  private readonly bootStarts = new Map<string, number>();
  /** When a node's last security.address-mismatch event was recorded (nodes with an open session only). */
  private readonly mismatchEventAt = new Map<string, number>();
  /** When a node's last alarm of each kind was recorded, by `<mac> <reason>` (nodes with a session only). */
  private readonly alarmAt = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: BootSessionDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Starts the TTL sweeper and cleans up tokens a previous run left behind. */
  async start(): Promise<void> {
    for (const session of this.deps.store.sessions()) {
      if (session.state === 'booting' && session.joinServed && session.tokenId) {
        // Handed to the node already: it is joining with it (a restart under a
        // joining node must not break its join). Deleted as usual when the node
        // reports, or by the sweeper at its TTL (tokenExpiresAt is in the record).
      } else if (session.tokenId) {
        // Minted but never handed out: its secret is gone from memory with the
        // restart. Deleted now; the node's join request mints a fresh one.
        await this.revoke(session, 'bootfarm restarted');
      } else if (session.state === 'booting' && session.joinServed && this.deps.minter?.kind !== 'static') {
        // Marked served, but the mint had not finished when bootfarm stopped: the
        // node never got a token. Let its join request (it asks again) have one.
        await this.deps.store.putSession({ ...session, joinServed: false });
      }
      if (session.state === 'booting' && session.nonceDigest === undefined) {
        // Kept by a release before boot nonces (its secret in the clear): the
        // node's next boot script opens a session of the current kind.
        await this.deps.store.putSession({ ...session, secret: undefined, state: 'superseded' });
      } else if (session.state === 'booting') {
        this.deps.metrics.bootsInFlight.inc();
      }
    }
    // Often enough that a token outlives its TTL by at most a quarter of it.
    const ttlMs = (this.deps.kubernetes?.tokenTtlSeconds ?? 3600) * 1000;
    this.sweeper = setInterval(() => void this.sweep(), Math.min(SWEEP_INTERVAL_MS, Math.max(1000, ttlMs / 4)));
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private session(mac: string): BootSessionRecord | undefined {
    return this.deps.store.sessions().find((s) => s.mac === mac);
  }

  /**
   * Why this boot may not have its token yet (kubernetes.admission), or
   * undefined when it may: `auto` admits every boot that spent its nonce,
   * `approve` waits for an operator (`bootfarm node approve`), `tpm` for the
   * node's TPM to answer its credential challenge.
   */
  private admissionPending(node: EffectiveNode, session: BootSessionRecord): string | undefined {
    const mode = this.deps.kubernetes?.admission ?? 'auto';
    if (mode === 'approve' && session.approvedAt === undefined) return `waiting for an operator: bootfarm node approve ${node.hostname}`;
    if (mode === 'tpm' && !(this.deps.attested?.(node.mac, session.bootId) ?? false))
      return `waiting for ${node.hostname}'s TPM to answer its credential challenge`;
    return undefined;
  }

  /**
   * An operator admits the node's boot in flight (kubernetes.admission: approve),
   * as kubelet CSRs are approved: its token is minted now and its join may be
   * served. Kept in the session record, so a restart keeps the approval.
   */
  async approve(node: EffectiveNode, by: string): Promise<BootSessionRecord> {
    const current = this.session(node.mac);
    if (!current || current.state !== 'booting' || current.nonceUsedAt === undefined) {
      throw new AgentError(
        409,
        `${node.hostname} has no boot waiting for approval${current ? ` (its last boot is ${current.state === 'booting' ? 'still at its boot script' : current.state})` : ''}`,
      );
    }
    if (current.approvedAt !== undefined) return current;
    const approved: BootSessionRecord = { ...current, approvedAt: this.now(), approvedBy: by };
    await this.deps.store.putSession(approved);
    this.event(node.mac, 'boot.approved', { bootId: approved.bootId, by });
    this.deps.logger.info({ node: node.hostname, mac: node.mac, bootId: approved.bootId, by }, 'boot approved');
    // The mint's failure reaches the join request that awaits it (startMint keeps it handled).
    if (this.willJoin(node) && !this.tokens.has(node.mac)) void this.startMint(node, approved);
    return approved;
  }

  /** The boot `bootId` of `mac` was admitted (its TPM attested): its token is minted now rather than at /join. */
  noteAdmitted(mac: string, bootId: string): void {
    const session = this.session(mac);
    const node = this.deps.nodeByMac?.(mac);
    if (!node || session?.bootId !== bootId || session.state !== 'booting' || this.tokens.has(mac)) return;
    if (this.willJoin(node) && this.admissionPending(node, session) === undefined) void this.startMint(node, session);
  }

  private willJoin(node: EffectiveNode): boolean {
    return this.deps.kubernetes !== undefined && this.deps.minter !== undefined && node.join && node.origin !== 'unknown';
  }

  /**
   * A DHCP DISCOVER from a known node: it is (re)booting. Only the time is noted
   * (the boot's duration counts from it): a DISCOVER is one unauthenticated
   * broadcast anyone can forge with the node's MAC, so it does not end the boot
   * in progress. The next boot script served to the node does.
   */
  noteDiscover(node: EffectiveNode): void {
    const current = this.session(node.mac);
    if (!this.bootStarts.has(node.mac) || (current && current.openedAt > (this.bootStarts.get(node.mac) ?? 0)))
      this.bootStarts.set(node.mac, this.now());
  }

  /**
   * An open boot answers only the address its boot script went to: the address
   * the inventory accepts for a node can move (a forged proxy-mode REQUEST moves
   * it), the session cannot. True when this boot is bound to `address`; false
   * when no open session is bound yet (the caller checks the inventory); a
   * request from any other address is refused, counted and put on the timeline,
   * and when it carries this boot's nonce or secret the boot is revoked: a
   * credential of the node's in another machine's hands is a theft.
   */
  admitBoundAddress(
    node: EffectiveNode,
    address: string,
    path: string,
    presented?: PresentedCredentials,
    isNodeAddressNow = false,
  ): boolean {
    const current = this.session(node.mac);
    if (!current || current.state !== 'booting' || current.address === undefined) return false;
    if (current.address === address) return true;
    // Before its nonce is spent the node may come back from another address that
    // is also its own: the firmware's DHCP and the kernel's may use different
    // client ids (iPXE sends option 61, Linux's ip=dhcp does not), and a lease is
    // kept per client id, so the kernel can get a new address. The nonce went
    // only to the script's address; spending it rebinds the boot (openConfig).
    if (current.nonceUsedAt === undefined && isNodeAddressNow) return true;
    this.deps.metrics.agentAddressMismatch.inc();
    if (presented && this.carriesBootCredential(current, presented)) {
      this.refuse(node, current, 'from-another-address', { from: address, path, boundTo: current.address });
      this.revokeInBackground(current, `this boot's credential was presented from ${address}, not from ${current.address}`);
      throw new AgentError(403, `this boot of ${node.hostname} is bound to another address; the boot is revoked`);
    }
    const now = this.now();
    const last = this.mismatchEventAt.get(node.mac);
    if (last === undefined || now - last >= MISMATCH_EVENT_INTERVAL_MS) {
      this.mismatchEventAt.set(node.mac, now);
      this.event(node.mac, 'security.address-mismatch', { bootId: current.bootId, boundTo: current.address, from: address, path });
      this.deps.logger.warn(
        { node: node.hostname, mac: node.mac, bootId: current.bootId, boundTo: current.address, from: address, path },
        'agent request from another address than the one this boot is bound to: refused',
      );
    }
    throw new AgentError(403, `this boot of ${node.hostname} is bound to another address`);
  }

  /**
   * A request for the node from an address that is not the node's, and no boot
   * bound there: if it carries the nonce or secret of the node's last boot (a
   * replay after the boot ended, say), that is recorded as an alarm.
   */
  noteForeignCredential(node: EffectiveNode, address: string, path: string, presented: PresentedCredentials): void {
    const last = this.session(node.mac);
    if (!last || !this.carriesBootCredential(last, presented)) return;
    this.refuse(node, last, 'from-another-address', { from: address, path, boundTo: last.address ?? '' });
    if (last.state === 'booting') {
      this.revokeInBackground(last, `this boot's credential was presented from ${address}`);
    }
  }

  /** Revokes from a synchronous check (the request is refused at once); a failed write is logged, never unhandled. */
  private revokeInBackground(session: BootSessionRecord, reason: string): void {
    this.finish(session, 'revoked', reason).catch((err: unknown) =>
      this.deps.logger.error({ mac: session.mac, err: (err as Error).message }, 'revoking a boot failed'),
    );
  }

  private carriesBootCredential(session: BootSessionRecord, presented: PresentedCredentials): boolean {
    return (
      credentialMatches(presented.nonce, session.nonceDigest) || credentialMatches(bearerOf(presented.authorization), session.secretDigest)
    );
  }

  /**
   * The node's boot script is being served to `address`, which the caller has
   * checked is the node's: the nonce to put on its kernel command line. A script
   * fetched again before the nonce is spent (a TFTP retry, a tsize probe) gets
   * the same nonce; after it is spent, a script fetch from the same address is
   * the node's next boot. While a boot is in flight, a script for another
   * address is refused (403) for BOUND_BOOT_SECONDS, or as long as the boot's
   * token is valid: otherwise whoever moved the node's address (a forged
   * proxy-mode REQUEST) would supersede the boot and open one of its own.
   */
  async issueBootNonce(node: EffectiveNode, address: string): Promise<string> {
    const current = this.session(node.mac);
    const now = this.now();
    if (current && current.state === 'booting') {
      const bound =
        now - current.openedAt < BOUND_BOOT_SECONDS * 1000 || (current.tokenExpiresAt !== undefined && current.tokenExpiresAt > now);
      if (current.address === address && current.nonceUsedAt === undefined && bound) {
        const pending = this.unspentNonces.get(node.mac);
        if (pending?.bootId === current.bootId) return pending.nonce;
        // A restart lost the nonce's text: the node has not used it yet, so a new one replaces it.
        const renewed = issueCredential();
        await this.deps.store.putSession({ ...current, nonceDigest: renewed.digest });
        this.unspentNonces.set(node.mac, { bootId: current.bootId, nonce: renewed.value });
        return renewed.value;
      }
      if (current.address !== address && bound) {
        this.deps.metrics.agentAddressMismatch.inc();
        this.refuse(node, current, 'from-another-address', { from: address, boundTo: current.address ?? '', path: 'boot script' });
        throw new AgentError(403, `a boot of ${node.hostname} bound to another address is under way`);
      }
      await this.finish(current, 'superseded', 'a new boot began (its boot script was served again)');
    }
    const nonce = issueCredential();
    this.mismatchEventAt.delete(node.mac);
    for (const key of this.alarmAt.keys()) if (key.startsWith(`${node.mac} `)) this.alarmAt.delete(key);
    const session: BootSessionRecord = {
      mac: node.mac,
      bootId: randomBytes(8).toString('hex'),
      nonceDigest: nonce.digest,
      nonceUsedAt: undefined,
      secretDigest: undefined,
      startedAt: this.bootStarts.get(node.mac) ?? now,
      openedAt: now,
      state: 'booting',
      joinServed: false,
      tokenId: undefined,
      tokenExpiresAt: undefined,
      address,
    };
    this.bootStarts.delete(node.mac);
    await this.deps.store.putSession(session);
    this.unspentNonces.set(node.mac, { bootId: session.bootId, nonce: nonce.value });
    this.deps.metrics.bootsInFlight.inc();
    this.event(node.mac, 'boot.session', { bootId: session.bootId, join: this.willJoin(node), address });
    return nonce.value;
  }

  /**
   * The agent's configuration fetch: with the boot's nonce (the first fetch of
   * a boot) it spends the nonce and gets a new phone-home secret, and the token
   * is minted; with the secret (a later fetch) it gets the configuration again.
   * A nonce presented twice, or a wrong one, revokes the boot.
   */
  async openConfig(
    node: EffectiveNode,
    presented: PresentedCredentials,
    address: string,
  ): Promise<{ session: BootSessionRecord; secret: string }> {
    const current = this.session(node.mac);
    if (!current || current.state !== 'booting' || current.nonceDigest === undefined) {
      // The nonce of a boot that is over: a replay, worth an alarm.
      if (current && credentialMatches(presented.nonce, current.nonceDigest)) {
        this.refuse(node, current, 'nonce-replay', {});
        throw new AgentError(401, "this boot's nonce was used already and the boot is over");
      }
      this.countRefusal(current === undefined || current.state === 'booting' ? 'missing' : 'boot-over');
      throw new AgentError(401, `no boot of ${node.hostname} is open: its boot script (with bootfarm.nonce) comes first`);
    }
    const secret = bearerOf(presented.authorization);
    if (secret !== undefined && presented.nonce === undefined) {
      if (credentialMatches(secret, current.secretDigest)) return { session: current, secret };
      this.refuse(node, current, 'secret-mismatch', {});
      throw new AgentError(401, "the secret is not this boot's");
    }
    if (presented.nonce === undefined) {
      this.countRefusal('missing');
      throw new AgentError(401, "this boot's nonce (bootfarm.nonce on the kernel command line) is required");
    }
    if (!credentialMatches(presented.nonce, current.nonceDigest)) {
      this.refuse(node, current, 'nonce-mismatch', {});
      await this.finish(current, 'revoked', "a wrong boot nonce was presented from the boot's own address");
      throw new AgentError(401, "the nonce is not this boot's; the boot is revoked");
    }
    if (current.nonceUsedAt !== undefined) {
      this.refuse(node, current, 'nonce-replay', {});
      await this.finish(current, 'revoked', 'the boot nonce was presented a second time');
      throw new AgentError(401, "this boot's nonce was used already; the boot is revoked");
    }
    const issued = issueCredential();
    // From here on the boot answers the address that spent the nonce.
    const opened: BootSessionRecord = { ...current, nonceUsedAt: this.now(), secretDigest: issued.digest, address };
    this.unspentNonces.delete(node.mac);
    await this.deps.store.putSession(opened);
    this.event(node.mac, 'boot.nonce-spent', {
      bootId: opened.bootId,
      address,
      ...(address !== current.address ? { scriptAddress: current.address } : {}),
    });
    const pending = this.willJoin(node) ? this.admissionPending(node, opened) : undefined;
    if (pending !== undefined) this.event(node.mac, 'boot.pending-admission', { bootId: opened.bootId, reason: pending });
    if (this.willJoin(node) && pending === undefined) void this.startMint(node, opened);
    return { session: opened, secret: issued.value };
  }

  /** A refused credential: counted, logged, and an alarm on the node's timeline. */
  private refuse(node: EffectiveNode, session: BootSessionRecord, reason: CredentialRefusal, detail: Record<string, string>): void {
    this.countRefusal(reason);
    // At most one alarm per node and reason every 10 s: a loop cannot fill the state file.
    const key = `${node.mac} ${reason}`;
    const now = this.now();
    const last = this.alarmAt.get(key);
    if (last !== undefined && now - last < MISMATCH_EVENT_INTERVAL_MS) return;
    this.alarmAt.set(key, now);
    this.event(node.mac, `security.${reason}`, { bootId: session.bootId, ...detail });
    this.deps.logger.warn({ node: node.hostname, mac: node.mac, bootId: session.bootId, reason, ...detail }, 'boot credential refused');
  }

  private countRefusal(reason: CredentialRefusal): void {
    this.deps.metrics.agentCredentialRefused.inc({ reason });
  }

  private startMint(node: EffectiveNode, session: BootSessionRecord): Promise<MintedToken> {
    const { minter, kubernetes, logger, metrics } = this.deps;
    const pending = (minter as TokenMinter).mint(node, (kubernetes as ResolvedKubernetes).tokenTtlSeconds).then(
      async (token) => {
        metrics.tokensMinted.inc({ outcome: 'ok' });
        // The session may have ended while the API call ran.
        const latest = this.session(node.mac);
        if (latest?.bootId !== session.bootId || latest.state !== 'booting') {
          await minter?.revoke(token.id).catch(() => undefined);
          throw new AgentError(410, 'the boot ended while its token was being minted');
        }
        await this.deps.store.putSession({
          ...latest,
          tokenId: minter?.kind === 'static' ? undefined : token.id,
          tokenExpiresAt: token.expiresAt,
        });
        logger.info(
          {
            node: node.hostname,
            mac: node.mac,
            tokenId: token.id,
            expiresAt: token.expiresAt === undefined ? 'set by the cluster' : new Date(token.expiresAt).toISOString(),
            minter: minter?.kind,
          },
          'bootstrap token minted',
        );
        this.event(node.mac, 'token.minted', { tokenId: token.id });
        return token;
      },
      (err: unknown) => {
        metrics.tokensMinted.inc({ outcome: 'failed' });
        logger.error({ node: node.hostname, mac: node.mac, err: (err as Error).message }, 'bootstrap token not minted');
        this.event(node.mac, 'token.failed', { reason: (err as Error).message });
        throw new AgentError(502, `minting the bootstrap token failed: ${(err as Error).message}`);
      },
    );
    // Errors are reported to the join request that awaits it; never unhandled.
    pending.catch(() => undefined);
    this.tokens.set(node.mac, pending);
    return pending;
  }

  /** Checks the per-boot secret of the node's open session. */
  authenticate(mac: string, authorization: string | undefined): BootSessionRecord {
    const session = this.session(mac);
    const given = bearerOf(authorization);
    if (!session || !given) {
      this.countRefusal('missing');
      throw new AgentError(401, "a bearer secret from this boot's configuration is required");
    }
    if (!credentialMatches(given, session.secretDigest)) {
      this.countRefusal('secret-mismatch');
      throw new AgentError(401, "the secret is not this boot's");
    }
    return session;
  }

  /** The token for the node's join, once per boot. */
  async takeJoinToken(node: EffectiveNode, authorization: string | undefined): Promise<MintedToken> {
    const session = this.authenticate(node.mac, authorization);
    if (!this.willJoin(node))
      throw new AgentError(
        409,
        this.deps.kubernetes ? `node ${node.hostname} does not join (join: false)` : 'no kubernetes section is configured',
      );
    if (session.state !== 'booting') throw new AgentError(410, `this boot is over (${session.state})`);
    if (session.joinServed) throw new AgentError(410, 'the join configuration of this boot was handed out already');
    // Not admitted yet: the agent asks again (423, Retry-After) until it is.
    const pending = this.admissionPending(node, session);
    if (pending !== undefined) throw new AgentError(423, pending);
    // Marked served before the await: two racing requests cannot both get it.
    await this.deps.store.putSession({ ...session, joinServed: true });
    const token = await (this.tokens.get(node.mac) ?? this.startMint(node, session));
    this.event(node.mac, 'join.served', { tokenId: token.id });
    this.deps.logger.info({ node: node.hostname, mac: node.mac, tokenId: token.id }, 'join configuration served');
    return token;
  }

  async report(
    node: EffectiveNode,
    authorization: string | undefined,
    step: string,
    status: ReportStatus,
    detail: string | undefined,
  ): Promise<void> {
    const session = this.authenticate(node.mac, authorization);
    const text = detail?.slice(0, DETAIL_LIMIT);
    this.deps.metrics.agentReports.inc({ step, status });
    this.event(node.mac, `agent.${step}`, { status, detail: text, bootId: session.bootId });
    this.deps.logger.info({ node: node.hostname, mac: node.mac, step, status, bootId: session.bootId }, 'node reported');
    if (session.state !== 'booting') return;
    if (status === 'failed') {
      await this.finish(session, 'failed', `${step}: ${text ?? 'failed'}`);
    } else if (step === 'join') {
      await this.finish(session, 'joined');
    } else if (step === 'booted' && !this.willJoin(node)) {
      await this.finish(session, 'booted');
    }
  }

  private async finish(session: BootSessionRecord, state: BootSessionRecord['state'], reason?: string): Promise<void> {
    const latest = this.session(session.mac) ?? session;
    if (latest.state !== 'booting') return;
    await this.deps.store.putSession({ ...latest, state });
    this.deps.metrics.bootsInFlight.dec();
    const seconds = (this.now() - latest.startedAt) / 1000;
    this.deps.metrics.bootDuration.observe({ outcome: state }, seconds);
    this.unspentNonces.delete(session.mac);
    if (state === 'joined' || state === 'booted' || state === 'failed' || state === 'revoked')
      this.event(session.mac, state, { bootId: latest.bootId, seconds, reason });
    if (state === 'revoked') this.deps.logger.warn({ mac: session.mac, bootId: latest.bootId, reason }, 'boot revoked');
    await this.revoke({ ...latest, state }, reason ?? state);
  }

  private async revoke(session: BootSessionRecord, why: string): Promise<void> {
    const pending = this.tokens.get(session.mac);
    this.tokens.delete(session.mac);
    const token = pending ? await pending.catch(() => undefined) : undefined;
    const tokenId = session.tokenId ?? (this.deps.minter?.kind === 'static' ? undefined : token?.id);
    if (!tokenId || !this.deps.minter) return;
    try {
      await this.deps.minter.revoke(tokenId);
      const latest = this.session(session.mac);
      if (latest && latest.tokenId === tokenId) await this.deps.store.putSession({ ...latest, tokenId: undefined });
      this.event(session.mac, 'token.revoked', { tokenId, why });
      this.deps.logger.info({ mac: session.mac, tokenId, why }, 'bootstrap token deleted');
    } catch (err) {
      // Left for the next sweep; the token expires on its own anyway.
      this.deps.logger.warn({ mac: session.mac, tokenId, err: (err as Error).message }, 'bootstrap token not deleted; retrying later');
    }
  }

  /** Deletes tokens whose TTL passed and leftovers a failed delete kept. */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const session of this.deps.store.sessions()) {
      if (session.state === 'booting' && session.nonceUsedAt === undefined && now - session.openedAt >= UNSPENT_NONCE_SECONDS * 1000) {
        this.unspentNonces.delete(session.mac);
        await this.finish(session, 'expired', 'the boot nonce was not used in time');
      } else if (session.state === 'booting' && session.tokenExpiresAt !== undefined && session.tokenExpiresAt <= now) {
        await this.finish(session, 'expired', 'token TTL passed');
      } else if (session.state !== 'booting' && session.tokenId) {
        await this.revoke(session, 'retry');
      }
    }
  }

  state(mac: string): BootSessionRecord | undefined {
    return this.session(mac);
  }

  private event(mac: string, type: string, detail: Record<string, string | number | boolean | undefined>): void {
    this.deps.store.recordEvent({ at: new Date(this.now()).toISOString(), mac, type, detail });
  }
}
