// The process logger: pino, one JSON line per event, to stdout.
import { pino, type Logger } from 'pino';

interface LogOutput {
  /** Resolves once every line written so far has reached stdout (or after timeoutMs); later lines are dropped. */
  end(timeoutMs: number): Promise<void>;
}
const outputs = new WeakMap<Logger, LogOutput>();

export function createLogger(level: string): Logger {
  // Asynchronous writes keep logging off the packet path; endLog() is the way out.
  const stdout = pino.destination({ dest: 1, sync: false });
  let ended = false;
  // A line logged after the end (a late timer) is dropped: the ended stream would throw.
  const destination = { write: (line: string) => void (ended || stdout.write(line)) };
  const logger = pino({ level, base: { service: 'bootfarm' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  outputs.set(logger, {
    end: (timeoutMs) =>
      new Promise((resolve) => {
        if (ended) return resolve();
        ended = true;
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        stdout.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        stdout.end();
      }),
  });
  return logger;
}

/**
 * Call before process.exit: resolves once every line logged so far has been
 * written to stdout, or after `timeoutMs`. Exiting at once is not enough: pino's
 * exit hook writes the buffered lines synchronously while an earlier
 * asynchronous write may still sit in the thread pool, so the last lines could
 * land out of order (seen: "transfers in flight finished" after "stopped") or
 * not at all. Lines logged afterwards are dropped.
 */
export function endLog(logger: Logger, timeoutMs = 2000): Promise<void> {
  return outputs.get(logger)?.end(timeoutMs) ?? Promise.resolve();
}
