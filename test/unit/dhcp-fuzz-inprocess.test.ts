// 100,000 hostile inputs straight into the DHCP service's receive path (no
// sockets): nothing may throw out of it, and every request's promise settles
// without an unhandled rejection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { decodePacket } from '../../server/dhcp/codec/packet.js';
import { DhcpService } from '../../server/dhcp/server/dhcp-service.js';
import { parseConfig } from '../../server/config/load.js';
import { FileStore } from '../../server/store/store.js';
import { Inventory } from '../../server/inventory/inventory.js';
import { Metrics } from '../../server/metrics.js';
import { policySettings } from '../../server/app.js';
import { fuzzPackets, loadSeeds } from '../lib/dhcp-fuzz-corpus.js';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { waitUntil } from '../lib/wait.js';

describe('in-process DHCP fuzzing', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-fuzz-'));
  let store: FileStore;
  const seeds = loadSeeds(path.join(REPO_ROOT, 'test/fixtures/dhcp'));

  beforeAll(async () => {
    store = (await FileStore.open(dir, [])).store;
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the decoder never throws', () => {
    let decoded = 0;
    for (const { data } of fuzzPackets(seeds, 100_000, 7)) if (decodePacket(data).ok) decoded++;
    expect(decoded).toBeGreaterThan(1000);
  });

  it.each(['full', 'proxy'] as const)('the %s-mode service never throws and settles every request', async (mode) => {
    const config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp: { mode: ${mode}, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200] }] }
unknownNodes: boot-default
`,
      'fuzz.yaml',
    );
    const metrics = new Metrics();
    const service = new DhcpService({
      config,
      store,
      metrics,
      logger: pino({ level: 'silent' }),
      policy: policySettings(config),
      inventory: new Inventory({ config }, store),
    });
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      let i = 0;
      for (const { data } of fuzzPackets(seeds, 100_000, mode === 'full' ? 11 : 13)) {
        service.receive(data, { address: '10.9.0.77', port: 68 }, i++ % 3 === 0 ? 'boot-server' : 'dhcp');
        if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
      }
      await waitUntil(() => service.requestsInFlight === 0, 30_000, 'all requests to settle');
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    expect(rejections).toEqual([]);
    const malformed = await metrics.registry.getSingleMetricAsString('bootfarm_dhcp_malformed_total');
    expect(malformed).toMatch(/reason="undecodable"} \d{4,}/);
    const errors = (await metrics.dhcpHandlerErrors.get()).values[0]?.value ?? 0;
    expect(errors).toBe(0);
  });
});
