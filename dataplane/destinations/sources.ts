// Wires the configured sources into one registry: each destinations file (watched), then the
// environment variable (read once). Later sources win on equal names; see registry.ts.
import type { Logger } from '../logger.js';
import { DEFAULT_ENV_VAR, destinationsFromEnv, envSourceLabel } from './env-source.js';
import { watchDestinationsFile, type DestinationsFileWatcher } from './file-source.js';
import { DestinationRegistry } from './registry.js';

export interface DestinationSourcesOptions {
  /** destinations files, lowest precedence first */
  files?: string[];
  /** the environment variable with a JSON list; false: do not read one. Default `destinations`. */
  envVar?: string | false;
  env?: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  debounceMs?: number;
  pollIntervalMs?: number;
}

export interface DestinationSources {
  registry: DestinationRegistry;
  /** every file has been read as a list at least once (the env variable is read synchronously) */
  loaded(): boolean;
  close(): void;
}

export function startDestinationSources(options: DestinationSourcesOptions): DestinationSources {
  const { logger } = options;
  const files = options.files ?? [];
  const envVar = options.envVar === undefined ? DEFAULT_ENV_VAR : options.envVar;
  const envLabel = envVar === false ? undefined : envSourceLabel(envVar);
  const registry = new DestinationRegistry([...files, ...(envLabel ? [envLabel] : [])]);

  let reportedOverrides = '';
  registry.onChange((change) => {
    logger.info({ ...change, destinations: registry.names() }, 'destinations changed');
    const overrides = registry.overrides();
    const text = JSON.stringify(overrides);
    if (text !== reportedOverrides) {
      reportedOverrides = text;
      for (const o of overrides)
        logger.warn(
          { destination: o.name, source: o.source, hidden: o.hidden },
          `destination "${o.name}" from ${o.source} overrides the one from ${o.hidden.join(', ')}`,
        );
    }
  });

  const watchers: DestinationsFileWatcher[] = files.map((file) =>
    watchDestinationsFile(file, {
      logger,
      onChange: (destinations, errors) => registry.update(file, destinations, errors),
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
    }),
  );

  if (envVar !== false && envLabel) {
    const { destinations, errors } = destinationsFromEnv(options.env ?? process.env, envVar);
    for (const error of errors)
      logger.error(
        { source: envLabel, destination: error.destination, property: error.property },
        String(error),
      );
    registry.update(envLabel, destinations, errors);
  }

  return {
    registry,
    loaded: () => watchers.every((w) => w.loaded()),
    close: () => watchers.forEach((w) => w.close()),
  };
}
