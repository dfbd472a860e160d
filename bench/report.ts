// The results model: one metric per measured figure with a row per path; ratios to the reference path
// (direct) and to the best peer, the target verdict, and what limits a figure that misses its target.
// Pure: no I/O.

export type Better = 'higher' | 'lower';

export interface Usage {
  /** forwarder CPU during the run, in cores (1 = one core fully busy) */
  cpuCores: number;
  /** machine-wide busy share of all cores, 0..1 */
  machineBusy: number;
}

export interface Row {
  path: string;
  /** null: no figure (the path failed, or the measure does not apply to it) */
  value: number | null;
  /** requests/queries that failed, when the tool counts them */
  errors?: number;
  /** why there is no usable figure */
  failure?: string;
  usage?: Usage;
}

export interface Target {
  /** the path the target is for (detour) */
  path: string;
  op: '>=' | '<=';
  factor: number;
  /** ratio to this path's figure; absent: `factor` is an absolute limit in the metric's unit */
  of?: string;
}

export interface Metric {
  id: string;
  section: string;
  title: string;
  unit: string;
  better: Better;
  digits: number;
  rows: Row[];
  /** the no-proxy path ratios are taken to */
  reference?: string;
  peers: string[];
  target?: Target;
  /** what to say about a miss besides the process figures (e.g. the tool's coordinated omission) */
  note?: string;
  /** the figure is the process's own cost (CPU, memory): a miss is explained by `note` alone */
  ownCost?: boolean;
}

export interface Verdict {
  status: 'pass' | 'miss' | 'unknown';
  /** the compared number: the ratio (target with `of`) or the figure itself */
  actual: number | null;
  target: string;
  limitedBy?: string;
}

export interface EvaluatedRow extends Row {
  vsReference: number | null;
  vsBestPeer: { ratio: number; peer: string } | null;
}

export interface EvaluatedMetric extends Omit<Metric, 'rows'> {
  rows: EvaluatedRow[];
  verdict?: Verdict;
}

/** A row counts when it has a finite figure and no failure. */
function usable(row: Row | undefined): row is Row & { value: number } {
  return row !== undefined && row.value !== null && Number.isFinite(row.value) && !row.failure;
}

export function ratio(a: number, b: number): number | null {
  return b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? null : a / b;
}

export function bestPeer(metric: Metric): (Row & { value: number }) | undefined {
  const peers = metric.rows.filter((r) => metric.peers.includes(r.path)).filter(usable);
  if (peers.length === 0) return undefined;
  return peers.reduce((best, r) =>
    (metric.better === 'higher' ? r.value > best.value : r.value < best.value) ? r : best,
  );
}

export function targetText(t: Target, unit: string): string {
  const op = t.op === '>=' ? '≥' : '≤';
  return t.of ? `${op} ${t.factor}× ${t.of}` : `${op} ${t.factor} ${unit}`;
}

export function limitNote(path: string, usage: Usage | undefined, cores: number): string {
  if (!usage) return `no process figures for ${path}`;
  const core = Math.round(usage.cpuCores * 100);
  const busy = Math.round(usage.machineBusy * 100);
  const machine = `the machine's ${cores} cores were ${busy}% busy`;
  if (usage.cpuCores >= 0.85) return `${path} is CPU-bound: its process used ${core}% of a core; ${machine}`;
  if (usage.machineBusy >= 0.9)
    return `the cores are saturated (${busy}% busy, shared by client, forwarder, upstream and any other work on the machine): ${path} got ${core}% of a core`;
  return `${path} used ${core}% of a core, ${machine}: neither is saturated, so the time goes to waiting (latency inside ${path})`;
}

export function evaluate(metric: Metric, cores: number): EvaluatedMetric {
  const ref = metric.reference ? metric.rows.find((r) => r.path === metric.reference) : undefined;
  const best = bestPeer(metric);
  const rows = metric.rows.map((r): EvaluatedRow => {
    const ok = usable(r);
    return {
      ...r,
      vsReference: ok && usable(ref) ? ratio(r.value as number, ref.value) : null,
      vsBestPeer: ok && best ? nullable(ratio(r.value as number, best.value), best.path) : null,
    };
  });
  const evaluated: EvaluatedMetric = { ...metric, rows };
  const t = metric.target;
  if (t) {
    const text = targetText(t, metric.unit);
    const row = metric.rows.find((r) => r.path === t.path);
    const base = t.of ? metric.rows.find((r) => r.path === t.of) : undefined;
    let actual: number | null = null;
    if (usable(row)) actual = t.of ? (usable(base) ? ratio(row.value, base.value) : null) : row.value;
    if (actual === null) evaluated.verdict = { status: 'unknown', actual, target: text };
    else {
      const pass = t.op === '>=' ? actual >= t.factor : actual <= t.factor;
      evaluated.verdict = { status: pass ? 'pass' : 'miss', actual, target: text };
      if (!pass)
        evaluated.verdict.limitedBy = [
          metric.ownCost ? undefined : limitNote(t.path, row?.usage, cores),
          metric.note,
        ]
          .filter(Boolean)
          .join('; ');
    }
  }
  return evaluated;
}

function nullable(r: number | null, peer: string): { ratio: number; peer: string } | null {
  return r === null ? null : { ratio: r, peer };
}
