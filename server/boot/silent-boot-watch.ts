// The timer behind silent-bootloader hints: each bootloader fetch on a node's
// timeline (re)arms one timer for that node; when it fires with nothing from the
// bootloader since, the node's timeline gets a `boot.hint` event (the API's
// /nodes/:mac/events, `bootfarm node show`, the dashboard) and the log a warning.
// The decision is server/boot/silent-boot-hint.ts. Timelines are kept for
// inventory nodes only, so the timers are bounded by the inventory.
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { EventFeed } from '../http/event-feed.js';
import type { EffectiveNode } from '../inventory/effective.js';
import type { Store } from '../store/store.js';
import { classifyBootloader, peCpu, silentBootHint } from './silent-boot-hint.js';

const HINT_EVENT = 'boot.hint';

export interface SilentBootWatchDeps {
  store: Pick<Store, 'events' | 'recordEvent'>;
  feed: EventFeed;
  /** tftp.root: where the bootloaders served are read from (their first bytes say their CPU). */
  tftpRoot: string;
  waitMs: number;
  nodeByMac: (mac: string) => EffectiveNode | undefined;
  logger: Logger;
}

/** The first 4 KiB of tftpRoot/<file> (enough for the PE header), or undefined when it is not a file there. */
function readHead(tftpRoot: string, file: string): Buffer | undefined {
  const full = path.resolve(tftpRoot, file);
  if (!full.startsWith(path.resolve(tftpRoot) + path.sep)) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(full, 'r');
    const buf = Buffer.alloc(4096);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class SilentBootWatch {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: SilentBootWatchDeps) {
    this.unsubscribe = deps.feed.subscribe((item) => {
      if (item.kind !== 'node') return;
      const { event } = item;
      if (event.type !== 'tftp.file' && event.type !== 'http.file') return;
      if (typeof event.detail?.path !== 'string' || !classifyBootloader(event.detail.path)) return;
      this.arm(event.mac);
    });
  }

  private arm(mac: string): void {
    clearTimeout(this.timers.get(mac));
    const timer = setTimeout(() => {
      this.timers.delete(mac);
      this.check(mac);
    }, this.deps.waitMs);
    // A pending hint never keeps the process alive.
    timer.unref();
    this.timers.set(mac, timer);
  }

  private check(mac: string): void {
    const events = this.deps.store.events(mac);
    let served = events.length - 1;
    while (served >= 0) {
      const p = events[served]?.detail?.path;
      if ((events[served]?.type === 'tftp.file' || events[served]?.type === 'http.file') && typeof p === 'string' && classifyBootloader(p))
        break;
      served--;
    }
    if (served < 0) return;
    const file = String(events[served]?.detail?.path);
    const head = readHead(this.deps.tftpRoot, file);
    const hint = silentBootHint({
      events,
      served,
      fileCpu: head ? peCpu(head) : undefined,
      secureBoot: this.deps.nodeByMac(mac)?.secureBoot ?? false,
    });
    if (!hint) return;
    this.deps.logger.warn({ mac, hint: hint.kind, file, waitedMs: this.deps.waitMs }, hint.message);
    this.deps.store.recordEvent({
      at: new Date().toISOString(),
      mac,
      type: HINT_EVENT,
      detail: { hint: hint.kind, file, message: hint.message },
    });
  }

  stop(): Promise<void> {
    this.unsubscribe();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    return Promise.resolve();
  }
}
