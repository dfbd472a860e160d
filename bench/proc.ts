// CPU time and memory of processes from /proc, and the machine's CPU use, sampled while a load runs.
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/** utime + stime of /proc/<pid>/stat content, in seconds. The command name may contain spaces/parens. */
export function parseCpuSeconds(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the name start at field 3 (state); utime and stime are fields 14 and 15
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error(`unexpected /proc stat line: ${stat}`);
  return (utime + stime) / CLOCK_TICKS;
}

/** VmRSS of /proc/<pid>/status content, in bytes. */
export function parseRssBytes(status: string): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error('no VmRSS line in /proc status');
  return Number(m[1]) * 1024;
}

/** Busy and total jiffies of the first ("cpu") line of /proc/stat. */
export function parseMachineCpu(stat: string): { busy: number; total: number } {
  const fields = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Direct children of a process (e.g. nginx workers of the master). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export interface ProcessUsage {
  /** CPU seconds of the processes during the window */
  cpuSeconds: number;
  wallSeconds: number;
  /** largest summed RSS seen, bytes */
  maxRssBytes: number;
  /** machine-wide CPU busy share during the window, 0..1 (of all cores) */
  machineBusy: number;
}

/**
 * Samples the processes `pids()` returns (re-read each time: nginx may replace workers) every
 * `intervalMs` until stop() is called.
 */
export function sampleUsage(pids: () => number[], intervalMs = 100): { stop(): ProcessUsage } {
  const cpuOf = (): number =>
    pids().reduce((sum, p) => {
      const s = read(`/proc/${p}/stat`);
      return s ? sum + parseCpuSeconds(s) : sum;
    }, 0);
  const rss = (): number => rssBytes(pids());
  const machine = (): { busy: number; total: number } => parseMachineCpu(read('/proc/stat') ?? 'cpu 0');
  const started = performance.now();
  const cpu0 = cpuOf();
  const m0 = machine();
  let maxRss = rss();
  const timer = setInterval(() => (maxRss = Math.max(maxRss, rss())), intervalMs);
  return {
    stop() {
      clearInterval(timer);
      maxRss = Math.max(maxRss, rss());
      const m1 = machine();
      return {
        cpuSeconds: cpuOf() - cpu0,
        wallSeconds: (performance.now() - started) / 1000,
        maxRssBytes: maxRss,
        machineBusy: m1.total > m0.total ? (m1.busy - m0.busy) / (m1.total - m0.total) : 0,
      };
    },
  };
}

/** Current summed RSS of the processes, bytes (an exiting process, without VmRSS, counts 0). */
export function rssBytes(pids: number[]): number {
  return pids.reduce((sum, p) => {
    const s = read(`/proc/${p}/status`);
    return s && /^VmRSS:/m.test(s) ? sum + parseRssBytes(s) : sum;
  }, 0);
}
