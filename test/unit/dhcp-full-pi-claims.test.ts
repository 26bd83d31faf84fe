// How long full mode claims a Raspberry Pi's offer in the shared store
// (server/dhcp/server/full-handler.ts): a Pi's bootloader takes its address from
// the OFFER and never REQUESTs it, so the offer's claim is the Pi's lease. A Pi in
// the inventory holds it for the subnet's leaseSeconds, an unknown Pi for at most
// five minutes; other clients' offers hold for the pool's offer hold.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { LocalLeaseClaims, type ClaimResult, type ClaimValue } from '../../server/store/lease-claims.js';
import { handleAt, openFullModeState, replyOf, udhcpcPacket, type FullModeState } from '../lib/dhcp-full-mode.js';

const SERVER = '10.9.0.1';
const KNOWN_PI = 'dc:a6:32:01:02:03';
const UNKNOWN_PI = 'dc:a6:32:0a:0b:0c';
const PC = '52:54:00:cc:00:09';
const LEASE_SECONDS = 3600;
const OFFER_HOLD_MS = 30_000;

/** One instance's claims (every claim granted), keeping what was asked. */
class RecordingClaims extends LocalLeaseClaims {
  readonly asked: ClaimValue[] = [];
  override claim(_subnet?: string, _ip?: string, value?: ClaimValue): Promise<ClaimResult> {
    if (value) this.asked.push(value);
    return super.claim();
  }
}

describe("full mode: a Raspberry Pi's offer is claimed for its lease", () => {
  let state: FullModeState;
  let claims: RecordingClaims;
  let handler: FullModeHandler;
  const now = Date.now();

  beforeEach(async () => {
    state = await openFullModeState(
      SERVER,
      `
dhcp:
  mode: full
  subnets:
    - { cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.119], router: ${SERVER}, leaseSeconds: ${LEASE_SECONDS} }
nodes:
  - { mac: "${KNOWN_PI}", hostname: pi-1, arch: arm64, piSerial: "1234abcd", piModel: 4 }
`,
    );
    const pool = new LeasePool(
      state.config.dhcp.subnets,
      state.store,
      OFFER_HOLD_MS,
      600_000,
      { unknownLeasePercent: 100, maxQuarantinedPercent: 100 },
      now,
    );
    claims = new RecordingClaims();
    handler = new FullModeHandler(pool, SERVER, claims);
  });
  afterEach(() => state.close());

  const offerTo = async (mac: string) => {
    const r = await handleAt(handler, state.store, SERVER, udhcpcPacket('discover', mac, {}), now);
    expect(r.outcome, mac).toBe('offer');
    return replyOf(r)?.yiaddr;
  };

  it("a Pi in the inventory: the subnet's whole lease", async () => {
    const ip = await offerTo(KNOWN_PI);
    expect(claims.asked).toEqual([{ key: KNOWN_PI, mac: KNOWN_PI, expiresAt: now + LEASE_SECONDS * 1000, instance: SERVER }]);
    expect(ip).toBe('10.9.0.100');
  }, 20_000);

  it('an unknown Pi: five minutes, not the subnet lease', async () => {
    await offerTo(UNKNOWN_PI);
    expect(claims.asked.map((c) => c.expiresAt)).toEqual([now + 300 * 1000]);
  }, 20_000);

  it('any other client: the offer hold', async () => {
    await offerTo(PC);
    expect(claims.asked.map((c) => c.expiresAt)).toEqual([now + OFFER_HOLD_MS]);
  }, 20_000);
});
