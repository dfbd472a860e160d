// All destinations in effect, merged from their sources. Precedence is the order of the sources given
// to the constructor (files in the order configured, then the environment variable): when two sources
// define the same name (compared ignoring case, as DNS does), the later source wins. Lookups ignore case.
import { createHash } from 'node:crypto';
import type { DestinationError } from './errors.js';
import type { Destination } from './types.js';

export interface DestinationChange {
  added: string[];
  removed: string[];
  updated: string[];
}

export interface Override {
  name: string;
  /** the source whose definition is in effect */
  source: string;
  /** the sources whose definitions are hidden by it */
  hidden: string[];
}

export type DestinationListener = (change: DestinationChange) => void;

interface Entry {
  destination: Destination;
  source: string;
  fingerprint: string;
}

/** Identity of a destination's configuration: its properties and its key / trust store contents. */
export function destinationFingerprint(destination: Destination): string {
  const hash = createHash('sha256');
  const properties = Object.entries(destination.properties).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  hash.update(JSON.stringify(properties));
  for (const store of [destination.keyStore, destination.trustStore]) {
    hash.update('\0');
    if (store) hash.update(store.content);
  }
  return hash.digest('hex');
}

export class DestinationRegistry {
  private readonly order: string[];
  private readonly bySource = new Map<string, { destinations: Destination[]; errors: DestinationError[] }>();
  private entries = new Map<string, Entry>();
  /** names() of the current entries: the embedded DNS asks for them on every query. */
  private sortedNames?: string[];
  private overrideList: Override[] = [];
  private readonly listeners = new Set<DestinationListener>();

  /** `sources`: source labels from lowest to highest precedence; unknown sources are appended. */
  constructor(sources: string[] = []) {
    this.order = [...sources];
  }

  /** Replaces one source's destinations; notifies listeners when anything in effect changed. */
  update(source: string, destinations: Destination[], errors: DestinationError[] = []): DestinationChange {
    if (!this.order.includes(source)) this.order.push(source);
    this.bySource.set(source, { destinations, errors });
    const previous = this.entries;
    const next = new Map<string, Entry>();
    const definedIn = new Map<string, string[]>();
    for (const label of this.order) {
      for (const destination of this.bySource.get(label)?.destinations ?? []) {
        const key = destination.name.toLowerCase();
        const old = previous.get(key);
        const fingerprint =
          old?.destination === destination ? old.fingerprint : destinationFingerprint(destination);
        next.set(key, { destination, source: label, fingerprint });
        definedIn.set(key, [...(definedIn.get(key) ?? []), label]);
      }
    }
    this.entries = next;
    this.sortedNames = undefined;
    this.overrideList = [...definedIn]
      .filter(([, labels]) => labels.length > 1)
      .map(([key, labels]) => ({
        name: next.get(key)!.destination.name,
        source: labels[labels.length - 1]!,
        hidden: labels.slice(0, -1),
      }));
    const change: DestinationChange = { added: [], removed: [], updated: [] };
    for (const [key, entry] of next) {
      const old = previous.get(key);
      if (!old) change.added.push(entry.destination.name);
      else if (old.fingerprint !== entry.fingerprint || old.destination.name !== entry.destination.name)
        change.updated.push(entry.destination.name);
    }
    for (const [key, entry] of previous) if (!next.has(key)) change.removed.push(entry.destination.name);
    if (change.added.length + change.removed.length + change.updated.length > 0) {
      // every listener hears of the change even if an earlier one throws; the first error is rethrown
      let failure: unknown;
      for (const listener of this.listeners) {
        try {
          listener(change);
        } catch (error) {
          failure ??= error;
        }
      }
      if (failure !== undefined) throw failure;
    }
    return change;
  }

  /** The destination for a name, ignoring case. */
  get(name: string): Destination | undefined {
    return this.entries.get(name.toLowerCase())?.destination;
  }

  /** The source label a destination in effect came from. */
  sourceOf(name: string): string | undefined {
    return this.entries.get(name.toLowerCase())?.source;
  }

  /** All destinations in effect, sorted by name. */
  list(): Destination[] {
    return this.names().map((name) => this.get(name)!);
  }

  /**
   * Names in effect (as written in their source), sorted. The same array until the destinations
   * change, so callers can tell "unchanged" by identity; do not modify it.
   */
  names(): readonly string[] {
    this.sortedNames ??= [...this.entries.values()].map((e) => e.destination.name).sort();
    return this.sortedNames;
  }

  /** Problems reported by the sources at their last load, in source order. */
  errors(): DestinationError[] {
    return this.order.flatMap((label) => this.bySource.get(label)?.errors ?? []);
  }

  /** Names defined by more than one source, and which source wins. */
  overrides(): Override[] {
    return this.overrideList;
  }

  /** Called after every update that added, removed or changed a destination; returns an unsubscribe. */
  onChange(listener: DestinationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
