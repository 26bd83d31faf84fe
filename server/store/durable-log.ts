// An append-only JSON-lines journal with group commit, plus an atomic snapshot.
// append() resolves only after the record is written (and, with `sync`, on stable
// storage), so a caller that waits before answering a client loses nothing to
// kill -9. Records appended while a write is in flight share the next write: many
// ACKs cost one disk flush.
// Replay must be idempotent (records are upserts), because a snapshot may already
// contain records that are still queued for the journal.
import { mkdirSync, readFileSync, openSync, fsyncSync, closeSync, constants as fsConstants } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

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
   */
  sync: boolean;
}

export interface LoadedLog<T> {
  records: T[];
  /** Lines that could not be parsed: a torn last write after a crash. */
  skippedLines: number;
}

export class DurableLog<T> {
  private handle: FileHandle | undefined;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private flushing: Promise<void> | undefined;
  private journalRecords = 0;
  private readonly journalPath: string;
  private readonly snapshotPath: string;

  constructor(private readonly options: DurableLogOptions<T>) {
    this.journalPath = path.join(options.dir, `${options.name}.journal`);
    this.snapshotPath = path.join(options.dir, `${options.name}.snapshot.json`);
  }

  /** Reads the snapshot then the journal, and opens the journal for appending. */
  async open(): Promise<LoadedLog<T>> {
    mkdirSync(this.options.dir, { recursive: true });
    const records: T[] = [];
    let skippedLines = 0;
    try {
      records.push(...(JSON.parse(readFileSync(this.snapshotPath, 'utf8')) as T[]));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${this.snapshotPath}: ${(err as Error).message}`);
    }
    let journal = '';
    try {
      journal = readFileSync(this.journalPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of journal.split('\n')) {
      if (!line) continue;
      try {
        records.push(JSON.parse(line) as T);
        this.journalRecords++;
      } catch {
        skippedLines++;
      }
    }
    const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fsConstants;
    this.handle = await open(this.journalPath, O_WRONLY | O_APPEND | O_CREAT | (this.options.sync ? O_DSYNC : 0), 0o600);
    // A torn tail would glue onto the next record; start on a fresh line.
    if (journal.length > 0 && !journal.endsWith('\n')) await this.handle.write('\n');
    return { records, skippedLines };
  }

  /** Appends a record; resolves once it is durable. */
  append(record: T): Promise<void> {
    this.pending.push(`${JSON.stringify(record)}\n`);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.scheduleFlush();
    return done;
  }

  /** Appends a record nobody waits for (events); it rides along with the next flush. */
  appendLater(record: T): void {
    this.append(record).catch(() => undefined);
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop()).finally(() => {
      this.flushing = undefined;
      if (this.pending.length > 0) this.scheduleFlush();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.join('');
      const count = this.pending.length;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      try {
        if (!this.handle) throw new Error(`${this.journalPath} is not open`);
        await this.handle.write(batch);
        this.journalRecords += count;
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err as Error);
      }
      if (this.journalRecords >= this.options.compactAfter) await this.compact();
    }
  }

  /** Writes the snapshot atomically (tmp, fsync, rename, fsync dir), then empties the journal. */
  async compact(): Promise<void> {
    const tmp = `${this.snapshotPath}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(this.options.snapshot()));
      if (this.options.sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.snapshotPath);
    if (this.options.sync) syncDirectory(this.options.dir);
    await this.handle?.truncate(0);
    if (this.options.sync) await this.handle?.datasync();
    this.journalRecords = 0;
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.handle?.close();
    this.handle = undefined;
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
