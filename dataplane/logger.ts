// One JSON line per event on stdout (pino).
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/**
 * stdout, buffered: the access log is one line per request, and a write(2) per line cost more than
 * the rest of a small request's logging. Lines go out in batches of 4 KiB, or at the latest every
 * 100 ms. pino writes what is left synchronously on exit (its on-exit hook for async destinations);
 * a broken pipe (EPIPE) stops logging instead of failing.
 */
function bufferedStdout(): DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 });
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return pino(options, destination ?? bufferedStdout());
}
