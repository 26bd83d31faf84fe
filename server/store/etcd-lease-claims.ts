// Lease claims in etcd (store.backend: etcd): one key per address,
// <prefix>/leases/<subnet>/<ip>, holding the client that may use it, attached to
// an etcd lease whose TTL is the DHCP lease's. A claim is one transaction that
// compares the key's mod revision with the one the decision was made on and puts
// only if it is unchanged: two instances deciding on the same address cannot both
// win. (BeryJu/gravity#871 gave duplicates by reading, deciding and putting
// without that comparison.) A watch on the prefix keeps a copy of every claim,
// so the local pool does not offer what another instance's client holds.
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { mayClaim, parseClaim, type ClaimResult, type ClaimValue, type LeaseClaims } from './lease-claims.js';

/** Each etcd call (not the watch stream) gives up after this: a DHCP client retries sooner than that anyway. */
const CALL_DEADLINE_MS = 3000;
/** A claim that loses this many races in a row is abandoned (the request gets no answer; the client retries). */
const MAX_ATTEMPTS = 5;

export interface EtcdClaimsOptions {
  endpoints: string[];
  prefix: string;
  logger: Logger;
}

interface Current {
  value: ClaimValue | undefined;
  /** '0' when the key is absent: etcd compares a missing key's revisions as 0. */
  modRevision: string;
}

function currentOf(kv: IKeyValue | undefined): Current {
  return kv ? { value: parseClaim(kv.value.toString()), modRevision: kv.mod_revision } : { value: undefined, modRevision: '0' };
}

/** The key of `ip` in `subnet` (a CIDR; its slash would read as another level). */
function claimKey(prefix: string, subnet: string, ip: string): string {
  return `${prefix}/leases/${subnet.replace('/', '_')}/${ip}`;
}

export class EtcdLeaseClaims implements LeaseClaims {
  /** ip -> the claim etcd holds for it, as the watch last told. */
  private readonly held = new Map<string, ClaimValue>();
  private watcher: Watcher | undefined;

  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  /** Connects, reads every claim and watches the prefix from the revision after that read. */
  static async open(options: EtcdClaimsOptions): Promise<EtcdLeaseClaims> {
    const client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: CALL_DEADLINE_MS,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    });
    const claims = new EtcdLeaseClaims(client, options.prefix.replace(/\/+$/, ''), options.logger);
    try {
      await claims.watch();
    } catch (err) {
      client.close();
      throw err;
    }
    return claims;
  }

  private get leasesPrefix(): string {
    return `${this.prefix}/leases/`;
  }

  private note(key: Buffer, value: Buffer | undefined): void {
    const ip = key.toString().split('/').pop() ?? '';
    const claim = value ? parseClaim(value.toString()) : undefined;
    if (claim) this.held.set(ip, claim);
    else this.held.delete(ip);
  }

  private async watch(): Promise<void> {
    const all = await this.client.getAll().prefix(this.leasesPrefix).exec();
    for (const kv of all.kvs) this.note(kv.key, kv.value);
    // From the revision after the read: no claim can fall between the read and the watch.
    const next = (BigInt(all.header.revision) + 1n).toString();
    const watcher = await this.client.watch().prefix(this.leasesPrefix).startRevision(next).create();
    watcher.on('put', (kv) => this.note(kv.key, kv.value));
    watcher.on('delete', (kv) => this.note(kv.key, undefined));
    watcher.on('disconnected', (err) => this.logger.warn({ err: err.message }, 'etcd watch disconnected; reconnecting'));
    watcher.on('error', (err) => this.logger.error({ err: err.message }, 'etcd watch failed'));
    this.watcher = watcher;
  }

  private async read(key: string): Promise<Current> {
    const res = await this.client.get(key).exec();
    return currentOf(res.kvs[0]);
  }

  async claim(subnet: string, ip: string, value: ClaimValue, now: number): Promise<ClaimResult> {
    const key = claimKey(this.prefix, subnet, ip);
    const ttl = Math.max(1, Math.ceil((value.expiresAt - now) / 1000));
    let current = await this.read(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (current.value && !mayClaim(current.value, value.key, now)) {
        this.held.set(ip, current.value);
        return { ok: false, holder: current.value };
      }
      const grant = await this.client.leaseClient.leaseGrant({ TTL: ttl });
      const res = await this.client
        .if(key, 'Mod', '==', current.modRevision)
        .then(this.client.put(key).value(JSON.stringify(value)).lease(grant.ID))
        .else(this.client.get(key))
        .commit();
      if (res.succeeded) {
        this.held.set(ip, value);
        return { ok: true };
      }
      // Someone wrote the key since it was read: decide again on what is there now.
      void this.client.leaseClient.leaseRevoke({ ID: grant.ID }).catch(() => undefined);
      current = currentOf(res.responses[0]?.response_range?.kvs[0]);
    }
    throw new Error(`claim of ${ip} lost ${MAX_ATTEMPTS} races in a row`);
  }

  async release(subnet: string, ip: string, clientKey: string): Promise<void> {
    const key = claimKey(this.prefix, subnet, ip);
    const current = await this.read(key);
    if (current.value?.key !== clientKey) return;
    // Only the claim that was read is deleted: one written since belongs to someone else.
    await this.client.if(key, 'Mod', '==', current.modRevision).then(this.client.delete().key(key)).commit();
  }

  heldByOther(ip: string, key: string, now: number): boolean {
    const claim = this.held.get(ip);
    return claim !== undefined && claim.key !== key && claim.expiresAt > now;
  }

  async stop(): Promise<void> {
    await this.watcher?.cancel();
    this.client.close();
  }
}
