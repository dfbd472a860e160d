// Durations as the load tools print them ("597.00us", "1.65ms", "2.02s", "3m") in microseconds.
const FACTORS: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

/** "597.00us" → 597, "1.65ms" → 1650, "2.02s" → 2020000; undefined when it is not a duration. */
export function durationToUs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * (FACTORS[m[2] as string] as number);
}
