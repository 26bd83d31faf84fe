// A DISCOVER storm meets an etcd outage: every request refused a new address
// (outcome store-unavailable) is counted, and logged at a bounded rate (10 lines
// a minute, then one line saying how many were suppressed), through the DHCP
// service's receive path with a lease store that cannot say.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { encodePacket } from '../../server/dhcp/codec/packet.js';
import { DhcpService } from '../../server/dhcp/server/dhcp-service.js';
import { Inventory } from '../../server/inventory/inventory.js';
import { Metrics } from '../../server/metrics.js';
import { policySettings } from '../../server/app.js';
import type { ClaimResult, ClaimsHealth, LeaseClaims } from '../../server/store/lease-claims.js';
import { openFullModeState, udhcpcPacket, type FullModeState } from '../lib/dhcp-full-mode.js';
import { waitUntil } from '../lib/wait.js';

const MESSAGE = 'dhcp: no new address while the lease store (etcd) cannot be reached';
const macOf = (i: number) => `52:54:00:ab:00:${i.toString(16).padStart(2, '0')}`;

/** etcd without quorum, as the handler sees it: every claim rejects. */
class DownClaims implements LeaseClaims {
  claim(): Promise<ClaimResult> {
    return Promise.reject(new Error('claim: etcd did not answer within 1000 ms'));
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
  heldByOther(): boolean {
    return false;
  }
  health(): ClaimsHealth {
    return { healthy: false, reason: 'etcd did not answer within 1000 ms', since: 0 };
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

describe('refusals while the lease store cannot be reached', () => {
  let state: FullModeState;
  beforeEach(async () => {
    // Inventory nodes without an ip: dynamic addresses, and no unknown-machine budget in the way.
    const nodes = Array.from({ length: 30 }, (_, i) => `  - { mac: "${macOf(i)}", hostname: n${i} }`).join('\n');
    state = await openFullModeState(
      '10.9.0.1',
      `dhcp:\n  mode: full\n  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200] }]\nnodes:\n${nodes}\n`,
    );
  });
  afterEach(() => state.close());

  it('counts every refusal and logs at most 10 a minute, then how many it suppressed', async () => {
    const lines: Array<{ msg: string; mac?: string; suppressedSinceLast?: number }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
        done();
      },
    });
    let now = Date.now();
    const metrics = new Metrics();
    const service = new DhcpService({
      config: state.config,
      store: state.store,
      metrics,
      logger: pino({ level: 'info' }, sink),
      policy: policySettings(state.config),
      inventory: new Inventory({ config: state.config }, state.store),
      leaseClaims: new DownClaims(),
      now: () => now,
    });
    const discover = async (i: number) => {
      service.receive(encodePacket(udhcpcPacket('discover', macOf(i), {})).buffer, { address: '0.0.0.0', port: 68 }, 'dhcp');
      await waitUntil(() => service.requestsInFlight === 0, 10_000, 'the request to settle', 5);
    };
    for (let i = 0; i < 25; i++) await discover(i);
    const refusals = () => lines.filter((l) => l.msg === MESSAGE);
    expect(refusals().map((l) => l.mac)).toEqual(Array.from({ length: 10 }, (_, i) => macOf(i)));
    const counted = (await metrics.dhcpPackets.get()).values.find((v) => v.labels.outcome === 'store-unavailable');
    expect(counted?.value).toBe(25);

    now += 60_000;
    await discover(25);
    expect(refusals()).toHaveLength(11);
    expect(refusals()[10]).toMatchObject({ mac: macOf(25), suppressedSinceLast: 15 });
  });
});
