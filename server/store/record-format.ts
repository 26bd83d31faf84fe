// The line formats of the state files (pure functions, no I/O).
// Every line is `<crc32 of the payload, 8 hex> <payload>`, so a bit flip or a
// cut anywhere in a record is caught on load instead of replayed.
//   journal:  payload `<seq> <record JSON>`; seq counts every record ever appended,
//             so a missing line is a gap, not a silent loss.
//   snapshot: a header (payload `#snapshot {"version":2,"nextSeq":N,"count":C}`),
//             C record lines (payload: the record JSON), then a trailer
//             (payload `#end {"count":C}`): a snapshot cut short has no trailer.
// Files written by releases before this format hold bare JSON: a journal of
// `{...}` lines, a snapshot that is one JSON array. They are read once and
// rewritten in this format at the next start (see server/store/state-reader.ts).
import { crc32 } from 'node:zlib';

const SNAPSHOT_VERSION = 2;
const SNAPSHOT_HEADER = '#snapshot ';
const SNAPSHOT_TRAILER = '#end ';

export interface SnapshotHeader {
  version: number;
  /** The seq of the first record NOT in the snapshot: journal records below it are already in it. */
  nextSeq: number;
  count: number;
}

function checksum(payload: string | Buffer): string {
  return crc32(payload).toString(16).padStart(8, '0');
}

function checked(payload: string): string {
  return `${checksum(payload)} ${payload}\n`;
}

export function journalLine(seq: number, recordJson: string): string {
  return checked(`${seq} ${recordJson}`);
}

export function snapshotHeaderLine(header: Omit<SnapshotHeader, 'version'>): string {
  return checked(`${SNAPSHOT_HEADER}${JSON.stringify({ version: SNAPSHOT_VERSION, nextSeq: header.nextSeq, count: header.count })}`);
}

export function snapshotRecordLine(recordJson: string): string {
  return checked(recordJson);
}

export function snapshotTrailerLine(count: number): string {
  return checked(`${SNAPSHOT_TRAILER}${JSON.stringify({ count })}`);
}

/** A line's payload once its checksum matched, or why it did not. */
export type CheckedLine = { ok: true; payload: string } | { ok: false; reason: string };

const HEX8 = /^[0-9a-f]{8} /;

/** Whether a line is in the checksummed format (old-format lines start with `{` or `[`). */
export function isCheckedLine(line: Buffer): boolean {
  return line.length >= 9 && HEX8.test(line.subarray(0, 9).toString('latin1'));
}

/** Verifies one line (without its newline) against its checksum. */
export function verifyLine(line: Buffer): CheckedLine {
  if (!isCheckedLine(line)) return { ok: false, reason: 'not a checksummed record (expected 8 hex digits, a space, then the record)' };
  const payload = line.subarray(9);
  if (checksum(payload) !== line.subarray(0, 8).toString('latin1'))
    return { ok: false, reason: 'checksum mismatch (the record was altered or cut)' };
  return { ok: true, payload: payload.toString('utf8') };
}

export type JournalPayload = { ok: true; seq: number; json: string } | { ok: false; reason: string };

export function parseJournalPayload(payload: string): JournalPayload {
  const space = payload.indexOf(' ');
  const seq = Number(payload.slice(0, space));
  if (space <= 0 || !Number.isSafeInteger(seq) || seq < 0) return { ok: false, reason: 'no sequence number before the record' };
  return { ok: true, seq, json: payload.slice(space + 1) };
}

export function parseSnapshotHeader(payload: string): SnapshotHeader | undefined {
  if (!payload.startsWith(SNAPSHOT_HEADER)) return undefined;
  try {
    const h = JSON.parse(payload.slice(SNAPSHOT_HEADER.length)) as Partial<SnapshotHeader>;
    if (h.version !== SNAPSHOT_VERSION || !Number.isSafeInteger(h.nextSeq) || !Number.isSafeInteger(h.count)) return undefined;
    return h as SnapshotHeader;
  } catch {
    return undefined;
  }
}

/** The count of a snapshot trailer, or undefined when the payload is not one. */
export function parseSnapshotTrailer(payload: string): number | undefined {
  if (!payload.startsWith(SNAPSHOT_TRAILER)) return undefined;
  try {
    const t = JSON.parse(payload.slice(SNAPSHOT_TRAILER.length)) as { count?: unknown };
    return Number.isSafeInteger(t.count) ? (t.count as number) : undefined;
  } catch {
    return undefined;
  }
}
