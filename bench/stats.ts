// Percentiles and the points of a latency distribution (for the chart), from raw samples.

/** Nearest-rank percentile (p in 0..100) of ascending-sorted samples; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : NaN,
  };
}

/**
 * The distribution as [percentile, value] points, denser towards the tail: percentiles
 * 100·(1 − 10^(−k/perDecade)) for k = 0.. up to 99.99 (or the largest the sample count supports), then max.
 */
export function distributionPoints(samples: readonly number[], perDecade = 20): [number, number][] {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const points: [number, number][] = [];
  const deepest = Math.min(4, Math.log10(sorted.length));
  for (let k = 0; k <= deepest * perDecade; k++) {
    const p = 100 * (1 - 10 ** (-k / perDecade));
    points.push([p, percentile(sorted, p)]);
  }
  points.push([100, sorted[sorted.length - 1] as number]);
  return points;
}
