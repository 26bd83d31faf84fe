// The last line of defence: an error no code path caught. A rejected promise is
// one request's failure, so it is logged and counted and bootfarm keeps serving.
// An uncaught exception may have left a half-updated structure behind, so it is
// logged and the process exits non-zero for systemd or docker to restart it. No
// error is ever silent.
import type { Logger } from 'pino';
import { endLog } from './log.js';
import type { Metrics } from './metrics.js';

/** Exit status after an uncaught exception (EX_SOFTWARE in sysexits.h). */
const EXIT_UNCAUGHT = 70;

export function installProcessGuards(logger: Logger, metrics: Pick<Metrics, 'unhandledErrors'> | undefined): void {
  process.on('unhandledRejection', (reason: unknown) => {
    metrics?.unhandledErrors.inc({ kind: 'rejection' });
    const err = reason instanceof Error ? reason : new Error(String(reason));
    logger.error(
      { err: err.message, stack: err.stack },
      'unhandled rejection: a request failed without a handler of its own; still serving',
    );
  });
  process.on('uncaughtException', (err: Error) => {
    metrics?.unhandledErrors.inc({ kind: 'exception' });
    logger.fatal(
      { err: err.message, stack: err.stack },
      `uncaught exception: exiting with status ${EXIT_UNCAUGHT} so the supervisor restarts bootfarm`,
    );
    // The fatal line must reach the journal; waiting for it is bounded.
    void endLog(logger, 500).then(() => process.exit(EXIT_UNCAUGHT));
  });
}
