// Tearing labs down, synchronously so that it also works from a process 'exit' hook: kill the lab's
// processes (by PID), delete its namespaces, remove its files. Also finds and removes leftovers of
// labs whose creating process is gone. Only names of our own scheme (names.ts) are ever touched.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labIdOfEntry, labIdOfNamespace, pidOfLabId } from './names.js';

export const ETC_NETNS = '/etc/netns';

/** What a lab has created so far; filled in step by step while the lab comes up. */
export interface LabResources {
  id: string;
  namespaces: string[];
  /** Directories (and everything in them) to remove: /etc/netns/<app>, the lab's temp dir. */
  dirs: string[];
  /** Processes the lab started that may still be running. */
  pids: Set<number>;
}

const live = new Map<string, LabResources>();
let exitHookInstalled = false;

/** Remembers a lab so that the exit hook tears it down if the process ends without destroy(). */
export function track(res: LabResources): void {
  live.set(res.id, res);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const r of live.values()) teardownSync(r);
      live.clear();
    });
  }
}

export function untrack(id: string): void {
  live.delete(id);
}

/** Ids of labs of this process that are not torn down yet. */
export function liveLabIds(): string[] {
  return [...live.keys()];
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function ip(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  const stderr = r.error ? String(r.error) : r.stderr;
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: (stderr ?? '').trim() };
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Names of all network namespaces (`ip netns list`). */
export function listNamespaces(): string[] {
  const r = ip(['netns', 'list']);
  if (!r.ok) throw new Error(`ip netns list failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** PIDs of processes in a namespace (`ip netns pids`). */
export function namespacePids(ns: string): number[] {
  const r = ip(['netns', 'pids', ns]);
  if (!r.ok) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** Tears a lab down; returns what could not be removed (empty when everything is gone). */
export function teardownSync(res: LabResources): string[] {
  const errors: string[] = [];
  for (const pid of res.pids) killPid(pid);
  res.pids.clear();
  const existing = new Set(listNamespaces());
  for (const ns of res.namespaces) {
    if (labIdOfNamespace(ns) !== res.id) {
      errors.push(`refusing to delete namespace ${ns}: not one of lab ${res.id}`);
      continue;
    }
    if (!existing.has(ns)) continue;
    // Whatever still runs in the lab's namespaces was started by the lab's processes (nginx workers...).
    let left = namespacePids(ns);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      for (const pid of left) killPid(pid);
      sleepSync(50);
      left = namespacePids(ns);
    }
    if (left.length > 0) errors.push(`processes still running in ${ns}: ${left.join(' ')}`);
    const del = ip(['netns', 'del', ns]);
    if (!del.ok) errors.push(`ip netns del ${ns} failed: ${del.stderr}`);
  }
  for (const dir of res.dirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      errors.push(`could not remove ${dir}: ${(e as Error).message}`);
    }
  }
  return errors;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/**
 * Removes namespaces, /etc/netns directories and temp directories of labs (`dtlab-<pid>-<hex>...`)
 * whose creating process no longer runs. Returns the ids of the labs it removed.
 */
export function cleanupStaleLabs(): string[] {
  const stale = new Map<string, LabResources>();
  const get = (id: string): LabResources | undefined => {
    const pid = pidOfLabId(id);
    if (pid === undefined || isRunning(pid) || live.has(id)) return undefined;
    let r = stale.get(id);
    if (!r) stale.set(id, (r = { id, namespaces: [], dirs: [], pids: new Set() }));
    return r;
  };
  for (const ns of listNamespaces()) {
    const id = labIdOfNamespace(ns);
    if (id) get(id)?.namespaces.push(ns);
  }
  for (const base of [ETC_NETNS, tmpdir()]) {
    for (const name of entries(base)) {
      const id = labIdOfEntry(name);
      if (id) get(id)?.dirs.push(join(base, name));
    }
  }
  const errors: string[] = [];
  for (const r of stale.values()) errors.push(...teardownSync(r));
  if (errors.length > 0) throw new Error(`cleanupStaleLabs: ${errors.join('; ')}`);
  return [...stale.keys()];
}
