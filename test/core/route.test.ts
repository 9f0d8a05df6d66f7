// Route identity and the reconcile diff: table-driven cases for routeKey and
// sameRoute, then property tests (fast-check) on random desired/observed
// tables — ownership, conflicts, keep, convergence and determinism.

import t from 'tap';
import fc from 'fast-check';
import { parseAddress, parsePrefix } from '../../src/core/cidr.js';
import {
  compareRoutes,
  describeRoute,
  diffRoutes,
  effectiveMetric,
  isEmptyDiff,
  routeKey,
  sameRoute,
  type KernelRoute,
  type RouteDiff,
} from '../../src/core/route.js';

const OURS = 84;

function r(dst: string, extra: Partial<KernelRoute> = {}): KernelRoute {
  return { dst: parsePrefix(dst), type: 'unicast', table: 254, protocol: OURS, ...extra };
}
const gw = (a: string): { gateway: ReturnType<typeof parseAddress> } => ({ gateway: parseAddress(a) });
const show = (routes: readonly KernelRoute[]): string[] => routes.map(describeRoute);

t.test('routeKey: table, family, destination and effective metric', async (t) => {
  t.equal(routeKey(r('100.64.0.0/26')), '254|4|64400000/26|0');
  t.equal(routeKey(r('fd00:64::/64')), '254|6|fd000064000000000000000000000000/64|1024');
  t.equal(routeKey(r('100.64.0.0/26', { metric: 0 })), routeKey(r('100.64.0.0/26')), 'IPv4 default metric is 0');
  t.equal(routeKey(r('fd00:64::/64', { metric: 1024 })), routeKey(r('fd00:64::/64')), 'IPv6 default metric is 1024');
  t.not(routeKey(r('100.64.0.0/26', { table: 1000 })), routeKey(r('100.64.0.0/26')));
  t.not(routeKey(r('100.64.0.0/26', { metric: 5 })), routeKey(r('100.64.0.0/26')));
  t.not(routeKey(r('100.64.0.0/26')), routeKey(r('100.64.0.0/27')));
  t.equal(routeKey(r('100.64.0.0/26', { type: 'blackhole', protocol: 4 })), routeKey(r('100.64.0.0/26')), 'type and protocol are not identity');
  t.equal(effectiveMetric(r('fd00::/8', { metric: 7 })), 7);
});

t.test('sameRoute', async (t) => {
  const base = r('100.64.0.0/26', { ...gw('198.18.0.2'), ifName: 'eth0' });
  const cases: Array<[string, KernelRoute, boolean]> = [
    ['identical', { ...base }, true],
    ['other protocol', { ...base, protocol: 4 }, true],
    ['other gateway', { ...base, ...gw('198.18.0.3') }, false],
    ['no gateway', r('100.64.0.0/26', { ifName: 'eth0' }), false],
    ['other device', { ...base, ifName: 'eth1' }, false],
    ['device left open', r('100.64.0.0/26', gw('198.18.0.2')), true],
    ['same device by index only', { ...base, ifName: undefined, ifIndex: 3 }, false],
    ['other type', { ...base, type: 'blackhole' }, false],
    ['other metric', { ...base, metric: 1 }, false],
    ['explicit default metric', { ...base, metric: 0 }, true],
  ];
  for (const [name, other, want] of cases) {
    t.equal(sameRoute(base, other), want, name);
    t.equal(sameRoute(other, base), want, `${name} (symmetric)`);
  }
  const byIndex = r('100.64.0.0/26', { ...gw('198.18.0.2'), ifIndex: 3 });
  t.ok(sameRoute(byIndex, { ...byIndex }), 'index against index');
  t.notOk(sameRoute(byIndex, { ...byIndex, ifIndex: 4 }), 'different index');
  t.ok(sameRoute({ ...byIndex, ifName: 'eth0' }, { ...byIndex, ifName: 'eth0', ifIndex: 9 }), 'names win over indexes');
  const bh = r('fd00:64::/64', { type: 'blackhole' });
  t.ok(sameRoute(bh, { ...bh, ifName: 'lo', ifIndex: 1 }), 'blackhole: the kernel puts IPv6 ones on lo');
});

t.test('describeRoute', async (t) => {
  t.equal(describeRoute(r('100.64.0.0/26', { ...gw('198.18.0.2'), ifName: 'eth0', metric: 5 })),
    '100.64.0.0/26 via 198.18.0.2 dev eth0 table 254 proto 84 metric 5');
  t.equal(describeRoute(r('fd00:64::/64', { type: 'unreachable', ifIndex: 1, table: 1000 })),
    'unreachable fd00:64::/64 dev #1 table 1000 proto 84');
});

t.test('diffRoutes: examples', async (t) => {
  const stale = r('100.64.9.0/26', gw('198.18.0.2'));
  const moved = r('100.64.1.0/26', gw('198.18.0.2'));
  const same = r('100.64.2.0/26', { ...gw('198.18.0.2'), ifName: 'eth0', ifIndex: 2 });
  const foreign = r('100.64.3.0/26', { ...gw('198.18.0.9'), protocol: 4 });
  const foreignElsewhere = r('100.64.4.0/26', { ...gw('198.18.0.9'), protocol: 4 });
  const pod = r('100.64.5.7/32', { ifName: 'veth1' });
  const observed = [stale, moved, same, foreign, foreignElsewhere, pod];
  const desired = [
    r('100.64.1.0/26', gw('198.18.0.3')),
    r('100.64.2.0/26', gw('198.18.0.2')),
    r('100.64.3.0/26', gw('198.18.0.4')),
    r('100.64.6.0/26', { ...gw('198.18.0.5'), protocol: 0 }),
  ];
  const d = diffRoutes(desired, observed, { protocol: OURS, keep: (x) => x.ifName?.startsWith('veth') ?? false });
  t.same(show(d.add), ['100.64.6.0/26 via 198.18.0.5 table 254 proto 84'], 'desired routes are stamped with our protocol');
  t.same(show(d.replace), ['100.64.1.0/26 via 198.18.0.3 table 254 proto 84']);
  t.same(show(d.remove), ['100.64.9.0/26 via 198.18.0.2 table 254 proto 84'], 'the kept pod route stays');
  t.same(d.conflicts.map((c) => [describeRoute(c.desired), c.foreign]), [['100.64.3.0/26 via 198.18.0.4 table 254 proto 84', foreign]]);
  t.notOk(isEmptyDiff(d));
  t.ok(isEmptyDiff(diffRoutes([], [foreign], { protocol: OURS })), 'foreign routes alone: nothing to do');
  t.same(show(diffRoutes([], [pod], { protocol: OURS }).remove), [describeRoute(pod)], 'without keep, unwanted owned routes go');
});

t.test('diffRoutes: duplicate keys', async (t) => {
  const a = r('100.64.1.0/26', gw('198.18.0.3'));
  const b = r('100.64.1.0/26', gw('198.18.0.2'));
  const d1 = diffRoutes([a, b], [], { protocol: OURS });
  const d2 = diffRoutes([b, a], [], { protocol: OURS });
  t.same(show(d1.add), ['100.64.1.0/26 via 198.18.0.2 table 254 proto 84'], 'first in route order wins');
  t.same(d1, d2, 'whatever the input order');

  // Several owned routes at one key (IPv4 `ip route append`): keep the match, drop the rest.
  const dup = diffRoutes([a], [b, a], { protocol: OURS });
  t.same([dup.add, dup.replace, show(dup.remove)], [[], [], [describeRoute(b)]]);
  const noMatch = diffRoutes([r('100.64.1.0/26', gw('198.18.0.7'))], [b, a], { protocol: OURS });
  t.same(show(noMatch.replace), ['100.64.1.0/26 via 198.18.0.7 table 254 proto 84']);
  t.same(show(noMatch.remove), [describeRoute(a)], 'one sibling is replaced, the other removed');
  const mixed = diffRoutes([r('100.64.1.0/26', gw('198.18.0.7'))], [a, { ...b, protocol: 4 }], { protocol: OURS });
  t.same([mixed.add, mixed.replace, mixed.remove, mixed.conflicts.length], [[], [], [], 1], 'a conflict leaves our sibling alone');
});

t.test('compareRoutes is a total order on distinct routes', async (t) => {
  const base = r('100.64.1.0/26', gw('198.18.0.2'));
  const variants = [
    { ...base, table: 1000 },
    r('100.64.1.0/27', gw('198.18.0.2')),
    { ...base, metric: 3 },
    { ...base, type: 'blackhole' as const, gateway: undefined },
    { ...base, ...gw('198.18.0.3') },
    { ...base, ifName: 'eth0' },
    { ...base, ifIndex: 2 },
    { ...base, protocol: 4 },
    { ...base, metric: 0 },
  ];
  for (const v of variants) {
    t.not(compareRoutes(base, v), 0, describeRoute(v));
    t.equal(Math.sign(compareRoutes(base, v)), -Math.sign(compareRoutes(v, base)), 'antisymmetric');
  }
  t.equal(compareRoutes(base, { ...base }), 0);
});

// --- properties --------------------------------------------------------------

const protocolArb = fc.constantFrom(OURS, OURS, OURS, 4, 2, 12);
const routeArb: fc.Arbitrary<KernelRoute> = fc
  .record({
    family: fc.constantFrom(4, 6),
    net: fc.nat(5),
    len: fc.constantFrom(24, 26, 32),
    table: fc.constantFrom(254, 1000),
    metric: fc.constantFrom(undefined, 0, 5, 1024),
    type: fc.constantFrom('unicast', 'unicast', 'blackhole', 'unreachable'),
    hop: fc.nat(2),
    dev: fc.constantFrom(undefined, 'eth0', 'eth1', 'veth7'),
    protocol: protocolArb,
  })
  .map(({ family, net, len, table, metric, type, hop, dev, protocol }) => {
    const dst = family === 4 ? parsePrefix(`100.64.${net}.0/${len}`) : parsePrefix(`fd00:64:${net}::/${len + 40}`);
    const route: { -readonly [K in keyof KernelRoute]: KernelRoute[K] } = { dst, type, table, protocol };
    if (metric !== undefined) route.metric = metric;
    if (type === 'unicast') {
      route.gateway = parseAddress(family === 4 ? `198.18.0.${hop + 2}` : `fd00:18::${hop + 2}`);
      if (dev !== undefined) route.ifName = dev;
    }
    return route;
  });

/** A kernel table: at most one route per key. */
const observedArb = fc.uniqueArray(routeArb, { selector: routeKey, maxLength: 25 });
const desiredArb = fc.array(routeArb, { maxLength: 25 });
const keepArb = fc.constantFrom<undefined | ((x: KernelRoute) => boolean)>(
  undefined,
  (x) => x.ifName === 'veth7',
  (x) => x.dst.len === 32 || x.dst.len === 72,
);

/** What the kernel does with a diff, failing on anything it would refuse or anything we must not do. */
function applyToTable(observed: readonly KernelRoute[], d: RouteDiff): KernelRoute[] {
  const table = new Map(observed.map((x) => [routeKey(x), x]));
  for (const x of [...d.replace, ...d.add, ...d.remove]) {
    if (x.protocol !== OURS) throw new Error(`diff touches a foreign route: ${describeRoute(x)}`);
  }
  for (const x of d.replace) {
    const cur = table.get(routeKey(x));
    if (cur?.protocol !== OURS) throw new Error(`replace of a key we do not hold: ${describeRoute(x)}`);
    table.set(routeKey(x), x);
  }
  for (const x of d.add) {
    if (table.has(routeKey(x))) throw new Error(`EEXIST: ${describeRoute(x)}`);
    table.set(routeKey(x), x);
  }
  for (const x of d.remove) {
    const cur = table.get(routeKey(x));
    if (cur !== x) throw new Error(`remove of a route not observed: ${describeRoute(x)}`);
    table.delete(routeKey(x));
  }
  return [...table.values()];
}

const RUNS = { numRuns: 1000 };

t.test('property: apply yields the desired owned routes, foreign ones untouched', async (t) => {
  fc.assert(
    fc.property(desiredArb, observedArb, keepArb, (desired, observed, keep) => {
      const d = diffRoutes(desired, observed, { protocol: OURS, keep });
      const after = applyToTable(observed, d);
      const byKey = new Map(after.map((x) => [routeKey(x), x]));
      // Foreign routes: exactly the observed ones, same objects.
      const foreignBefore = observed.filter((x) => x.protocol !== OURS);
      const foreignAfter = after.filter((x) => x.protocol !== OURS);
      if (foreignAfter.length !== foreignBefore.length || foreignBefore.some((x) => byKey.get(routeKey(x)) !== x)) return false;
      // Owned routes: the desired winner at each key not held by a foreign route …
      const wantKeys = new Set(desired.map(routeKey));
      const conflictKeys = new Set(d.conflicts.map((c) => routeKey(c.desired)));
      for (const c of d.conflicts) if (c.foreign.protocol === OURS || routeKey(c.foreign) !== routeKey(c.desired)) return false;
      for (const key of wantKeys) {
        const got = byKey.get(key);
        if (conflictKeys.has(key)) {
          if (got?.protocol === OURS) return false;
          continue;
        }
        const winner = [...desired].filter((x) => routeKey(x) === key).sort(compareRoutes)[0];
        if (got === undefined || winner === undefined || got.protocol !== OURS || !sameRoute(got, winner)) return false;
      }
      // … plus kept ones, and nothing else.
      for (const x of after) {
        if (x.protocol !== OURS || wantKeys.has(routeKey(x))) continue;
        if (!(keep?.(x) ?? false) || !observed.includes(x)) return false;
      }
      for (const x of observed) {
        if (x.protocol === OURS && !wantKeys.has(routeKey(x)) && (keep?.(x) ?? false) && byKey.get(routeKey(x)) !== x) return false;
      }
      return true;
    }),
    RUNS,
  );
  t.pass('1000 random tables');
});

t.test('property: diff after apply is empty', async (t) => {
  fc.assert(
    fc.property(desiredArb, observedArb, keepArb, (desired, observed, keep) => {
      const opts = { protocol: OURS, keep };
      const first = diffRoutes(desired, observed, opts);
      const second = diffRoutes(desired, applyToTable(observed, first), opts);
      return isEmptyDiff(second) && second.conflicts.length === first.conflicts.length;
    }),
    RUNS,
  );
  t.pass('1000 random tables');
});

t.test('property: diffing is deterministic and independent of input order', async (t) => {
  fc.assert(
    fc.property(desiredArb, observedArb, keepArb, fc.nat(), (desired, observed, keep, seed) => {
      const opts = { protocol: OURS, keep };
      const a = diffRoutes(desired, observed, opts);
      const b = diffRoutes(desired, observed, opts);
      const c = diffRoutes(shuffle(desired, seed), shuffle(observed, seed + 1), opts);
      const text = (d: RouteDiff): string =>
        JSON.stringify([show(d.add), show(d.replace), show(d.remove), d.conflicts.map((x) => [describeRoute(x.desired), describeRoute(x.foreign)])]);
      return text(a) === text(b) && text(a) === text(c);
    }),
    RUNS,
  );
  t.pass('1000 random tables');
});

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
