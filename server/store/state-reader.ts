// Reads the snapshot, then the journal, checking every record (see
// server/store/record-format.ts). A torn LAST journal line (an append cut by a
// crash: never acknowledged) is ignored as it always was; anything else that is
// wrong (a bad checksum, a line that is not a record, a missing sequence number,
// a snapshot cut short) refuses the start with the file, byte offset and line
// named, unless `repair` is set: then every intact record is kept and the damage
// is listed for the caller to move the file aside and report.
import { readFileSync, statSync } from 'node:fs';
import { readLines, type FileLine } from './line-reader.js';
import {
  isCheckedLine,
  parseJournalPayload,
  parseSnapshotHeader,
  parseSnapshotTrailer,
  verifyLine,
  type SnapshotHeader,
} from './record-format.js';
import { SetupError } from '../errors.js';

export interface Damage {
  file: string;
  offset: number;
  line: number;
  reason: string;
}

/** A damaged state file: bootfarm refuses to start rather than lose records silently. */
class StateDamagedError extends SetupError {
  constructor(
    readonly damage: Damage,
    repairCommand: string,
  ) {
    super(
      `${damage.file} is damaged at byte ${damage.offset} (line ${damage.line}): ${damage.reason}. bootfarm did not start and changed nothing. ` +
        `To start with every intact record (the damaged file is moved aside to ${damage.file}.damaged-<time> and what was dropped is logged), run: ${repairCommand}`,
    );
  }
}

export interface StateReadOptions {
  snapshotPath: string;
  journalPath: string;
  repair: boolean;
  repairCommand: string;
  /** Called with each record, snapshot first, in order. */
  onRecord: (record: unknown) => void;
}

export interface StateReadResult {
  /** The seq the next appended record gets. */
  nextSeq: number;
  /** Journal bytes worth keeping: the file is cut to this (drops a torn tail). */
  journalKeepBytes: number;
  /** Journal lines that stay in the journal (counted toward the next compaction). */
  journalRecords: number;
  /** Unparsable lines of an old-format journal, and a torn last line: never acknowledged writes. */
  skippedLines: number;
  /** The state must be rewritten at once: old format, a journal wholly inside the snapshot, or repaired damage. */
  rewrite: boolean;
  /** Only with `repair`: everything that was dropped. */
  damage: Damage[];
}

/** Reads and checks both files; throws StateDamagedError on the first damage unless `repair`. */
export function readState(options: StateReadOptions): StateReadResult {
  const damage: Damage[] = [];
  const report = (d: Damage): void => {
    if (!options.repair) throw new StateDamagedError(d, options.repairCommand);
    damage.push(d);
  };
  const snapshot = readSnapshot(options.snapshotPath, options.onRecord, report);
  const journal = readJournal(options.journalPath, snapshot, options.onRecord, report);
  const snapshotNextSeq = snapshot.header?.nextSeq ?? 0;
  // All journal records already in the snapshot (a crash between the snapshot's
  // rename and the journal's truncation): the journal starts over at nextSeq.
  const journalStale = journal.lastSeq !== undefined && journal.lastSeq < snapshotNextSeq - 1;
  return {
    nextSeq: Math.max(snapshotNextSeq, (journal.lastSeq ?? -1) + 1),
    journalKeepBytes: journalStale ? 0 : journal.keepBytes,
    journalRecords: journalStale ? 0 : journal.records,
    skippedLines: journal.skippedLines,
    rewrite: snapshot.oldFormat || journal.oldFormat || journalStale || damage.length > 0,
    damage,
  };
}

interface SnapshotRead {
  exists: boolean;
  header: SnapshotHeader | undefined;
  oldFormat: boolean;
}

function readSnapshot(file: string, onRecord: (r: unknown) => void, report: (d: Damage) => void): SnapshotRead {
  const size = statSync(file, { throwIfNoEntry: false })?.size;
  if (size === undefined) return { exists: false, header: undefined, oldFormat: false };
  if (size === 0) {
    report({ file, offset: 0, line: 1, reason: 'the snapshot is empty (a complete one has a header and a trailer)' });
    return { exists: true, header: undefined, oldFormat: false };
  }
  let header: SnapshotHeader | undefined;
  let headerSeen = false;
  let records = 0;
  let trailer: FileLine | undefined;
  let end = { offset: 0, line: 0 };
  for (const line of readLines(file)) {
    end = { offset: line.offset + line.bytes.length + (line.complete ? 1 : 0), line: line.lineNo };
    if (!headerSeen && line.bytes[0] === 0x5b /* [ */)
      return { exists: true, header: undefined, oldFormat: readOldSnapshot(file, onRecord, report) };
    const at = { file, offset: line.offset, line: line.lineNo };
    if (trailer) {
      report({ ...at, reason: 'data after the snapshot trailer' });
      break;
    }
    if (!line.complete) {
      report({ ...at, reason: 'the last line has no newline: the snapshot was cut short' });
      break;
    }
    const checked = verifyLine(line.bytes);
    if (!checked.ok) {
      report({ ...at, reason: checked.reason });
      headerSeen = true;
      continue;
    }
    if (!headerSeen) {
      headerSeen = true;
      header = parseSnapshotHeader(checked.payload);
      if (!header) report({ ...at, reason: 'the first line is not a snapshot header' });
      if (header) continue;
    }
    const count = parseSnapshotTrailer(checked.payload);
    if (count !== undefined) {
      trailer = line;
      if (header && count !== header.count) report({ ...at, reason: `the trailer counts ${count} records, the header ${header.count}` });
      else if (count !== records)
        report({ ...at, reason: `the snapshot holds ${records} records, its trailer says ${count}: records are missing` });
      continue;
    }
    const record = parseJson(checked.payload);
    if (record === undefined) report({ ...at, reason: 'a checksummed line that is not a JSON record' });
    else {
      records++;
      onRecord(record);
    }
  }
  if (!trailer)
    report({
      file,
      offset: end.offset,
      line: end.line + 1,
      reason: `the snapshot ends without its trailer after ${records} records: it was cut short`,
    });
  return { exists: true, header, oldFormat: false };
}

/** A snapshot from a release before checksums: one JSON array. Returns true (it is old-format). */
function readOldSnapshot(file: string, onRecord: (r: unknown) => void, report: (d: Damage) => void): true {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const position = Number(/position (\d+)/.exec((err as Error).message)?.[1] ?? 0);
    report({
      file,
      offset: position,
      line: 1,
      reason: `not valid JSON (${(err as Error).message}); a snapshot from before checksums is one JSON array`,
    });
    return true;
  }
  if (!Array.isArray(parsed)) {
    report({ file, offset: 0, line: 1, reason: 'not a JSON array of records' });
    return true;
  }
  // One at a time: push(...array) overflows the stack above ~125k records.
  for (const record of parsed) onRecord(record);
  return true;
}

interface JournalRead {
  lastSeq: number | undefined;
  keepBytes: number;
  records: number;
  skippedLines: number;
  oldFormat: boolean;
}

function readJournal(file: string, snapshot: SnapshotRead, onRecord: (r: unknown) => void, report: (d: Damage) => void): JournalRead {
  const out: JournalRead = { lastSeq: undefined, keepBytes: 0, records: 0, skippedLines: 0, oldFormat: false };
  if (!statSync(file, { throwIfNoEntry: false })) return out;
  const snapshotNextSeq = snapshot.header?.nextSeq;
  let first = true;
  // After a damaged line (repair only), the next intact one is taken as is.
  let resync = false;
  for (const line of readLines(file)) {
    if (!line.complete) {
      // An append cut by a crash: it was never acknowledged.
      out.skippedLines++;
      break;
    }
    out.keepBytes = line.offset + line.bytes.length + 1;
    if (first && line.bytes[0] === 0x7b /* { */) out.oldFormat = true;
    const at = { file, offset: line.offset, line: line.lineNo };
    if (out.oldFormat) {
      // Never mixed: an old journal is rewritten at the first start that reads it.
      if (isCheckedLine(line.bytes)) {
        report({ ...at, reason: 'a checksummed record in a journal whose first line has no checksum' });
        continue;
      }
      // Old format, read as the release that wrote it did: a torn line that
      // release glued a newline to is skipped, not fatal.
      const record = line.bytes.length > 0 ? parseJson(line.bytes.toString('utf8')) : undefined;
      if (record === undefined) out.skippedLines++;
      else {
        onRecord(record);
        out.records++;
      }
      first = false;
      continue;
    }
    const checked = verifyLine(line.bytes);
    const payload = checked.ok ? parseJournalPayload(checked.payload) : checked;
    if (!payload.ok) {
      report({ ...at, reason: payload.reason });
      resync = true;
      first = false;
      continue;
    }
    const { seq } = payload;
    if (first) {
      if (snapshotNextSeq !== undefined && seq > snapshotNextSeq)
        report({
          ...at,
          reason: `the journal starts at record ${seq} but the snapshot ends before record ${snapshotNextSeq}: records ${snapshotNextSeq}-${seq - 1} are missing`,
        });
      else if (!snapshot.exists && seq !== 0)
        report({
          ...at,
          reason: `the journal starts at record ${seq} and there is no snapshot: records 0-${seq - 1} are missing (was the snapshot deleted?)`,
        });
    } else if (!resync && out.lastSeq !== undefined && seq !== out.lastSeq + 1) {
      report({
        ...at,
        reason:
          seq > out.lastSeq + 1
            ? `records ${out.lastSeq + 1}-${seq - 1} are missing (a gap)`
            : `record ${seq} follows record ${out.lastSeq} (out of order)`,
      });
    }
    first = false;
    resync = false;
    const record = parseJson(payload.json);
    if (record === undefined) {
      report({ ...at, reason: 'a checksummed line that is not a JSON record' });
      resync = true;
      continue;
    }
    out.lastSeq = seq;
    out.records++;
    // Records queued when the snapshot was taken are in it already.
    if (snapshotNextSeq === undefined || seq >= snapshotNextSeq) onRecord(record);
  }
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
