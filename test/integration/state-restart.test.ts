// A big state directory restarts: 200,000 discovered machines and 1,000 nodes
// with full timelines (200 events each), written by the store itself (several
// compactions: a snapshot of ~400,000 records plus a journal). The release before
// this one failed to start on it (push(...snapshot) overflowed the stack).
// Then the same directory damaged two ways, through the real CLI: a bit flipped
// in the middle of the journal and a stretch cut out of it each refuse `serve`
// with the file, byte offset and line named (exit 2), and `serve --repair` keeps
// every intact record, moves the file aside, and starts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Background, run } from '../../server/lab/proc.js';
import { CLI, nodeArgs } from '../lib/bootfarm.js';
import { FileStore } from '../../server/store/store.js';

const DISCOVERED = 200_000;
const NODES = 1000;
const EVENTS = 200;
/** Committed last, so the journal (not only the snapshot) holds records. */
const LEASES = 2000;
const t0 = Date.parse('2026-01-01T00:00:00Z');
const mac = (prefix: number, i: number) =>
  [prefix, 0x54, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');
const nodeMac = (i: number) => mac(0x52, i);

/** Byte offset of 0-based line `n` of a file. */
function lineOffset(file: string, n: number): number {
  const text = readFileSync(file);
  let offset = 0;
  for (let line = 0; line < n; line++) offset = text.indexOf(10, offset) + 1;
  return offset;
}

async function counts(dir: string) {
  const { store } = await FileStore.open(dir, [], false, { maxDiscovered: 250_000 });
  let events = 0;
  for (let i = 0; i < NODES; i++) events += store.events(nodeMac(i)).length;
  const result = { discovered: store.discovered().length, nodes: store.nodes().length, events, leases: store.leases().length };
  await store.close();
  return result;
}

describe('state restart at scale, and damaged journals through the CLI', () => {
  let work: string;
  let pristine: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-restart-'));
    pristine = path.join(work, 'pristine');
    const { store } = await FileStore.open(pristine, [], false, { maxDiscovered: 250_000 });
    for (let i = 0; i < NODES; i++) await store.putNode({ mac: nodeMac(i), hostname: `node-${i}` });
    for (let i = 0; i < DISCOVERED; i++) {
      store.putDiscovered({
        mac: mac(0x5a, i),
        arch: 'amd64',
        firmware: 'uefi',
        piSerial: undefined,
        piModel: undefined,
        firstSeen: new Date(t0).toISOString(),
        lastSeen: new Date(t0 + i).toISOString(),
      });
      if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
    }
    for (let e = 0; e < EVENTS; e++) {
      for (let i = 0; i < NODES; i++)
        store.recordEvent({
          at: new Date(t0 + e).toISOString(),
          mac: nodeMac(i),
          type: 'tftp.file',
          detail: { path: 'ipxe.efi', bytes: 1024, from: 'static', n: e },
        });
      await new Promise((r) => setImmediate(r));
    }
    await store.close();
    const reopened = (await FileStore.open(pristine, [], false, { maxDiscovered: 250_000, compactAfter: 1_000_000 })).store;
    for (let i = 0; i < LEASES; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, k) =>
          reopened.putLease({
            ip: `10.9.${(i + k) >> 8}.${(i + k) & 255}`,
            key: `k${i + k}`,
            mac: mac(0x5a, i + k),
            state: 'bound',
            expiresAt: t0 + 3_600_000,
            updatedAt: t0,
          }),
        ),
      );
    }
    await reopened.close();
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A copy of the built state and a configuration that serves nothing but keeps it. */
  function scenario(name: string) {
    const stateDir = path.join(work, name, 'state');
    cpSync(pristine, stateDir, { recursive: true });
    const configFile = path.join(work, name, 'bootfarm.yaml');
    writeFileSync(configFile, stringify({ server: { address: '127.0.0.1', stateDir, maxDiscovered: 250_000 }, log: { level: 'info' } }));
    return { stateDir, configFile, journal: path.join(stateDir, 'state.journal') };
  }

  it('restarts and loads every machine, node and event', async () => {
    const files = readdirSync(pristine).sort();
    expect(files).toEqual(['state.journal', 'state.snapshot']);
    // The leases at least (events may remain from the last compaction on).
    expect(readFileSync(path.join(pristine, 'state.journal'), 'utf8').split('\n').length).toBeGreaterThan(LEASES);
    expect(await counts(pristine)).toEqual({ discovered: DISCOVERED, nodes: NODES, events: NODES * EVENTS, leases: LEASES });
  }, 120_000);

  it('a bit flipped in the middle of the journal: serve refuses, naming file, byte and line; --repair keeps the rest and starts', async () => {
    const { stateDir, configFile, journal } = scenario('flipped');
    const lines = readFileSync(journal, 'utf8').split('\n').length - 1;
    // Among the leases, the journal's last LEASES lines: one lease record is damaged.
    const damagedLine = lines - LEASES / 2;
    const offset = lineOffset(journal, damagedLine);
    const bytes = readFileSync(journal);
    bytes[offset + 40] = (bytes[offset + 40] as number) ^ 0x02;
    writeFileSync(journal, bytes);

    const refused = await run(process.execPath, nodeArgs(CLI, ['serve', '--config', configFile]), 120_000);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`bootfarm: ${journal} is damaged at byte ${offset} (line ${damagedLine + 1}): checksum mismatch`);
    expect(refused.stderr).toContain(`run: bootfarm serve --repair --config ${configFile}`);
    expect(readdirSync(stateDir).sort()).toEqual(['state.journal', 'state.snapshot']);

    const repairing = Background.start(process.execPath, nodeArgs(CLI, ['serve', '--repair', '--config', configFile]), 'bootfarm --repair');
    try {
      await repairing.waitFor((l) => l.includes('"bootfarm ready"'), 120_000, 'bootfarm ready after --repair');
      const report = JSON.parse(repairing.lines.find((l) => l.includes('"state repaired')) as string) as {
        damaged: number;
        movedAside: Array<{ file: string; to: string }>;
      };
      expect(report.damaged).toBe(1);
      expect(report.movedAside).toEqual([{ file: journal, to: expect.stringMatching(new RegExp(`^${journal}\\.damaged-`)) }]);
      expect(repairing.lines.some((l) => l.includes('"state repair: dropped a damaged record"') && l.includes(`"offset":${offset}`))).toBe(
        true,
      );
      expect(await repairing.stop('SIGTERM', 20_000)).toBe(0);
    } finally {
      await repairing.stop('SIGKILL');
    }
    const aside = readdirSync(stateDir).filter((f) => f.startsWith('state.journal.damaged-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(path.join(stateDir, aside[0] as string))).toEqual(bytes);
    // The one flipped record (a lease) is gone; every other record is there.
    expect(await counts(stateDir)).toEqual({ discovered: DISCOVERED, nodes: NODES, events: NODES * EVENTS, leases: LEASES - 1 });
  }, 300_000);

  it('a stretch cut out of the middle of the journal: serve refuses, naming where', async () => {
    const { configFile, journal } = scenario('cut');
    const bytes = readFileSync(journal);
    const from = lineOffset(journal, 30) + 25;
    const to = lineOffset(journal, 60) + 3;
    writeFileSync(journal, Buffer.concat([bytes.subarray(0, from), bytes.subarray(to)]));
    const refused = await run(process.execPath, nodeArgs(CLI, ['serve', '--config', configFile]), 120_000);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      new RegExp(`^bootfarm: ${journal} is damaged at byte ${lineOffset(journal, 30)} \\(line 31\\): checksum mismatch`),
    );
  }, 300_000);
});
