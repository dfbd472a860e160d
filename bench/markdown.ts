// results.md: a header naming the run, a summary of the targets, then one table per metric with each
// path's figure, its ratio to direct and to the best peer, errors, and the target verdict.
import type { EvaluatedMetric, EvaluatedRow, Verdict } from './report.js';

export interface RunInfo {
  date: string;
  machine: string;
  durationS: number;
  quick: boolean;
  rate: number;
  notes: string[];
}

export function formatNumber(value: number, digits: number): string {
  if (!Number.isFinite(value)) return '—';
  const fixed = value.toFixed(digits);
  const [int, frac] = fixed.split('.');
  const grouped = (int as string).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

const times = (r: number | null): string => (r === null ? '—' : `${formatNumber(r, 2)}×`);

function verdictText(v: Verdict, digits: number, unit: string, ofPeer: boolean): string {
  const actual =
    v.actual === null ? 'no figure' : ofPeer ? times(v.actual) : `${formatNumber(v.actual, digits)} ${unit}`;
  const status = v.status === 'pass' ? 'pass' : v.status === 'miss' ? '**miss**' : 'unknown';
  return `${v.target}: ${status} (${actual})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function rowLine(m: EvaluatedMetric, r: EvaluatedRow): string {
  const figure =
    r.value === null ? (r.failure ? `failed: ${r.failure}` : 'n/a') : formatNumber(r.value, m.digits);
  const peer = r.vsBestPeer ? `${times(r.vsBestPeer.ratio)} ${r.vsBestPeer.peer}` : '—';
  const target =
    m.verdict && m.target?.path === r.path
      ? verdictText(m.verdict, m.digits, m.unit, m.target.of !== undefined)
      : '';
  const errors = r.errors === undefined ? '' : String(r.errors);
  return `| ${r.path} | ${cell(figure)} | ${m.reference ? times(r.vsReference) : '—'} | ${peer} | ${errors} | ${cell(target)} |`;
}

export function metricTable(m: EvaluatedMetric): string {
  const lines = [
    `#### ${m.title} (${m.unit}, ${m.better} is better)`,
    '',
    `| path | ${m.unit} | × ${m.reference ?? 'direct'} | × best peer | errors | target |`,
    '|---|---:|---:|---:|---:|---|',
    ...m.rows.map((r) => rowLine(m, r)),
  ];
  if (m.verdict?.limitedBy) lines.push('', `Limited by: ${m.verdict.limitedBy}.`);
  return lines.join('\n');
}

export function summaryTable(metrics: EvaluatedMetric[]): string {
  const withTargets = metrics.filter((m) => m.verdict);
  if (withTargets.length === 0) return '_No targets among the measures run._';
  const lines = ['| figure | target | result | limited by |', '|---|---|---|---|'];
  for (const m of withTargets) {
    const v = m.verdict as Verdict;
    const ofPeer = m.target?.of !== undefined;
    const actual =
      v.actual === null
        ? 'no figure'
        : ofPeer
          ? times(v.actual)
          : `${formatNumber(v.actual, m.digits)} ${m.unit}`;
    const status = v.status === 'pass' ? 'pass' : v.status === 'miss' ? '**miss**' : 'unknown';
    lines.push(
      `| ${cell(m.title)} | ${cell(v.target)} | ${status} (${actual}) | ${cell(v.limitedBy ?? '')} |`,
    );
  }
  return lines.join('\n');
}

export function renderMarkdown(info: RunInfo, metrics: EvaluatedMetric[]): string {
  const out = [
    `# detour bench — ${info.date}`,
    '',
    `Machine: ${info.machine}. ${info.quick ? 'Quick run' : 'Full run'}: ${info.durationS} s per tool and path, fixed rate ${info.rate} req/s.`,
    ...info.notes.map((n) => `- ${n}`),
    '',
    '## Targets',
    '',
    summaryTable(metrics),
  ];
  const sections = [...new Set(metrics.map((m) => m.section))];
  for (const s of sections) {
    out.push('', `## ${s}`);
    for (const m of metrics.filter((x) => x.section === s)) out.push('', metricTable(m));
  }
  return out.join('\n') + '\n';
}
