// kubernetes.admission: tpm. A boot's join token is for the machine whose TPM
// holds the node's registered endorsement key (EK), proved by credential
// activation (TPM 2.0 Part 1 §24): the agent creates an attestation key (AK)
// under its EK and sends the AK's public area; bootfarm checks the AK is a
// restricted signing key that cannot leave its TPM, and seals a fresh random
// secret to the registered EK, bound to the AK's Name (TPM2_MakeCredential,
// server/tpm/make-credential.ts). Only that TPM, with that AK loaded, recovers
// it (TPM2_ActivateCredential); the agent sends it back and the boot is attested.
// Every refusal is counted and put on the node's timeline with its reason.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { EffectiveNode } from '../inventory/effective.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import { EkUnsuitableError, makeCredential, toolsCredentialFile } from '../tpm/make-credential.js';
import { TpmFormatError } from '../tpm/marshal.js';
import { missingAttributes, objectName, parsePublic, TPMA, type TpmPublic } from '../tpm/public-area.js';
import { EkRegistrationError, type EkRegistry, type EkSource, type RegisteredEk } from './tpm-ek-registry.js';

export type TpmRefusalReason =
  | 'ek-mismatch'
  | 'no-ek-registered'
  | 'ek-unusable'
  | 'ak-malformed'
  | 'ak-attributes'
  | 'ak-name-mismatch'
  | 'wrong-answer'
  | 'no-challenge'
  | 'too-many-challenges';

/** The most of a refusal's detail logged: an EK file's error text is not bounded by anything else. */
const DETAIL_MAX = 500;

export class TpmRefusal extends Error {
  constructor(
    readonly status: 400 | 403 | 409,
    readonly reason: TpmRefusalReason,
    message: string,
  ) {
    super(message);
    this.name = 'TpmRefusal';
  }
}

export interface ChallengeRequest {
  /** The AK's TPM2B_PUBLIC (tpm2_createak -u). */
  akPublic: Buffer;
  /** The Name the TPM reported for it (tpm2_createak -n); checked against the one computed here. */
  akName?: Buffer | undefined;
  /** The EK's TPM2B_PUBLIC (tpm2_createek -u): names the TPM in a refusal, and is what trust on first use registers. */
  ekPublic?: Buffer | undefined;
}

export interface Challenge {
  /** tpm2-tools' credential file for `tpm2_activatecredential -i`. */
  credential: Buffer;
  ekName: Buffer;
  akName: Buffer;
  ekType: 'rsa' | 'ecc';
}

export interface TpmAdmissionDeps {
  registry: EkRegistry;
  trustOnFirstUse: boolean;
  store: Pick<Store, 'recordEvent'>;
  metrics: Metrics;
  logger: Logger;
  /** Called once a boot is attested (e.g. to mint its token then). */
  onAttested?: (mac: string, bootId: string) => void;
  now?: () => number;
}

interface Pending {
  bootId: string;
  secret: Buffer;
  ek: TpmPublic;
  ekName: Buffer;
  akName: Buffer;
  source: EkSource;
  /** The EK to register on success (trust on first use only). */
  firstUseEk: Buffer | undefined;
}

/** Challenges one boot may ask for: an agent retries a few times; more is a loop or a probe. */
const CHALLENGES_PER_BOOT = 5;
/** The AK must be a signing key that cannot leave its TPM and signs only TPM-made structures. */
const AK_ATTRIBUTES = ['fixedTPM', 'fixedParent', 'sign', 'restricted'] as const;

const short = (name: Buffer): string => name.toString('hex');

export class TpmAdmission {
  private readonly pending = new Map<string, Pending>();
  /** By MAC: the attested boot, with the EK and AK it proved (what seal() encrypts to). */
  private readonly attested = new Map<string, { bootId: string; ek: TpmPublic; akName: Buffer }>();
  private readonly challenges = new Map<string, { bootId: string; count: number }>();
  private readonly now: () => number;

  constructor(private readonly deps: TpmAdmissionDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The hook for the join: whether this boot of the node proved its TPM. */
  isAttested(mac: string, bootId: string): boolean {
    return this.attested.get(mac)?.bootId === bootId;
  }

  /**
   * `data` (at most the EK's digest size: 32 bytes for SHA-256, enough for a
   * bootstrap token) as a credential only the attested boot's TPM, with its AK,
   * can recover: tpm2-tools' credential file (`tpm-attest unseal`). For handing
   * the join token to the node without sending it in the clear.
   */
  seal(mac: string, bootId: string, data: Buffer): Buffer {
    const boot = this.attested.get(mac);
    if (boot?.bootId !== bootId) throw new Error(`boot ${bootId} of ${mac} is not attested`);
    return toolsCredentialFile(makeCredential(boot.ek, boot.akName, data));
  }

  /** A credential for the node's registered EK, bound to the agent's AK; replaces an unanswered one. */
  challenge(node: EffectiveNode, bootId: string, request: ChallengeRequest): Challenge {
    const seen = this.challenges.get(node.mac);
    const count = seen?.bootId === bootId ? seen.count + 1 : 1;
    this.challenges.set(node.mac, { bootId, count });
    if (count > CHALLENGES_PER_BOOT) {
      // Counted, not put on the timeline again: the boot's first refusals are there already.
      this.deps.metrics.tpmAttestations.inc({ outcome: 'too-many-challenges' });
      throw new TpmRefusal(409, 'too-many-challenges', `at most ${CHALLENGES_PER_BOOT} TPM challenges per boot`);
    }
    const ak = this.parse(node, bootId, request.akPublic, 'ak-malformed', 'akPublic');
    const missing = missingAttributes(ak, AK_ATTRIBUTES);
    if (missing.length > 0 || (ak.attributes & TPMA.decrypt) !== 0) {
      this.refuse(
        node,
        bootId,
        400,
        'ak-attributes',
        `the AK is not a restricted signing key bound to its TPM (${missing.length > 0 ? `missing ${missing.join(', ')}` : 'decrypt is set'})`,
      );
    }
    const akName = objectName(ak);
    if (request.akName !== undefined && !request.akName.equals(akName)) {
      this.refuse(node, bootId, 400, 'ak-name-mismatch', `akName ${short(request.akName)} is not the Name of akPublic (${short(akName)})`);
    }
    const offered = request.ekPublic === undefined ? undefined : this.parse(node, bootId, request.ekPublic, 'ek-unusable', 'ekPublic');
    const { ek, source } = this.ekFor(node, bootId, offered);
    const secret = randomBytes(ek.nameAlg.size);
    let made;
    try {
      made = makeCredential(ek, akName, secret);
    } catch (err) {
      if (err instanceof EkUnsuitableError) this.refuse(node, bootId, 400, 'ek-unusable', err.message);
      throw err;
    }
    const ekName = objectName(ek);
    this.pending.set(node.mac, {
      bootId,
      secret,
      ek,
      ekName,
      akName,
      source,
      firstUseEk: source === 'trust-on-first-use' ? request.ekPublic : undefined,
    });
    this.event(node.mac, 'tpm.challenge', { bootId, ek: short(ekName), ak: short(akName), ekSource: source });
    return { credential: toolsCredentialFile(made), ekName, akName, ekType: ek.type };
  }

  /** The registered EK, checked against the one the agent says it has; or, trusting on first use, the agent's. */
  private ekFor(node: EffectiveNode, bootId: string, offered: TpmPublic | undefined): { ek: TpmPublic; source: EkSource } {
    const registered = this.registeredEk(node, bootId);
    if (registered) {
      // An EK of the other type (the agent made RSA, an ECC one is registered) says
      // nothing: the credential goes to the registered EK, and only its TPM opens it.
      if (offered && offered.type === registered.ek.type && !objectName(offered).equals(objectName(registered.ek))) {
        this.refuse(
          node,
          bootId,
          403,
          'ek-mismatch',
          `this machine's TPM has EK ${short(objectName(offered))} (${offered.type}), not ${node.hostname}'s registered EK ${short(objectName(registered.ek))} (${registered.ek.type}, ${registered.source})`,
        );
      }
      return registered;
    }
    if (!this.deps.trustOnFirstUse)
      this.refuse(
        node,
        bootId,
        409,
        'no-ek-registered',
        `${node.hostname} has no registered EK (tpm.ek, \`bootfarm node enrol --ek FILE\`) and kubernetes.tpm.trustOnFirstUse is off`,
      );
    if (!offered)
      this.refuse(
        node,
        bootId,
        400,
        'no-ek-registered',
        `${node.hostname} has no registered EK yet: trust on first use needs the agent's ekPublic`,
      );
    return { ek: offered, source: 'trust-on-first-use' };
  }

  /** The secret the agent recovered with TPM2_ActivateCredential: one try per challenge. */
  async answer(node: EffectiveNode, bootId: string, secret: Buffer): Promise<void> {
    const pending = this.pending.get(node.mac);
    if (!pending || pending.bootId !== bootId)
      this.refuse(node, bootId, 409, 'no-challenge', 'no TPM challenge of this boot is waiting for an answer');
    const p = pending;
    this.pending.delete(node.mac);
    if (secret.length !== p.secret.length || !timingSafeEqual(secret, p.secret)) {
      this.refuse(
        node,
        bootId,
        403,
        'wrong-answer',
        `the answer is not the secret sealed to ${node.hostname}'s EK ${short(p.ekName)}: this machine's TPM does not hold it, or the AK is not in it`,
      );
    }
    // The EK the challenge was sealed to must still be the node's: one may have been
    // registered, replaced or removed while the challenge was out (a configuration
    // reload, the API), e.g. because the machine that held the old one was retired.
    const now = this.registeredEk(node, bootId);
    if (now) {
      if (!objectName(now.ek).equals(p.ekName))
        this.refuse(
          node,
          bootId,
          403,
          'ek-mismatch',
          `${node.hostname}'s registered EK is now ${short(objectName(now.ek))} (${now.source}), not ${short(p.ekName)}, the EK this challenge was sealed to`,
        );
    } else if (p.firstUseEk) {
      await this.deps.registry.trust(node.mac, p.firstUseEk);
    } else {
      this.refuse(
        node,
        bootId,
        409,
        'no-ek-registered',
        `${node.hostname}'s registered EK ${short(p.ekName)} was removed while this challenge was out`,
      );
    }
    this.attested.set(node.mac, { bootId, ek: p.ek, akName: p.akName });
    this.deps.metrics.tpmAttestations.inc({ outcome: 'attested' });
    this.event(node.mac, 'tpm.attested', { bootId, ek: short(p.ekName), ak: short(p.akName), ekSource: p.source });
    this.deps.logger.info(
      { node: node.hostname, mac: node.mac, bootId, ek: short(p.ekName), ekSource: p.source },
      'boot attested by its TPM',
    );
    this.deps.onAttested?.(node.mac, bootId);
  }

  /** The node's registered EK; one that cannot be used is a refusal. */
  private registeredEk(node: EffectiveNode, bootId: string): RegisteredEk | undefined {
    try {
      return this.deps.registry.registered(node);
    } catch (err) {
      // The agent gets a fixed reason: the detail names the configured file (a
      // path on this host) and its error, which is the operator's to read, not
      // whoever holds the boot's token on the segment. The log has it (bounded).
      if (err instanceof EkRegistrationError)
        this.refuse(node, bootId, 409, 'ek-unusable', `${node.hostname}'s registered EK cannot be used (see the server log)`, err.message);
      throw err;
    }
  }

  private parse(node: EffectiveNode, bootId: string, bytes: Buffer, reason: TpmRefusalReason, field: string): TpmPublic {
    try {
      return parsePublic(bytes);
    } catch (err) {
      if (err instanceof TpmFormatError) this.refuse(node, bootId, 400, reason, `${field}: ${err.message}`);
      throw err;
    }
  }

  /** `detail`: for the log only, never the agent's answer (cut at DETAIL_MAX characters). */
  private refuse(
    node: EffectiveNode,
    bootId: string,
    status: 400 | 403 | 409,
    reason: TpmRefusalReason,
    message: string,
    detail?: string,
  ): never {
    this.deps.metrics.tpmAttestations.inc({ outcome: reason });
    this.event(node.mac, 'tpm.refused', { bootId, reason, message });
    this.deps.logger.warn(
      { node: node.hostname, mac: node.mac, bootId, reason, ...(detail === undefined ? {} : { detail: detail.slice(0, DETAIL_MAX) }) },
      `TPM attestation refused: ${message}`,
    );
    throw new TpmRefusal(status, reason, message);
  }

  private event(mac: string, type: string, detail: Record<string, string>): void {
    this.deps.store.recordEvent({ at: new Date(this.now()).toISOString(), mac, type, detail });
  }
}
