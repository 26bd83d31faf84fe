// reloadConfig (server/reload.ts) against a real configuration file, store and
// inventory: what an applied reload changes, that a refused one changes nothing,
// and the warning for an API node whose profile the file dropped.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../../server/config/load.js';
import { LiveConfig } from '../../server/config/live.js';
import { TemplateSet } from '../../server/config/templates.js';
import { FileStore } from '../../server/store/store.js';
import { Inventory } from '../../server/inventory/inventory.js';
import { Metrics } from '../../server/metrics.js';
import { reloadConfig } from '../../server/reload.js';

describe('reloadConfig', () => {
  let dir: string;
  let file: string;
  let store: FileStore;
  const lines: Array<{ msg: string; [key: string]: unknown }> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { msg: string });
        done();
      },
    }),
  );
  const write = (change: Record<string, unknown>) =>
    writeFileSync(
      file,
      stringify({
        server: { address: '10.9.0.1', stateDir: path.join(dir, 'state') },
        profiles: [
          { name: 'lab', lts: { SCREEN_07: 'xterm' } },
          { name: 'kiosk', lts: { SCREEN_07: 'kiosk' } },
        ],
        nodes: [{ mac: '52:54:00:00:00:01', hostname: 'n1', profile: 'lab' }],
        ...change,
      }),
    );

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-reload-unit-'));
    file = path.join(dir, 'bootfarm.yaml');
    lines.length = 0;
    write({});
    store = (await FileStore.open(path.join(dir, 'state'), loadConfig(file).nodes, false)).store;
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies nodes and profiles to the inventory at once, and refuses a broken file without changing anything', async () => {
    const config = loadConfig(file);
    const live = new LiveConfig(config, new TemplateSet(undefined));
    const inventory = new Inventory(live, store);
    const metrics = new Metrics();
    await inventory.create({ mac: '52:54:00:00:00:09', hostname: 'api-node', profile: 'kiosk' });
    expect(inventory.byMac('52:54:00:00:00:01')?.lts).toMatchObject({ SCREEN_07: 'xterm' });

    write({
      profiles: [{ name: 'lab', lts: { SCREEN_07: 'ldm' } }],
      nodes: [
        { mac: '52:54:00:00:00:01', hostname: 'n1', profile: 'lab' },
        { mac: '52:54:00:00:00:02', hostname: 'n2', profile: 'lab' },
      ],
    });
    const applied = reloadConfig({ live, store, metrics, logger }, 'test');
    expect(applied).toEqual({ outcome: 'applied', file, nodes: { added: 1, removed: 0, changed: 0 }, profiles: 1, restartRequired: [] });
    expect(inventory.byMac('52:54:00:00:00:01')?.lts).toMatchObject({ SCREEN_07: 'ldm' });
    expect(inventory.knownByMac('52:54:00:00:00:02')?.origin).toBe('config');
    // The API node keeps existing; its profile is gone, which is said.
    expect(inventory.knownByMac('52:54:00:00:00:09')?.profiles).toEqual([]);
    expect(lines.find((l) => l.msg.startsWith('configuration reload: a node added through the API names a profile'))).toMatchObject({
      node: 'api-node',
      profile: 'kiosk',
    });

    const serving = live.config;
    writeFileSync(file, 'server: { address: 10.9.0.1, stateDir: state }\nnodes: [{ mac: nope, hostname: n1 }]\n');
    const refused = reloadConfig({ live, store, metrics, logger }, 'test');
    expect(refused.outcome).toBe('refused');
    expect(refused.outcome === 'refused' && refused.problems[0]).toMatch(new RegExp(`^${file}:2:\\d+: nodes\\[0\\]\\.mac: `));
    expect(live.config).toBe(serving);
    expect(inventory.knownByMac('52:54:00:00:00:02')?.hostname).toBe('n2');
    expect(inventory.byMac('52:54:00:00:00:01')?.lts).toMatchObject({ SCREEN_07: 'ldm' });
    const counts = (await metrics.registry.getSingleMetric('bootfarm_config_reloads_total')?.get())?.values.map((v) => [
      v.labels.outcome,
      v.value,
    ]);
    expect(counts).toEqual([
      ['applied', 1],
      ['refused', 1],
    ]);
  });
});
