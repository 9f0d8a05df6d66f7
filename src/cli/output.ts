// Plain-text output helpers for trellisctl: aligned tables and JSON.
//
// Tables are meant for people (columns padded with spaces, numbers right
// aligned, no trailing blanks); JSON is meant for programs (two-space
// indentation, one trailing newline, stable key order as built by the caller).

import type { OptionSpec } from './spec.js';

/** The `-o table|json` option every listing command takes. */
export const outputOption: OptionSpec = {
  type: 'string',
  short: 'o',
  valueName: 'FORMAT',
  doc: 'output format: table or json',
  default: 'table',
  choices: ['table', 'json'],
};

export interface TableOptions {
  /** Indexes of columns to right-align (numbers). */
  readonly right?: readonly number[];
}

/** Lines of an aligned table; `header` may be omitted. Columns are separated by two spaces. */
export function formatTable(
  header: readonly string[] | undefined,
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string[] {
  const all = header === undefined ? rows : [header, ...rows];
  const widths: number[] = [];
  for (const row of all) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  const right = new Set(options.right ?? []);
  return all.map((row) =>
    row
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** JSON text with a trailing newline. */
export function formatJSON(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
