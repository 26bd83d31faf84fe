// The process logger: pino, one JSON line per event, to stdout.
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'bootfarm' }, timestamp: pino.stdTimeFunctions.isoTime });
}
