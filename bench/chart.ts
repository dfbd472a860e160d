// latency.png: the latency distribution of each path (percentile on a "nines" axis, latency in ms on
// a log axis), one panel per fixed-rate measure, drawn by gnuplot (Debian gnuplot-nox).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { distributionPoints } from './stats.js';

export interface ChartPanel {
  title: string;
  /** path → latency samples in µs */
  series: Record<string, number[]>;
}

/** gnuplot data: "<x> <latency ms>" where x = 1/(1 − percentile) so 90, 99, 99.9 % are evenly spaced. */
export function seriesData(samplesUs: readonly number[]): string {
  return distributionPoints(samplesUs)
    .filter(([p]) => p < 100)
    .map(([p, us]) => `${(1 / (1 - p / 100)).toPrecision(6)} ${(us / 1000).toPrecision(6)}`)
    .join('\n');
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '')}"`;
}

/** The gnuplot script; `files[panel][path]` are the data files written for each series. */
export function gnuplotScript(panels: ChartPanel[], files: Record<string, string>[], png: string): string {
  const lines = [
    `set terminal pngcairo size ${Math.max(1, panels.length) * 640},480 font ",10"`,
    `set output ${quote(png)}`,
    `set multiplot layout 1,${Math.max(1, panels.length)}`,
    'set logscale x',
    'set logscale y',
    'set xrange [1:*]',
    // tic labels are printf formats: %% is a percent sign
    'set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000)',
    'set xlabel "percentile"',
    'set ylabel "latency (ms)"',
    'set grid',
    'set key top left',
  ];
  panels.forEach((panel, i) => {
    lines.push(`set title ${quote(panel.title)}`);
    const plots = Object.entries(files[i] ?? {}).map(
      ([path, file]) => `${quote(file)} using 1:2 with lines linewidth 2 title ${quote(path)}`,
    );
    lines.push(plots.length > 0 ? `plot ${plots.join(', ')}` : 'plot 1 notitle');
  });
  lines.push('unset multiplot');
  return lines.join('\n') + '\n';
}

/** Writes the data files and the script into `dir`; returns the script path (run it with gnuplot). */
export function writeChartInputs(panels: ChartPanel[], dir: string, png: string): string {
  const files = panels.map((panel, i) => {
    const out: Record<string, string> = {};
    for (const [path, samples] of Object.entries(panel.series)) {
      if (samples.length === 0) continue;
      const file = join(dir, `latency-${i}-${path}.dat`);
      writeFileSync(file, seriesData(samples) + '\n');
      out[path] = file;
    }
    return out;
  });
  const script = join(dir, 'latency.gnuplot');
  writeFileSync(script, gnuplotScript(panels, files, png));
  return script;
}
