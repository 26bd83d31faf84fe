// A node's boot, as the agent and the Kubernetes join see it. The session opens
// when the node's agent first fetches its configuration and gets a per-boot
// phone-home secret; a bootstrap token is minted for the node right then (so the
// cluster's bootstrapsigner has signed cluster-info by the time kubeadm runs);
// the join configuration is handed out once; the token is deleted when the node
// reports it joined, when the boot fails or is superseded by a new one, or when
// its TTL passes. The token lives only in memory and in the cluster.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { ResolvedKubernetes } from '../config/types.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { BootSessionRecord, Store } from '../store/store.js';
import type { Metrics } from '../metrics.js';
import type { MintedToken, TokenMinter } from '../kube/minter.js';

export class AgentError extends Error {
  constructor(readonly status: 401 | 403 | 404 | 409 | 410 | 502, message: string) {
    super(message);
    this.name = 'AgentError';
  }
}

export type ReportStatus = 'ok' | 'failed';

const SWEEP_INTERVAL_MS = 15_000;
/** A refused request from another address is a timeline event at most this often per node: an attacker's loop cannot fill the state file. */
const MISMATCH_EVENT_INTERVAL_MS = 10_000;
const DETAIL_LIMIT = 4096;

export interface BootSessionDeps {
  store: Store;
  kubernetes: ResolvedKubernetes | undefined;
  minter: TokenMinter | undefined;
  metrics: Metrics;
  logger: Logger;
  now?: () => number;
}

export class BootSessions {
  /** Minted tokens by MAC: memory only, never persisted, never logged. */
  private readonly tokens = new Map<string, Promise<MintedToken>>();
  /** When a node's current boot began (its first DHCP DISCOVER), before its session opens. */
  private readonly bootStarts = new Map<string, number>();
  /** When a node's last security.address-mismatch event was recorded (nodes with an open session only). */
  private readonly mismatchEventAt = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: BootSessionDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Starts the TTL sweeper and cleans up tokens a previous run left behind. */
  async start(): Promise<void> {
    for (const session of this.deps.store.sessions()) {
      // A token minted before a restart is gone from memory: delete it now; if the
      // node still needs one, its join request mints a fresh one.
      if (session.tokenId) await this.revoke(session, 'bootfarm restarted');
      if (session.state === 'booting') this.deps.metrics.bootsInFlight.inc();
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

  private willJoin(node: EffectiveNode): boolean {
    return this.deps.kubernetes !== undefined && this.deps.minter !== undefined && node.join && node.origin !== 'unknown';
  }

  /** A DHCP DISCOVER from a known node: it is (re)booting. An open session from before is over. */
  noteDiscover(node: EffectiveNode): void {
    const current = this.session(node.mac);
    if (current && current.state === 'booting') {
      void this.finish(current, 'superseded', 'a new boot began (DHCP DISCOVER)');
    }
    if (!this.bootStarts.has(node.mac) || (current && current.openedAt > (this.bootStarts.get(node.mac) ?? 0))) this.bootStarts.set(node.mac, this.now());
  }

  /**
   * An open boot answers only the address that opened it: the address the
   * inventory accepts for a node can move (a forged proxy-mode REQUEST moves
   * it), the session cannot. True when this boot is bound to `address`; false
   * when no open session is bound yet (the caller checks the inventory); a
   * request from any other address is refused, counted and put on the timeline.
   */
  admitBoundAddress(node: EffectiveNode, address: string, path: string): boolean {
    const current = this.session(node.mac);
    if (!current || current.state !== 'booting' || current.address === undefined) return false;
    if (current.address === address) return true;
    this.deps.metrics.agentAddressMismatch.inc();
    const now = this.now();
    const last = this.mismatchEventAt.get(node.mac);
    if (last === undefined || now - last >= MISMATCH_EVENT_INTERVAL_MS) {
      this.mismatchEventAt.set(node.mac, now);
      this.event(node.mac, 'security.address-mismatch', { bootId: current.bootId, boundTo: current.address, from: address, path });
      this.deps.logger.warn({ node: node.hostname, mac: node.mac, bootId: current.bootId, boundTo: current.address, from: address, path }, 'agent request from another address than the one this boot is bound to: refused');
    }
    throw new AgentError(403, `this boot of ${node.hostname} is bound to another address`);
  }

  /** The agent's first configuration fetch of a boot opens the session, bound to `address` (later fetches in the same boot reuse it). */
  async open(node: EffectiveNode, address: string): Promise<BootSessionRecord> {
    const current = this.session(node.mac);
    if (current && current.state === 'booting') return current;
    const now = this.now();
    this.mismatchEventAt.delete(node.mac);
    const session: BootSessionRecord = {
      mac: node.mac,
      bootId: randomBytes(8).toString('hex'),
      secret: randomBytes(24).toString('base64url'),
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
    this.deps.metrics.bootsInFlight.inc();
    this.event(node.mac, 'boot.session', { bootId: session.bootId, join: this.willJoin(node) });
    if (this.willJoin(node)) this.startMint(node, session);
    return session;
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
        await this.deps.store.putSession({ ...latest, tokenId: minter?.kind === 'static' ? undefined : token.id, tokenExpiresAt: token.expiresAt });
        logger.info({ node: node.hostname, mac: node.mac, tokenId: token.id, expiresAt: token.expiresAt === undefined ? 'set by the cluster' : new Date(token.expiresAt).toISOString(), minter: minter?.kind }, 'bootstrap token minted');
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
    const given = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
    if (!session || !given) throw new AgentError(401, 'a bearer secret from this boot\'s configuration is required');
    const a = Buffer.from(given);
    const b = Buffer.from(session.secret);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new AgentError(401, 'the secret is not this boot\'s');
    return session;
  }

  /** The token for the node's join, once per boot. */
  async takeJoinToken(node: EffectiveNode, authorization: string | undefined): Promise<MintedToken> {
    const session = this.authenticate(node.mac, authorization);
    if (!this.willJoin(node)) throw new AgentError(409, this.deps.kubernetes ? `node ${node.hostname} does not join (join: false)` : 'no kubernetes section is configured');
    if (session.state !== 'booting') throw new AgentError(410, `this boot is over (${session.state})`);
    if (session.joinServed) throw new AgentError(410, 'the join configuration of this boot was handed out already');
    // Marked served before the await: two racing requests cannot both get it.
    await this.deps.store.putSession({ ...session, joinServed: true });
    const token = await (this.tokens.get(node.mac) ?? this.startMint(node, session));
    this.event(node.mac, 'join.served', { tokenId: token.id });
    this.deps.logger.info({ node: node.hostname, mac: node.mac, tokenId: token.id }, 'join configuration served');
    return token;
  }

  async report(node: EffectiveNode, authorization: string | undefined, step: string, status: ReportStatus, detail: string | undefined): Promise<void> {
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
    if (state === 'joined' || state === 'booted' || state === 'failed') this.event(session.mac, state, { bootId: latest.bootId, seconds, reason });
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
      if (session.state === 'booting' && session.tokenExpiresAt !== undefined && session.tokenExpiresAt <= now) {
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
