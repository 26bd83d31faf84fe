// An append-only journal of checksummed, numbered records with group commit,
// plus an atomic snapshot (formats: server/store/record-format.ts).
// append() resolves only after the record is written (and, with `sync`, on stable
// storage), so a caller that waits before answering a client loses nothing to
// kill -9. Records appended while a write is in flight share the next write: many
// ACKs cost one disk flush.
// A write that fails (ENOSPC, EIO) rejects the appends it carried, marks the log
// unhealthy (health(), the observer) and is retried with backoff; the records stay
// queued (the caller's in-memory state already has them), so nothing is lost once
// the disk takes writes again. No failure here is ever an unhandled rejection.
import { closeSync, copyFileSync, existsSync, fsyncSync, openSync, constants as fsConstants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { journalLine, snapshotHeaderLine, snapshotRecordLine, snapshotTrailerLine } from './record-format.js';
import { ensurePrivateDir, ensurePrivateFile, PRIVATE_FILE_MODE } from './private-files.js';
import { readState, type Damage } from './state-reader.js';

export interface DurableLogOptions<T> {
  dir: string;
  name: string;
  /** Compact into a snapshot once the journal holds this many records. */
  compactAfter: number;
  /** All records needed to rebuild the current state, for the snapshot. */
  snapshot: () => T[];
  /**
   * true: a record is on stable storage before append() resolves (the journal is
   * opened O_DSYNC, so each batch is one durable write): survives a power cut.
   * false: it is in the kernel before append() resolves: survives kill -9 of
   * bootfarm, not a power cut (the durability of Kea's default memfile).
   * Compaction is fsynced either way: it replaces the snapshot and empties the journal.
   */
  sync: boolean;
  /** Keep the intact records of damaged files, move those files aside, and start. */
  repair?: boolean | undefined;
  /** What the operator runs to repair, quoted in the error that refuses a damaged state. */
  repairCommand?: string | undefined;
  observer?: DurableLogObserver | undefined;
}

interface DurableLogObserver {
  writeError(operation: 'journal' | 'compaction', err: Error, retryInMs: number): void;
  healthChanged(health: LogHealth): void;
}

export type LogHealth = { healthy: true } | { healthy: false; reason: string; code?: string | undefined; since: string };

export interface LoadedLog {
  /** Lines that could not be used: a torn last write after a crash (never acknowledged). */
  skippedLines: number;
  /** What open() changed on disk to make the state private (modes tightened). */
  permissionNotes: string[];
  /** With `repair`: the damage dropped, and where each damaged file was moved. */
  repaired: { damage: Damage[]; movedAside: Array<{ file: string; to: string }> } | undefined;
  /** The files were rewritten at open: an older release's format, or a journal already inside the snapshot. */
  rewritten: boolean;
}

interface QueuedRecord {
  seq: number;
  line: string;
  waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;
const SNAPSHOT_CHUNK = 1 << 20;

export class DurableLog<T> {
  private handle: FileHandle | undefined;
  private queue: QueuedRecord[] = [];
  private flushing: Promise<void> | undefined;
  private nextSeq = 0;
  /** Bytes of the journal known to be written whole: a failed write is cut back to this. */
  private journalBytes = 0;
  private journalRecords = 0;
  /** Set when queued records were dropped (too many while the disk failed): only a snapshot may follow. */
  private compactionWanted = false;
  /** A journal write failed part-way: cut the journal back to journalBytes before the next one. */
  private journalMayBeTorn = false;
  /** open() found an old format, a stale journal or repaired damage: finishOpen() rewrites the state. */
  private rewriteOnOpen = false;
  private state: LogHealth = { healthy: true };
  private closing = false;
  private wakeRetry: (() => void) | undefined;
  private readonly journalPath: string;
  private readonly snapshotPath: string;

  constructor(private readonly options: DurableLogOptions<T>) {
    this.journalPath = path.join(options.dir, `${options.name}.journal`);
    this.snapshotPath = path.join(options.dir, `${options.name}.snapshot`);
  }

  /**
   * Reads and checks the snapshot then the journal, handing each record to
   * `onRecord`, and opens the journal for appending. Throws StateDamagedError
   * (file, offset, line) on damage unless `repair`. Call finishOpen() once the
   * records are applied.
   */
  async open(onRecord: (record: T) => void): Promise<LoadedLog> {
    const permissionNotes = ensurePrivateDir(this.options.dir);
    const legacySnapshot = path.join(this.options.dir, `${this.options.name}.snapshot.json`);
    for (const file of [this.journalPath, this.snapshotPath, legacySnapshot]) permissionNotes.push(...ensurePrivateFile(file));
    const read = readState({
      snapshotPath: this.pickSnapshot(legacySnapshot),
      journalPath: this.journalPath,
      repair: this.options.repair === true,
      repairCommand: this.options.repairCommand ?? 'bootfarm serve --repair --config <your configuration file>',
      onRecord: (record) => onRecord(record as T),
    });
    let repaired: LoadedLog['repaired'];
    if (read.damage.length > 0) {
      // Copied aside first and replaced by finishOpen()'s snapshot after: a crash in
      // between leaves the damaged file in place for the next --repair.
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const movedAside = [...new Set(read.damage.map((d) => d.file))].map((file) => {
        const to = `${file}.damaged-${stamp}`;
        copyFileSync(file, to);
        ensurePrivateFile(to);
        return { file, to };
      });
      repaired = { damage: read.damage, movedAside };
    }
    this.nextSeq = read.nextSeq;
    this.journalRecords = read.journalRecords;
    this.rewriteOnOpen = read.rewrite;
    const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fsConstants;
    this.handle = await open(this.journalPath, O_WRONLY | O_APPEND | O_CREAT | (this.options.sync ? O_DSYNC : 0), PRIVATE_FILE_MODE);
    // A torn tail would glue onto the next record: cut it off.
    if ((await this.handle.stat()).size !== read.journalKeepBytes) {
      await this.handle.truncate(read.journalKeepBytes);
      await this.handle.datasync();
    }
    this.journalBytes = read.journalKeepBytes;
    return { skippedLines: read.skippedLines, permissionNotes, repaired, rewritten: read.rewrite && !repaired };
  }

  /** Rewrites the state at once when open() found an old format, a stale journal or repaired damage. */
  async finishOpen(): Promise<void> {
    if (this.rewriteOnOpen) await this.compactNow();
    this.rewriteOnOpen = false;
    // The older release's snapshot, once a current one exists (a crash may have left both): it holds secrets too.
    if (existsSync(this.snapshotPath))
      await unlink(path.join(this.options.dir, `${this.options.name}.snapshot.json`)).catch(() => undefined);
  }

  /** state.snapshot, or the state.snapshot.json of a release before checksums. */
  private pickSnapshot(legacy: string): string {
    return existsSync(this.snapshotPath) ? this.snapshotPath : legacy;
  }

  health(): LogHealth {
    return this.state;
  }

  /** Appends a record; resolves once it is durable, rejects if the write failed (it is retried anyway). */
  append(record: T): Promise<void> {
    const entry = this.enqueue(record);
    const done = new Promise<void>((resolve, reject) => {
      entry.waiter = { resolve, reject };
    });
    // While the disk fails, say so at once instead of holding the caller for a retry.
    if (!this.state.healthy) this.settle(entry, new Error(`state not saved: ${this.state.reason}`));
    this.scheduleFlush();
    return done;
  }

  /** Appends a record nobody waits for (events); it rides along with the next flush. */
  appendLater(record: T): void {
    this.enqueue(record);
    this.scheduleFlush();
  }

  private enqueue(record: T): QueuedRecord {
    const seq = this.nextSeq++;
    const entry: QueuedRecord = { seq, line: journalLine(seq, JSON.stringify(record)), waiter: undefined };
    this.queue.push(entry);
    // A disk that fails for long must not grow the queue without end: the snapshot,
    // taken from memory, holds every dropped record once it can be written.
    if (!this.state.healthy && this.queue.length > this.options.compactAfter) {
      for (const dropped of this.queue) this.settle(dropped, new Error(`state not saved: ${this.state.reason}`));
      this.queue = [];
      this.compactionWanted = true;
    }
    return entry;
  }

  private settle(entry: QueuedRecord, err?: Error): void {
    const waiter = entry.waiter;
    entry.waiter = undefined;
    if (!waiter) return;
    if (err) waiter.reject(err);
    else waiter.resolve();
  }

  private scheduleFlush(): void {
    if (this.flushing || !this.handle) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flushLoop())
      .catch(() => undefined) // flushLoop handles its own errors; this only guards the chain
      .finally(() => {
        this.flushing = undefined;
        if (!this.closing && this.hasWork()) this.scheduleFlush();
      });
  }

  private hasWork(): boolean {
    return this.queue.length > 0 || this.compactionWanted || this.journalRecords >= this.options.compactAfter;
  }

  private async flushLoop(): Promise<void> {
    let retryMs = FIRST_RETRY_MS;
    while (this.hasWork()) {
      let operation: 'journal' | 'compaction' = 'journal';
      try {
        if (!this.compactionWanted && this.queue.length > 0) await this.writeQueued();
        operation = 'compaction';
        if (this.compactionWanted || this.journalRecords >= this.options.compactAfter) await this.compactNow();
        this.markHealthy();
        retryMs = FIRST_RETRY_MS;
      } catch (err) {
        this.markUnhealthy(operation, err as Error, retryMs);
        if (this.closing) return;
        await this.sleep(retryMs);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    }
  }

  private async writeQueued(): Promise<void> {
    const handle = this.requireHandle();
    const batch = this.queue;
    this.queue = [];
    try {
      // A write that failed part-way left a partial line: cut it before appending.
      if (this.journalMayBeTorn) {
        await handle.truncate(this.journalBytes);
        this.journalMayBeTorn = false;
      }
      const bytes = Buffer.from(batch.map((e) => e.line).join(''));
      let written = 0;
      // On the thread pool in both modes: a synchronous write for syncWrites false
      // saved no CPU measurably and lost more perfdhcp replies on a busy disk, where a
      // buffered ext4 append can block (bench/RESULTS.md, DHCP 2026-12-07).
      while (written < bytes.length) written += (await handle.write(bytes, written, bytes.length - written)).bytesWritten;
      this.journalBytes += bytes.length;
      this.journalRecords += batch.length;
    } catch (err) {
      this.journalMayBeTorn = true;
      for (const entry of batch) this.settle(entry, err as Error);
      // Kept, in order, ahead of what was queued meanwhile: retried as they are.
      this.queue = batch.concat(this.queue);
      throw err;
    }
    for (const entry of batch) this.settle(entry);
  }

  /**
   * Writes the snapshot atomically (0600 tmp, fsync, rename, fsync dir), then
   * empties the journal. Always fsynced, whatever `sync` says: a snapshot that
   * is not on disk when the journal is emptied loses everything in both.
   */
  private async compactNow(): Promise<void> {
    const handle = this.requireHandle();
    // Taken in one synchronous step: memory holds exactly the records below nextSeq.
    const nextSeq = this.nextSeq;
    const records = this.options.snapshot();
    const tmp = `${this.snapshotPath}.tmp`;
    await unlink(tmp).catch(() => undefined);
    const fh = await open(tmp, 'wx', PRIVATE_FILE_MODE);
    try {
      await fh.write(snapshotHeaderLine({ nextSeq, count: records.length }));
      let chunk: string[] = [];
      let chunkLength = 0;
      for (const record of records) {
        const line = snapshotRecordLine(JSON.stringify(record));
        chunk.push(line);
        chunkLength += line.length;
        if (chunkLength >= SNAPSHOT_CHUNK) {
          await writeAll(fh, chunk.join(''));
          chunk = [];
          chunkLength = 0;
        }
      }
      chunk.push(snapshotTrailerLine(records.length));
      await writeAll(fh, chunk.join(''));
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    await rename(tmp, this.snapshotPath);
    syncDirectory(this.options.dir);
    this.journalMayBeTorn = true;
    await handle.truncate(0);
    await handle.datasync();
    this.journalMayBeTorn = false;
    this.journalBytes = 0;
    this.journalRecords = 0;
    this.compactionWanted = false;
    // Records queued before the snapshot was taken are in it: durable now.
    const covered = this.queue.filter((e) => e.seq < nextSeq);
    this.queue = this.queue.filter((e) => e.seq >= nextSeq);
    for (const entry of covered) this.settle(entry);
  }

  private markUnhealthy(operation: 'journal' | 'compaction', err: Error, retryInMs: number): void {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = `${operation} write to ${this.options.dir} failed${code ? ` (${code})` : ''}: ${err.message}`;
    const wasHealthy = this.state.healthy;
    this.state = { healthy: false, reason, code, since: wasHealthy ? new Date().toISOString() : (this.state as { since: string }).since };
    this.options.observer?.writeError(operation, err, retryInMs);
    if (wasHealthy) this.options.observer?.healthChanged(this.state);
  }

  private markHealthy(): void {
    if (this.state.healthy) return;
    this.state = { healthy: true };
    this.options.observer?.healthChanged(this.state);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeRetry = done;
    }).finally(() => {
      this.wakeRetry = undefined;
    });
  }

  private requireHandle(): FileHandle {
    if (!this.handle) throw new Error(`${this.journalPath} is not open`);
    return this.handle;
  }

  /** Flushes what is queued (one more attempt if the disk is failing), then closes. */
  async close(): Promise<void> {
    this.closing = true;
    this.wakeRetry?.();
    while (this.flushing) await this.flushing;
    if (this.hasWork() && this.handle) await this.flushLoop();
    for (const entry of this.queue) this.settle(entry, new Error(`state not saved: ${this.options.dir} is closing and the write failed`));
    this.queue = [];
    await this.handle?.close();
    this.handle = undefined;
  }
}

async function writeAll(fh: FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  let written = 0;
  while (written < bytes.length) written += (await fh.write(bytes, written, bytes.length - written)).bytesWritten;
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
