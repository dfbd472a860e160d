// The logging surface the DNS server needs: a subset of pino's Logger, so a pino logger (or a child
// of one) can be passed as is.

export interface DnsLogger {
  child(bindings: Record<string, unknown>): DnsLogger;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  /** pino's: lets the hot path skip building debug lines nobody will see. */
  isLevelEnabled?(level: string): boolean;
}

export const silentLogger: DnsLogger = {
  child: () => silentLogger,
  debug: () => {},
  info: () => {},
  warn: () => {},
  isLevelEnabled: () => false,
};
