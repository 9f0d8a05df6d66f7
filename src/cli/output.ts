// Plain-text output helpers for trellisctl: aligned tables, JSON and YAML.
//
// Tables are meant for people (columns padded with spaces, numbers right
// aligned, no trailing blanks); `wide` is the table with the columns the
// plain table leaves out. JSON and YAML are meant for programs (JSON: two-space
// indentation, one trailing newline, stable key order as built by the caller;
// counts are numbers, and bigints become numbers when they fit exactly).

import { stringify } from 'yaml';
import type { OptionSpec } from './spec.js';

/** The `-o table|json|yaml|wide` option of every listing command. */
export const outputOption: OptionSpec = {
  type: 'string',
  short: 'o',
  valueName: 'FORMAT',
  doc: 'output format: table, wide (more columns), json or yaml',
  default: 'table',
  choices: ['table', 'wide', 'json', 'yaml'],
};

/** `-o table|json|yaml` for output that has no wider table. */
export const documentOutputOption: OptionSpec = {
  ...outputOption,
  doc: 'output format: table, json or yaml',
  choices: ['table', 'json', 'yaml'],
};

/** A bigint as a number when it is exact, else as decimal text. */
export function toNumber(n: bigint): number | string {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n.toString();
}

const plain = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? toNumber(value) : value);

/** JSON or YAML text of `value` for `-o json` / `-o yaml`. */
export function formatData(format: unknown, value: unknown): string {
  if (format === 'yaml') return stringify(JSON.parse(JSON.stringify(value, plain)) as unknown);
  return formatJSON(value);
}

/** Whether `-o FORMAT` asks for data (json or yaml) rather than a table. */
export function isData(format: unknown): boolean {
  return format === 'json' || format === 'yaml';
}

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
  return `${JSON.stringify(value, plain, 2)}\n`;
}
