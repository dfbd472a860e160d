// A destinations file (YAML or JSON), reloaded when it changes.
//
// Change detection: fs.watch on the file's folder (any event, so editors that write a temp file and
// rename it, and Kubernetes ConfigMap volumes that swap a `..data` symlink, are seen), debounced by
// 100 ms, plus a poll every 2 s as a fallback (network file systems, a folder that did not exist yet,
// key store files elsewhere). Both only re-read the file and the key / trust store files it uses and
// compare a SHA-256 over their contents, so nothing is reloaded when nothing changed.
//
// Reload rules:
//   - file unreadable, empty, or not YAML/JSON, or not a list: the whole reload is rejected, the last
//     good set stays, the error is reported (a half-written file never removes destinations);
//   - otherwise every valid destination loads, every invalid one is reported, and an invalid one that
//     existed before (same Name) keeps its previous good version until it is fixed or removed.
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import YAML from 'yaml';
import type { Logger } from '../logger.js';
import { DestinationError, describeJsonError } from './errors.js';
import { destinationList, notAList, parseDestinations } from './parse.js';
import type { Destination } from './types.js';

export interface FileSourceOptions {
  /** called after the initial load (synchronously, before watchDestinationsFile returns) and after every reload */
  onChange(destinations: Destination[], errors: DestinationError[]): void;
  logger: Logger;
  debounceMs?: number;
  pollIntervalMs?: number;
}

export interface DestinationsFileWatcher {
  /** the destinations in effect (the last good set) */
  current(): Destination[];
  /** the problems of the last load attempt */
  errors(): DestinationError[];
  /** whether the file has been read as a list of destinations at least once */
  loaded(): boolean;
  /** check the file now (what the watcher and the poll do) */
  check(): void;
  close(): void;
}

export const DEFAULT_DEBOUNCE_MS = 100;
export const DEFAULT_POLL_INTERVAL_MS = 2000;

/** The part of a YAML parser message before it quotes the offending line (which may hold a secret). */
function yamlReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '').replace(/:$/, '');
}

/**
 * Parses a destinations file's text. YAML is read with the failsafe schema: every scalar stays the text
 * it was written as (SAP properties are strings; `0123` must not become 123, nor `2.10` become 2.1).
 */
export function parseDestinationsText(text: string, source: string): unknown | DestinationError {
  if (text.trim() === '')
    return new DestinationError(source, 'the file is empty (write [] for no destinations)');
  if (extname(source).toLowerCase() === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      return new DestinationError(source, `not valid JSON: ${describeJsonError(error)}`);
    }
  }
  try {
    const data: unknown = YAML.parse(text, { schema: 'failsafe' });
    if (data === null || data === undefined)
      return new DestinationError(source, 'the file has no content (write [] for no destinations)');
    return data;
  } catch (error) {
    const pos = (error as { linePos?: [{ line: number; col: number }] }).linePos?.[0];
    const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
    return new DestinationError(source, `not valid YAML: ${yamlReason(error)}${where}`);
  }
}

interface Snapshot {
  main: Buffer | string;
  /** key / trust store files read while parsing, with their content (or error code) */
  extra: [path: string, content: Buffer | string][];
}

function fingerprint(snapshot: Snapshot): string {
  const hash = createHash('sha256');
  const add = (content: Buffer | string) =>
    hash.update(typeof content === 'string' ? `\0error:${content}` : content);
  add(snapshot.main);
  for (const [path, content] of snapshot.extra) {
    hash.update(`\0${path}\0`);
    add(content);
  }
  return hash.digest('hex');
}

function readOrCode(path: string): Buffer | string {
  try {
    return readFileSync(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'unreadable';
  }
}

export function watchDestinationsFile(path: string, options: FileSourceOptions): DestinationsFileWatcher {
  const { logger } = options;
  const absolute = resolve(path);
  const baseDir = dirname(absolute);
  let good: Destination[] = [];
  let errors: DestinationError[] = [];
  let loaded = false;
  let extraPaths: string[] = [];
  let lastFingerprint: string | undefined;
  let closed = false;

  const reject = (error: DestinationError) => {
    errors = [error];
    logger.error(
      { source: path, kept: good.map((d) => d.name) },
      `${String(error)}; keeping the last good destinations (${good.length})`,
    );
  };

  const load = (main: Buffer | string): Snapshot => {
    const extra: [string, Buffer | string][] = [];
    if (typeof main === 'string') {
      reject(new DestinationError(path, `cannot be read (${main})`));
      return { main, extra };
    }
    const data = parseDestinationsText(main.toString('utf8'), path);
    if (data instanceof DestinationError) {
      reject(data);
      return { main, extra };
    }
    const readFile = (file: string): Buffer => {
      const content = readOrCode(file);
      extra.push([file, content]);
      if (typeof content === 'string') throw Object.assign(new Error(content), { code: content });
      return content;
    };
    const list = destinationList(data);
    if (!list) {
      reject(notAList(data, path));
      return { main, extra };
    }
    const result = parseDestinations(list, { source: path, baseDir, readFile });
    const valid = new Set(result.destinations.map((d) => d.name.toLowerCase()));
    const kept: Destination[] = [];
    for (const error of result.errors) {
      const key = error.destination?.toLowerCase();
      if (key === undefined || valid.has(key)) continue;
      const previous = good.find((d) => d.name.toLowerCase() === key);
      if (!previous) continue;
      valid.add(key);
      kept.push(previous);
      logger.warn(
        { source: path, destination: previous.name },
        `${path}: destination "${previous.name}" is invalid in the new version; keeping its previous version`,
      );
    }
    for (const error of result.errors)
      logger.error({ source: path, destination: error.destination, property: error.property }, String(error));
    good = [...result.destinations, ...kept];
    errors = result.errors;
    loaded = true;
    logger.info(
      { source: path, destinations: good.map((d) => d.name), errors: errors.length },
      `${path}: ${good.length} destination(s) in effect`,
    );
    return { main, extra };
  };

  const check = () => {
    if (closed) return;
    const main = readOrCode(absolute);
    const current = fingerprint({ main, extra: extraPaths.map((p) => [p, readOrCode(p)]) });
    if (current === lastFingerprint) return;
    const snapshot = load(main);
    extraPaths = snapshot.extra.map(([p]) => p);
    lastFingerprint = fingerprint(snapshot);
    try {
      options.onChange(good, errors);
    } catch (error) {
      logger.error({ err: error, source: path }, `${path}: a destinations listener failed`);
    }
  };

  check();

  let debounce: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(check, options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    debounce.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(baseDir, { persistent: false }, schedule);
    watcher.on('error', (error) => {
      logger.warn({ err: error, source: path }, `${path}: watching ${baseDir} failed; polling only`);
      watcher?.close();
      watcher = undefined;
    });
  } catch (error) {
    logger.warn(
      { source: path, code: (error as NodeJS.ErrnoException).code },
      `${path}: cannot watch ${baseDir}; polling every ${options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS} ms`,
    );
  }
  const poll = setInterval(check, options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  poll.unref();

  return {
    current: () => good,
    errors: () => errors,
    loaded: () => loaded,
    check,
    close: () => {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
