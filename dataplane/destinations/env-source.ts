// Destinations from an environment variable holding a JSON list (SAP Cloud SDK convention: the variable
// `destinations`). Entries may use SAP property names or the SDK's camelCase fields. Read once at start.
import { readFileSync } from 'node:fs';
import { DestinationError, describeJsonError } from './errors.js';
import { destinationList, notAList, parseDestinations, type ParseResult } from './parse.js';

export const DEFAULT_ENV_VAR = 'destinations';

export interface EnvSourceOptions {
  /** where relative KeyStoreLocation / TrustStoreLocation files are looked up (default: the working directory) */
  baseDir?: string;
  readFile?: (path: string) => Buffer;
}

/** `environment variable "destinations"`: the source label in messages. */
export function envSourceLabel(varName: string): string {
  return `environment variable ${JSON.stringify(varName)}`;
}

/**
 * Parses the variable. Unset or blank: no destinations, no errors. Invalid JSON: one error that says
 * where, never what (the value holds secrets).
 */
export function destinationsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  varName: string = DEFAULT_ENV_VAR,
  options: EnvSourceOptions = {},
): ParseResult {
  const source = envSourceLabel(varName);
  const value = env[varName];
  if (value === undefined || value.trim() === '') return { destinations: [], errors: [] };
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch (error) {
    return {
      destinations: [],
      errors: [
        new DestinationError(
          source,
          `not valid JSON (${describeJsonError(error)}); expected a JSON list of destinations (the value is not shown: it may hold secrets)`,
        ),
      ],
    };
  }
  const list = destinationList(data);
  if (!list) return { destinations: [], errors: [notAList(data, source)] };
  return parseDestinations(list, {
    source,
    ...(options.baseDir !== undefined ? { baseDir: options.baseDir } : {}),
    readFile: options.readFile ?? ((path) => readFileSync(path)),
  });
}
