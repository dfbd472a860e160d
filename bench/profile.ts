// `--profile`: where the dataplane spends its CPU, from the V8 CPU profile Node writes with --cpu-prof
// (a .cpuprofile JSON: a call tree of nodes, and which node each sample landed in). Pure.

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  name: string;
  /** share of the busy samples (everything but "(idle)"), 0..1 */
  share: number;
}

export interface ProfileSummary {
  busySamples: number;
  idleShare: number;
  functions: ProfileEntry[];
  modules: ProfileEntry[];
}

/** What a script URL belongs to: an npm package, a file of the repo, or a module of Node itself. */
export function moduleOf(url: string): string {
  if (url === '') return '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  if (url.startsWith('node:')) return url;
  const repo = /\/dist\/(.+)$/.exec(url) ?? /\/((?:dataplane|dns|cmd)\/.+)$/.exec(url);
  return repo ? (repo[1] as string) : url;
}

function top(counts: Map<string, number>, total: number, n: number): ProfileEntry[] {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, c]) => ({ name, share: total > 0 ? c / total : 0 }));
}

export function summarizeProfile(profile: CpuProfile, n = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const hits = new Map<number, number>();
  if (profile.samples && profile.samples.length > 0)
    for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const node of profile.nodes) hits.set(node.id, node.hitCount ?? 0);
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const [id, count] of hits) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || count === 0) continue;
    if (frame.functionName === '(idle)') {
      idle += count;
      continue;
    }
    busy += count;
    const mod = frame.url ? moduleOf(frame.url) : frame.functionName || '(native / V8)';
    const fn = frame.url
      ? `${frame.functionName || '(anonymous)'} ${mod}:${frame.lineNumber + 1}`
      : frame.functionName || '(anonymous)';
    functions.set(fn, (functions.get(fn) ?? 0) + count);
    modules.set(mod, (modules.get(mod) ?? 0) + count);
  }
  return {
    busySamples: busy,
    idleShare: busy + idle > 0 ? idle / (busy + idle) : 0,
    functions: top(functions, busy, n),
    modules: top(modules, busy, n),
  };
}

export function profileMarkdown(s: ProfileSummary): string {
  const table = (title: string, rows: ProfileEntry[]): string[] => [
    `| ${title} | share of busy CPU |`,
    '|---|---:|',
    ...rows.map((r) => `| \`${r.name.replace(/\|/g, '\\|')}\` | ${(r.share * 100).toFixed(1)}% |`),
  ];
  return [
    '## Dataplane CPU profile (--profile)',
    '',
    `Self time over the whole run (${s.busySamples} busy samples; idle ${(s.idleShare * 100).toFixed(0)}% of all samples). The profiler itself slows the dataplane down: the figures of a --profile run are not comparable.`,
    '',
    ...table('module', s.modules),
    '',
    ...table('function', s.functions),
    '',
  ].join('\n');
}
