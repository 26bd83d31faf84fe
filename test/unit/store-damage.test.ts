// Damaged state is never loaded silently: a bit flip, a cut-out stretch or a gap
// in the journal, and a snapshot cut short each refuse the start with the file,
// the byte offset and the line named, and the way out (--repair); a torn LAST
// journal line (an interrupted append, never acknowledged) is still ignored.
// --repair keeps every intact record, moves the damaged file aside and starts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileStore, type LeaseRecord } from '../../server/store/store.js';

const lease = (i: number): LeaseRecord => ({
  ip: `10.9.${i >> 8}.${i & 255}`,
  key: `k${i}`,
  mac: `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  state: 'bound',
  expiresAt: 1_900_000_000_000,
  updatedAt: i,
});

/** Writes `count` leases through the store itself, then closes it. */
async function writeLeases(dir: string, count: number, compactAfter?: number): Promise<void> {
  const { store } = await FileStore.open(dir, [], false, { compactAfter });
  for (let i = 0; i < count; i++) await store.putLease(lease(i));
  await store.close();
}

/** Byte offset of 0-based line `n` of `file`. */
function lineOffset(file: string, n: number): number {
  const lines = readFileSync(file).toString('latin1').split('\n');
  return lines.slice(0, n).reduce((sum, l) => sum + l.length + 1, 0);
}

describe('state store: damaged files', () => {
  let dir: string;
  let journal: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-damage-'));
    journal = path.join(dir, 'state.journal');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a journal with one flipped bit in the middle, naming file, byte and line', async () => {
    await writeLeases(dir, 20);
    const at = lineOffset(journal, 7) + 30;
    const bytes = readFileSync(journal);
    bytes[at] = (bytes[at] as number) ^ 0x04;
    writeFileSync(journal, bytes);
    await expect(FileStore.open(dir, [])).rejects.toThrow(
      `${journal} is damaged at byte ${lineOffset(journal, 7)} (line 8): checksum mismatch`,
    );
    await expect(FileStore.open(dir, [])).rejects.toThrow(/run: bootfarm serve --repair/);
  });

  it('refuses a journal with a stretch cut out of the middle (truncated record, later records kept)', async () => {
    await writeLeases(dir, 20);
    const bytes = readFileSync(journal);
    const cutFrom = lineOffset(journal, 5) + 40;
    const cutTo = lineOffset(journal, 9) + 17;
    writeFileSync(journal, Buffer.concat([bytes.subarray(0, cutFrom), bytes.subarray(cutTo)]));
    await expect(FileStore.open(dir, [])).rejects.toThrow(`${journal} is damaged at byte ${lineOffset(journal, 5)} (line 6)`);
  });

  it('refuses a gap: a whole record missing between intact ones', async () => {
    await writeLeases(dir, 20);
    const lines = readFileSync(journal, 'utf8').split('\n');
    lines.splice(10, 1);
    writeFileSync(journal, lines.join('\n'));
    await expect(FileStore.open(dir, [])).rejects.toThrow(
      `${journal} is damaged at byte ${lineOffset(journal, 10)} (line 11): records 10-10 are missing (a gap)`,
    );
  });

  it('refuses a snapshot cut short, and one with a flipped bit', async () => {
    await writeLeases(dir, 30, 10);
    const snapshot = path.join(dir, 'state.snapshot');
    const whole = readFileSync(snapshot);
    truncateSync(snapshot, lineOffset(snapshot, 6) + 10);
    await expect(FileStore.open(dir, [])).rejects.toThrow(
      `${snapshot} is damaged at byte ${lineOffset(snapshot, 6)} (line 7): the last line has no newline: the snapshot was cut short`,
    );
    const flipped = Buffer.from(whole);
    const at = lineOffset(snapshot, 3) + 20;
    flipped[at] = (flipped[at] as number) ^ 0x01;
    writeFileSync(snapshot, flipped);
    await expect(FileStore.open(dir, [])).rejects.toThrow(
      `${snapshot} is damaged at byte ${lineOffset(snapshot, 3)} (line 4): checksum mismatch`,
    );
    // Whole lines gone from the end (the trailer too): named as cut short.
    writeFileSync(snapshot, whole.subarray(0, lineOffset(snapshot, 5)));
    await expect(FileStore.open(dir, [])).rejects.toThrow(/the snapshot ends without its trailer after 4 records: it was cut short/);
  });

  it('ignores a torn last line (an append cut by a crash) and keeps appending after it', async () => {
    await writeLeases(dir, 10);
    const whole = readFileSync(journal);
    truncateSync(journal, whole.length - 25);
    const first = await FileStore.open(dir, []);
    expect(first.skippedLines).toBe(1);
    expect(first.store.leases()).toHaveLength(9);
    await first.store.putLease(lease(100));
    await first.store.close();
    // The torn tail was cut off, not glued to the next record: the journal is whole.
    const second = await FileStore.open(dir, []);
    expect(second.skippedLines).toBe(0);
    expect(
      second.store
        .leases()
        .map((l) => l.updatedAt)
        .sort((a, b) => a - b),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 100]);
    await second.store.close();
  });

  it('a journal left by a crash between the snapshot rename and the journal truncation is known to be in the snapshot', async () => {
    const first = await FileStore.open(dir, [], false, { compactAfter: 1000 });
    for (let i = 0; i < 5; i++) first.store.recordEvent({ at: new Date(i).toISOString(), mac: 'm1', type: 'dhcp.ack' });
    await first.store.putLease(lease(0));
    await first.store.close();
    const stale = readFileSync(journal);
    // Past compactAfter: a snapshot holding all seven records, and an empty journal.
    const second = await FileStore.open(dir, [], false, { compactAfter: 7 });
    await second.store.putLease(lease(1));
    await second.store.close();
    expect(readFileSync(journal)).toHaveLength(0);
    writeFileSync(journal, stale);
    const third = await FileStore.open(dir, []);
    // Not replayed twice: five events, not ten.
    expect(third.store.events('m1')).toHaveLength(5);
    expect(third.store.leases()).toHaveLength(2);
    await third.store.putLease(lease(2));
    await third.store.close();
    // The stale journal was set aside at that start: the next one finds no gap.
    const fourth = await FileStore.open(dir, []);
    expect(fourth.store.leases()).toHaveLength(3);
    await fourth.store.close();
  });

  it('--repair keeps every intact record, moves the damaged file aside, reports the damage, and starts', async () => {
    await writeLeases(dir, 20);
    const bytes = readFileSync(journal);
    const damagedLine = lineOffset(journal, 12);
    const at = damagedLine + 30;
    bytes[at] = (bytes[at] as number) ^ 0x10;
    writeFileSync(journal, bytes);
    const damaged = Buffer.from(bytes);
    const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const logger = {
      info: () => undefined,
      warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }),
      error: () => undefined,
    };
    const opened = await FileStore.open(dir, [], false, { repair: true, logger: logger as never });
    expect(opened.store.leases()).toHaveLength(19);
    expect(opened.store.leaseByIp(lease(12).ip)).toBeUndefined();
    expect(opened.load.repaired?.damage).toEqual([
      { file: journal, offset: damagedLine, line: 13, reason: expect.stringContaining('checksum mismatch') },
    ]);
    const aside = readdirSync(dir).filter((f) => f.startsWith('state.journal.damaged-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(path.join(dir, aside[0] as string))).toEqual(damaged);
    expect(warnings.some((w) => w.msg === 'state repair: dropped a damaged record' && w.obj.line === 13)).toBe(true);
    expect(warnings.some((w) => w.msg.startsWith('state repaired'))).toBe(true);
    await opened.store.putLease(lease(50));
    await opened.store.close();
    // Repaired for good: a plain start loads it, with what was appended after.
    const again = await FileStore.open(dir, []);
    expect(again.store.leases()).toHaveLength(20);
    expect(again.load.repaired).toBeUndefined();
    await again.store.close();
  });

  it('loads the format of the release before checksums (bare JSON lines and a JSON-array snapshot) and rewrites it', async () => {
    const records = Array.from({ length: 5 }, (_, i) => ({ t: 'lease', lease: lease(i) }));
    writeFileSync(path.join(dir, 'state.snapshot.json'), JSON.stringify(records.slice(0, 3)));
    // That release glued a newline to a torn line and went on appending: skipped, as it did.
    writeFileSync(journal, `${JSON.stringify(records[3])}\n{"t":"lease","lea\n${JSON.stringify(records[4])}\n`);
    const opened = await FileStore.open(dir, []);
    expect(opened.store.leases()).toHaveLength(5);
    expect(opened.skippedLines).toBe(1);
    expect(opened.load.rewritten).toBe(true);
    await opened.store.close();
    expect(existsSync(path.join(dir, 'state.snapshot.json'))).toBe(false);
    expect(readFileSync(path.join(dir, 'state.snapshot'), 'utf8')).toMatch(/^[0-9a-f]{8} #snapshot /);
    const again = await FileStore.open(dir, []);
    expect(again.store.leases()).toHaveLength(5);
    await again.store.close();
  });
});
