// Command-line options of `npm run bench` (pure: argv in, options or a usage error out).

export const MEASURES = [
  'tcp-throughput',
  'tcp-latency',
  'http-saturation',
  'http-rate',
  'http-connections',
  'dns',
] as const;
export type MeasureId = (typeof MEASURES)[number];

export interface BenchOptions {
  /** seconds each load generator runs per path */
  durationS: number;
  /** warm-up seconds per HTTP path before the measurements */
  warmupS: number;
  quick: boolean;
  only: MeasureId[];
  /** fixed offered load of the rate measurements (requests/s) */
  rate: number;
  /** where results/<timestamp>/ goes */
  outDir: string;
  /** run the dataplane under V8's CPU profiler and report where its CPU goes */
  profile: boolean;
}

export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(`${message}\n${USAGE}`);
    this.name = 'UsageError';
  }
}

export const USAGE = `usage: npm run bench -- [--quick] [--only ${MEASURES.join(',')}] [--duration <s>] [--rate <req/s>] [--out <dir>] [--profile]
  --quick       short runs (1 s per tool and path), for the smoke test
  --only        run only these measures (comma-separated)
  --duration    seconds per tool and path (default 8; --quick: 1)
  --rate        offered load of the fixed-rate measures (default 1000 req/s)
  --out         results directory (default bench/results); a <timestamp>/ folder is created in it
  --profile     run the dataplane with node --cpu-prof and add where its CPU goes to results.md`;

export function parseOptions(argv: readonly string[], defaultOutDir: string): BenchOptions {
  let quick = false;
  let duration: number | undefined;
  let rate = 1000;
  let only: MeasureId[] = [...MEASURES];
  let outDir = defaultOutDir;
  let profile = false;
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const positive = (flag: string, text: string, max: number): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0 || n > max)
      throw new UsageError(`${flag}: expected a number in (0, ${max}], got "${text}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--quick') quick = true;
    else if (arg === '--profile') profile = true;
    else if (arg === '--duration') duration = positive(arg, value(i++, arg), 120);
    else if (arg === '--rate') rate = Math.round(positive(arg, value(i++, arg), 100_000));
    else if (arg === '--out') outDir = value(i++, arg);
    else if (arg === '--only') {
      const names = value(i++, arg)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const unknown = names.filter((n) => !(MEASURES as readonly string[]).includes(n));
      if (unknown.length > 0 || names.length === 0)
        throw new UsageError(`--only: unknown measure ${unknown.join(', ') || '(none)'}`);
      only = MEASURES.filter((m) => names.includes(m));
    } else if (arg === '--help' || arg === '-h') throw new UsageError('help');
    else throw new UsageError(`unknown argument "${arg}"`);
  }
  const durationS = duration ?? (quick ? 1 : 8);
  return { durationS, warmupS: quick ? 0.5 : 2, quick, only, rate, outDir, profile };
}
