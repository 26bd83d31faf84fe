// Who gets a node's boot script and nonce (server/join/boot-script-issuer.ts):
// only an address the inventory knows as the node's, and not while another
// address's boot is bound; a refusal names why and is logged at a bounded rate.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino, { type Logger } from 'pino';
import { SessionBootScripts } from '../../server/join/boot-script-issuer.js';
import { BootSessions } from '../../server/join/boot-sessions.js';
import { FileStore } from '../../server/store/store.js';
import { Metrics } from '../../server/metrics.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';

const TEST_TIMEOUT_MS = 10_000;
const MAC = '52:54:00:5e:00:02';
const NODE_ADDRESS = '10.9.0.51';
const NODE_ADDRESS_2 = '10.9.0.52';
const STRANGER = '10.9.0.99';
const node = { mac: MAC, hostname: 'n2', join: false, origin: 'config' } as EffectiveNode;

describe('boot scripts go to the node only', () => {
  let dir: string;
  let store: FileStore;
  let logs: Array<Record<string, unknown>>;
  let logger: Logger;
  let issuer: SessionBootScripts;
  const addresses = { isNodeAddress: (mac: string, address: string) => mac === MAC && [NODE_ADDRESS, NODE_ADDRESS_2].includes(address) };
  const sessionsOver = (s: FileStore) =>
    new BootSessions({ store: s, kubernetes: undefined, minter: undefined, metrics: new Metrics(), logger });

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-boot-script-issuer-'));
    store = (await FileStore.open(dir, [], false)).store;
    logs = [];
    logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    issuer = new SessionBootScripts(sessionsOver(store), addresses, logger);
  });
  afterEach(async () => {
    vi.useRealTimers();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    "the node's address gets the nonce of a boot bound to it",
    async () => {
      const issued = await issuer.issue(node, NODE_ADDRESS);
      if (!('nonce' in issued)) throw new Error(`refused: ${issued.refused}`);
      expect(issued.nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(store.sessions()).toMatchObject([{ mac: MAC, address: NODE_ADDRESS, state: 'booting' }]);
      expect(await issuer.issue(node, NODE_ADDRESS)).toEqual(issued);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "an address that is not the node's is refused with a reason and opens no boot",
    async () => {
      expect(await issuer.issue(node, STRANGER)).toEqual({
        refused: `${STRANGER} is not the address of n2: its boot script (and boot nonce) go to the node only`,
      });
      expect(store.sessions()).toEqual([]);
      expect(logs.filter((l) => l.msg === "boot script asked for from an address that is not the node's: refused")).toMatchObject([
        { node: 'n2', mac: MAC, client: STRANGER, suppressedSinceLast: 0 },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refusals are logged 10 a minute at most, then one line says how many were not',
    async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(1_800_000_000_000);
      for (let i = 0; i < 13; i++) await issuer.issue(node, STRANGER);
      const refusals = () => logs.filter((l) => l.client === STRANGER);
      expect(refusals()).toHaveLength(10);
      vi.setSystemTime(1_800_000_060_000);
      await issuer.issue(node, STRANGER);
      expect(refusals()).toHaveLength(11);
      expect(refusals()[10]?.suppressedSinceLast).toBe(3);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "another of the node's addresses, while a boot is bound to the first: refused with the session's reason",
    async () => {
      await issuer.issue(node, NODE_ADDRESS);
      expect(await issuer.issue(node, NODE_ADDRESS_2)).toEqual({ refused: 'a boot of n2 bound to another address is under way' });
      expect(store.sessions()).toMatchObject([{ address: NODE_ADDRESS }]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a failure that is not a refusal (the state write failed) is thrown, not turned into a refusal',
    async () => {
      const failing = Object.assign(Object.create(store) as FileStore, { putSession: () => Promise.reject(new Error('disk full')) });
      const broken = new SessionBootScripts(sessionsOver(failing), addresses, logger);
      await expect(broken.issue(node, NODE_ADDRESS)).rejects.toThrow('disk full');
    },
    TEST_TIMEOUT_MS,
  );
});
