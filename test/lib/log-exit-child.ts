// A process that logs two lines through bootfarm's logger and exits the way
// `bootfarm serve` does after "stopped". Its one thread-pool thread
// (UV_THREADPOOL_SIZE=1, set by the test) is busy, as it is while bootfarm
// reads files for transfers, so the first line's asynchronous write is still
// queued when the process decides to exit.
import { pbkdf2 } from 'node:crypto';
import { createLogger, endLog } from '../../server/log.js';

const logger = createLogger('info');
pbkdf2('busy', 'thread pool', 200_000, 32, 'sha256', () => undefined);
logger.info('transfers in flight finished');
logger.info('stopped');
void endLog(logger, 10_000).then(() => process.exit(0));
