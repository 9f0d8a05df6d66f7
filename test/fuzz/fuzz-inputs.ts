// Shared generators for the fuzz tests: random text of every kind, and
// mutations of a valid JSON document that keep it close to valid (one field
// dropped, retyped, renamed or set to a hostile value; the text cut or
// spliced). Each mutation says which field it touched, so a test can ask the
// rejection to name it.
import fc from 'fast-check';

/**
 * Generated inputs per property: 100,000, the fuzz suites' floor. CI sets
 * TRELLIS_FUZZ_RUNS lower to keep its run short (docs/reliability.md says
 * how much); `npm run fuzz` runs the full count.
 */
export const RUNS = fuzzRuns(process.env.TRELLIS_FUZZ_RUNS);

function fuzzRuns(text: string | undefined): number {
  if (text === undefined || text === '') return 100_000;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1000) throw new Error(`TRELLIS_FUZZ_RUNS=${JSON.stringify(text)}: want a whole number of at least 1000`);
  return n;
}

/** Any text: full unicode, lone surrogates, control characters, JSON and YAML punctuation. */
export const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(...'{}[]":,\\ \n\t-0123456789.e/&*!|>#?%@`\'abcnultrufs'), maxLength: 80 }),
  fc.json({ maxDepth: 3 }),
);

/** Values of every JSON type and a few hostile ones. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom<unknown>(
    null,
    '',
    -1,
    1.5,
    1e308,
    -0,
    2 ** 53 + 1,
    '__proto__',
    'constructor',
    '\u0000',
    '\ud800',
    'x'.repeat(5000),
    [],
    {},
    { __proto__: null },
    '999.999.999.999/99',
    '100.64.0.0/33',
    '::/0',
    '100.64.0.1/10',
    '0x64.0.0.0/10',
    'NaN',
    true,
  ),
);

export type Mutation =
  | { kind: 'drop'; field: string }
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'rename'; field: string; to: string }
  | { kind: 'extra'; name: string; value: unknown }
  | { kind: 'cut'; at: number }
  | { kind: 'splice'; at: number; text: string };

/** A mutation of an object with `fields` (dotted paths allowed for one level of nesting). */
export function mutationArb(fields: readonly string[]): fc.Arbitrary<Mutation> {
  const field = fc.constantFrom(...fields);
  return fc.oneof(
    field.map((f): Mutation => ({ kind: 'drop', field: f })),
    fc.record({ field, value: hostileValue }).map((m): Mutation => ({ kind: 'set', ...m })),
    fc.record({ field, to: fc.string({ maxLength: 12 }) }).map((m): Mutation => ({ kind: 'rename', ...m })),
    fc.record({ name: fc.string({ maxLength: 12 }), value: hostileValue }).map((m): Mutation => ({ kind: 'extra', ...m })),
    fc.nat().map((at): Mutation => ({ kind: 'cut', at })),
    fc.record({ at: fc.nat(), text: anyText }).map((m): Mutation => ({ kind: 'splice', ...m })),
  );
}

function clone(doc: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(doc)) as Record<string, unknown>;
}

/** The parent object of a dotted path and its last segment (created on the way when missing). */
function parentOf(doc: Record<string, unknown>, path: string): [Record<string, unknown>, string] {
  const parts = path.split('.');
  let at = doc;
  for (const p of parts.slice(0, -1)) {
    const next = at[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) at[p] = {};
    at = at[p] as Record<string, unknown>;
  }
  return [at, parts[parts.length - 1] as string];
}

/** The text of `doc` after `m`. */
export function mutate(doc: Record<string, unknown>, m: Mutation): string {
  const d = clone(doc);
  switch (m.kind) {
    case 'drop': {
      const [p, k] = parentOf(d, m.field);
      delete p[k];
      return JSON.stringify(d);
    }
    case 'set': {
      const [p, k] = parentOf(d, m.field);
      Object.defineProperty(p, k, { value: m.value, enumerable: true, writable: true, configurable: true });
      return JSON.stringify(d);
    }
    case 'rename': {
      const [p, k] = parentOf(d, m.field);
      const v = p[k];
      delete p[k];
      Object.defineProperty(p, m.to, { value: v, enumerable: true, writable: true, configurable: true });
      return JSON.stringify(d);
    }
    case 'extra':
      Object.defineProperty(d, m.name, { value: m.value, enumerable: true, writable: true, configurable: true });
      return JSON.stringify(d);
    case 'cut': {
      const text = JSON.stringify(d);
      return text.slice(0, m.at % (text.length + 1));
    }
    case 'splice': {
      const text = JSON.stringify(d);
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.text + text.slice(at);
    }
  }
}

/**
 * The names a field may be spelled with in a message: each segment of its
 * path, camelCase and snake_case, plural or singular ("allocations" names
 * "allocation 1.2.3.4").
 */
export function spellings(field: string): string[] {
  return field.split('.').flatMap((leaf) => {
    const snake = leaf.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    return [leaf, snake, leaf.replace(/s$/, ''), leaf.replace(/es$/, '')];
  });
}
