// What every benchmark reports besides its printed lines: named figures that
// `npm run bench` collects into bench/results.json. A benchmark calls
// `record(figures)`; when BENCH_RESULTS names a file (the runner sets it), the
// figures are written there as JSON, otherwise nothing is written.
import { writeFileSync } from 'node:fs';

export type Figure = number | string | boolean | null | Figure[] | { [name: string]: Figure };
export type Figures = { [name: string]: Figure };

const collected: Figures = {};

/** Add figures (merged into what was recorded before) and write them out. */
export function record(figures: Figures): void {
  Object.assign(collected, figures);
  const file = process.env.BENCH_RESULTS;
  if (file !== undefined && file !== '') writeFileSync(file, `${JSON.stringify(collected, null, 2)}\n`);
}

/** Nearest-rank percentile of values (sorted or not). */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN;
}

/** Round to `digits` decimals for reports. */
export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
