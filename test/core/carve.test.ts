import t from 'tap';
import fc from 'fast-check';
import { carvePodPrefixes, type CarveResult } from '../../src/core/carve.js';
import { contains, equal, formatPrefix, overlaps, parsePrefix, split, type Prefix } from '../../src/core/cidr.js';
import { ErrorCode } from '../../src/errors.js';

const P = parsePrefix;
const RUNS = 1000;

function prefixes(r: CarveResult): string[] {
  if (!r.ok) throw new Error(`carving failed at ${r.failedIndex}`);
  return r.prefixes.map(formatPrefix);
}

t.test('first fit in request order', async (t) => {
  const net = P('100.96.0.0/11');
  t.same(prefixes(carvePodPrefixes(net, 16, [undefined, undefined, undefined])), [
    '100.96.0.0/16',
    '100.97.0.0/16',
    '100.98.0.0/16',
  ]);
  t.same(
    prefixes(carvePodPrefixes(net, 16, [undefined, undefined, P('100.98.0.0/15'), undefined])),
    ['100.96.0.0/16', '100.97.0.0/16', '100.98.0.0/15', '100.100.0.0/16'],
    'a carved prefix skips an explicit one that comes later in the file',
  );
  t.same(
    prefixes(carvePodPrefixes(net, 16, [P('100.96.128.0/26'), undefined, P('100.97.0.0/16'), undefined])),
    ['100.96.128.0/26', '100.98.0.0/16', '100.97.0.0/16', '100.99.0.0/16'],
    'a slot touched by a small explicit prefix is not used',
  );
  t.same(
    prefixes(carvePodPrefixes(net, 12, [P('100.96.0.0/12'), undefined])),
    ['100.96.0.0/12', '100.112.0.0/12'],
    'the last slot of the network is used',
  );
  t.same(prefixes(carvePodPrefixes(net, 11, [undefined])), ['100.96.0.0/11'], 'subnetSize equal to the network');
  t.same(prefixes(carvePodPrefixes(net, 16, [])), [], 'no requests');
  t.same(prefixes(carvePodPrefixes(net, 16, [P('100.100.0.0/14')])), ['100.100.0.0/14'], 'explicit only');
});

t.test('running out of space is a result that says how many fit', async (t) => {
  const net = P('100.96.0.0/14');
  const r = carvePodPrefixes(net, 16, [undefined, P('100.97.0.0/16'), undefined, undefined, undefined, undefined]);
  t.same(r, { ok: false, failedIndex: 4, carved: 3, needed: 5 });
  const full = carvePodPrefixes(net, 16, [P('100.96.0.0/14'), undefined]);
  t.same(full, { ok: false, failedIndex: 1, carved: 0, needed: 1 }, 'an explicit prefix can take the whole network');
});

t.test('a large slot space with a large explicit prefix first', async (t) => {
  // 2^22 /32 slots; the first 2^21 are taken by one explicit prefix, which the walk steps over at once.
  const r = carvePodPrefixes(P('100.64.0.0/10'), 32, [P('100.64.0.0/11'), undefined, undefined]);
  t.same(prefixes(r), ['100.64.0.0/11', '100.96.0.0/32', '100.96.0.1/32']);
});

t.test('arguments that break the preconditions throw E_TOPOLOGY', async (t) => {
  const net = P('100.96.0.0/11');
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['subnetSize shorter than the network', () => carvePodPrefixes(net, 10, [undefined]), /cannot carve \/10 prefixes out of 100\.96\.0\.0\/11/],
    ['subnetSize beyond the family', () => carvePodPrefixes(net, 33, [undefined]), /cannot carve \/33/],
    ['subnetSize not an integer', () => carvePodPrefixes(net, 16.5, [undefined]), /cannot carve \/16\.5/],
    [
      'explicit prefix outside the network',
      () => carvePodPrefixes(net, 16, [P('100.64.0.0/16')]),
      /explicit pod prefix 100\.64\.0\.0\/16 is outside 100\.96\.0\.0\/11/,
    ],
    [
      'overlapping explicit prefixes',
      () => carvePodPrefixes(net, 16, [P('100.96.0.0/14'), undefined, P('100.97.0.0/16')]),
      /explicit pod prefixes 100\.96\.0\.0\/14 and 100\.97\.0\.0\/16 overlap/,
    ],
  ];
  for (const [name, fn, message] of cases) {
    t.throws(fn, { name: 'TrellisError', code: ErrorCode.Topology, message }, name);
  }
});

// ---- property tests -------------------------------------------------------

interface Case {
  network: Prefix;
  subnetSize: number;
  requests: Array<Prefix | undefined>;
}

/** A network inside 100.64.0.0/10 and a sub-prefix generator inside it. */
const networkArb = fc
  .record({ len: fc.integer({ min: 10, max: 24 }), index: fc.nat() })
  .map(({ len, index }) => {
    const count = 1 << (len - 10);
    const step = 1n << BigInt(32 - len);
    return { family: 4 as const, addr: P('100.64.0.0/10').addr + BigInt(index % count) * step, len };
  });

function subPrefixArb(network: Prefix, maxExtra: number): fc.Arbitrary<Prefix> {
  return fc.record({ extra: fc.integer({ min: 1, max: maxExtra }), index: fc.nat() }).map(({ extra, index }) => {
    const len = Math.min(32, network.len + extra);
    const count = 2 ** (len - network.len);
    const step = 1n << BigInt(32 - len);
    return { family: 4 as const, addr: network.addr + BigInt(index % count) * step, len };
  });
}

/** Keeps each explicit prefix only if it overlaps none kept before it. */
function disjointExplicit(requests: Array<Prefix | undefined>): Array<Prefix | undefined> {
  const kept: Prefix[] = [];
  return requests.flatMap((p) => {
    if (p === undefined) return [undefined];
    if (kept.some((k) => overlaps(k, p))) return [];
    kept.push(p);
    return [p];
  });
}

function caseArb(depth: { min: number; max: number }, maxLength = 40): fc.Arbitrary<Case> {
  return networkArb.chain((network) =>
  fc.integer({ min: Math.min(network.len + depth.min, 32), max: Math.min(network.len + depth.max, 32) }).chain((subnetSize) =>
    fc
      .array(fc.option(subPrefixArb(network, 10), { nil: undefined, freq: 3 }), { maxLength })
      .map((requests) => ({ network, subnetSize, requests: disjointExplicit(requests) })),
  ),
  );
}

/** Free slots of the network given the taken prefixes (brute force; small cases only). */
function freeSlots(c: Case, taken: readonly Prefix[]): Prefix[] {
  return split(c.network, c.subnetSize).filter((s) => !taken.some((t) => overlaps(s, t)));
}

t.test('property: carved prefixes are disjoint, aligned, inside the network; explicit ones kept', async (t) => {
  const seen = { ok: 0, full: 0 };
  fc.assert(
    fc.property(caseArb({ min: 0, max: 6 }), (c) => {
      const r = carvePodPrefixes(c.network, c.subnetSize, c.requests);
      const explicit = c.requests.filter((p): p is Prefix => p !== undefined);
      seen[r.ok ? 'ok' : 'full']++;
      if (!r.ok) {
        // Space really ran out: exactly `carved` slots were free.
        const carvedSoFar = c.requests.slice(0, r.failedIndex).filter((p) => p === undefined).length;
        return (
          c.requests[r.failedIndex] === undefined &&
          r.carved === carvedSoFar &&
          r.needed === c.requests.filter((p) => p === undefined).length &&
          freeSlots(c, explicit).length === r.carved
        );
      }
      if (r.prefixes.length !== c.requests.length) return false;
      for (const [i, p] of r.prefixes.entries()) {
        const req = c.requests[i];
        if (req !== undefined && !equal(req, p)) return false;
        if (req === undefined && p.len !== c.subnetSize) return false;
        if (!contains(c.network, p)) return false;
        if ((p.addr & ((1n << BigInt(32 - p.len)) - 1n)) !== 0n) return false;
        for (const q of r.prefixes.slice(i + 1)) if (overlaps(p, q)) return false;
      }
      return true;
    }),
    { numRuns: RUNS },
  );
  t.ok(seen.ok > RUNS / 4 && seen.full > RUNS / 10, `both outcomes checked: ${seen.ok} carved, ${seen.full} out of space`);
});

t.test('property: each carved prefix is the lowest free slot at its turn (first fit)', async (t) => {
  fc.assert(
    fc.property(caseArb({ min: 0, max: 6 }), (c) => {
      const r = carvePodPrefixes(c.network, c.subnetSize, c.requests);
      if (!r.ok) return true;
      const explicit = c.requests.filter((p): p is Prefix => p !== undefined);
      const earlier: Prefix[] = [];
      for (const [i, p] of r.prefixes.entries()) {
        if (c.requests[i] !== undefined) continue;
        const lowest = freeSlots(c, [...explicit, ...earlier])[0];
        if (lowest === undefined || !equal(lowest, p)) return false;
        earlier.push(p);
      }
      return true;
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} random cases`);
});

t.test('property: appending requests never changes earlier prefixes', async (t) => {
  const appendArb = caseArb({ min: 4, max: 8 }, 16).chain((c) =>
    fc
      .array(fc.option(subPrefixArb(c.network, 10), { nil: undefined, freq: 2 }), { maxLength: 10 })
      .map((extra) => ({ c, extra })),
  );
  let compared = 0;
  fc.assert(
    fc.property(appendArb, ({ c, extra }) => {
      const before = carvePodPrefixes(c.network, c.subnetSize, c.requests);
      if (!before.ok) return true;
      // Appended explicit prefixes must not take space that is already assigned.
      const taken = [...before.prefixes];
      const appended = extra.filter((p) => {
        if (p === undefined) return true;
        if (taken.some((q) => overlaps(p, q))) return false;
        taken.push(p);
        return true;
      });
      const after = carvePodPrefixes(c.network, c.subnetSize, [...c.requests, ...appended]);
      if (!after.ok) return after.failedIndex >= c.requests.length;
      compared++;
      return before.prefixes.every((p, i) => equal(p, after.prefixes[i] as Prefix));
    }),
    { numRuns: RUNS },
  );
  t.ok(compared > (RUNS * 2) / 3, `compared ${compared} successful carvings before and after appending`);
});
