// Field readers for the topology file: type checks, names, prefixes and
// prefix lengths, unknown keys. Each reader records an issue at the value's
// key path and returns undefined when the value is unusable, so callers can
// skip the checks that depend on it.

import { editDistance } from './suggest.js';
import { tryParsePrefix, type Prefix } from './cidr.js';

export interface TopologyIssue {
  /** Key path of the offending value, e.g. "zones[1].subnets[0].podPrefix"; "" for the whole file. */
  readonly path: string;
  readonly message: string;
}

export type Mapping = Record<string, unknown>;

/** Zone names, subnet ids and route table ids: usable as one etcd key segment. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export class Issues {
  private readonly items: TopologyIssue[] = [];
  add(path: string, message: string): void {
    this.items.push({ path, message });
  }
  get count(): number {
    return this.items.length;
  }
  /** The issues in file order (by zone, then subnet); checks keep their order within one place. */
  sorted(): TopologyIssue[] {
    const place = (path: string): [number, number] => {
      const m = /^zones\[(\d+)\](?:\.subnets\[(\d+)\])?/.exec(path);
      return m === null ? [-1, -1] : [Number(m[1]), m[2] === undefined ? -1 : Number(m[2])];
    };
    return this.items
      .map((issue, i) => ({ issue, i, at: place(issue.path) }))
      .sort((a, b) => a.at[0] - b.at[0] || a.at[1] - b.at[1] || a.i - b.i)
      .map((x) => x.issue);
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkKeys(issues: Issues, path: string, value: Mapping, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = known.find(
      (k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= Math.max(1, Math.floor(k.length / 3)),
    );
    const hint = near !== undefined ? `did you mean "${near}"?` : `expected one of: ${known.join(', ')}`;
    issues.add(join(path, key), `unknown key ${JSON.stringify(key)} (${hint})`);
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** `ifNull` explains what leaving the value out means, for optional keys. */
export function readPrefix(issues: Issues, path: string, value: unknown, ifNull = ''): Prefix | undefined {
  if (typeof value !== 'string') {
    const hint = value === null && ifNull !== '' ? ` (${ifNull})` : '';
    issues.add(path, `expected a CIDR prefix string, got ${describe(value)}${hint}`);
    return undefined;
  }
  const parsed = tryParsePrefix(value);
  if (typeof parsed === 'string') {
    issues.add(path, parsed);
    return undefined;
  }
  return parsed;
}

export function readName(issues: Issues, path: string, value: unknown, what: string, ifNull = ''): string | undefined {
  if (typeof value !== 'string') {
    const hint =
      typeof value === 'number' ? ' (quote it to make it a string)' : value === null && ifNull !== '' ? ` (${ifNull})` : '';
    issues.add(path, `expected ${what} as a string, got ${describe(value)}${hint}`);
    return undefined;
  }
  if (!NAME_PATTERN.test(value)) {
    issues.add(
      path,
      `${JSON.stringify(value)} is not a valid ${what}: use 1 to 253 letters, digits, ".", "_" and "-", starting with a letter or digit`,
    );
    return undefined;
  }
  return value;
}

export function readInteger(issues: Issues, path: string, value: unknown): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    issues.add(path, `expected an integer prefix length, got ${describe(value)}`);
    return undefined;
  }
  return value;
}

export interface Bound {
  readonly value: number;
  readonly why: string;
}

/** Checks lo <= value <= hi for the bounds that are known; returns value when it passes. */
export function checkRange(
  issues: Issues,
  path: string,
  value: number | null,
  lo: Bound | undefined,
  hi: Bound | undefined,
): number | undefined {
  if (value === null) return undefined;
  if (lo !== undefined && value < lo.value) {
    issues.add(path, `/${value} is out of range: it must be ${lo.value} or more (${lo.why})`);
    return undefined;
  }
  if (hi !== undefined && value > hi.value) {
    issues.add(path, `/${value} is out of range: it must be ${hi.value} or less (${hi.why})`);
    return undefined;
  }
  return value;
}

/** Records that a required key is absent; `what` says what the key holds. */
export function missing(issues: Issues, path: string, what: string): void {
  issues.add(path, `required, but missing: ${what}`);
}

/** True when `value` has `key` as an own property (never an inherited one). */
export function has(value: Mapping, key: string): boolean {
  return Object.hasOwn(value, key);
}
