import t from 'tap';
import fc from 'fast-check';
import {
  aggregate,
  comparePrefix,
  contains,
  equal,
  formatAddress,
  formatPrefix,
  halves,
  lastAddress,
  nthAddress,
  overlaps,
  parseAddress,
  parsePrefix,
  parsePrefixKey,
  prefixKey,
  prefixOf,
  sibling,
  size,
  split,
  subtract,
  supernet,
  tryParsePrefix,
  type Prefix,
} from '../../src/core/cidr.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';

const P = parsePrefix;
const fmt = (ps: Prefix[]): string[] => ps.map(formatPrefix);

t.test('parse and format round-trip', async (t) => {
  const cases = [
    '0.0.0.0/0',
    '100.64.0.0/10',
    '100.96.0.0/11',
    '198.18.0.0/24',
    '255.255.255.255/32',
    '::/0',
    '2001:db8::/32',
    'fd00:1:2:3::/64',
    '2001:db8:0:1:1:1:1:1/128',
    '1::/16',
  ];
  for (const c of cases) t.equal(formatPrefix(P(c)), c, c);
  t.equal(formatPrefix(P('2001:DB8:0:0::/64')), '2001:db8::/64', 'IPv6 is printed in RFC 5952 form');
  t.equal(formatAddress(parseAddress('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1', 'leftmost longest zero run');
  t.equal(formatAddress(parseAddress('1:0:2:3:4:5:6:7')), '1:0:2:3:4:5:6:7', 'single zero group not compressed');
  t.equal(parseAddress('10.1.2.3').addr, 0x0a010203n);
  t.equal(parseAddress('::1').family, 6);
  t.equal(formatAddress(parseAddress('::ffff:100.100.0.1')), '::ffff:6464:1', 'dotted IPv4 tail keeps the upper groups');
  t.equal(formatAddress(parseAddress('64:ff9b::100.64.0.1')), '64:ff9b::6440:1');
  t.throws(() => parseAddress('::ffff:100.100.0.256'), /invalid IP address/);
});

t.test('parse rejects bad input with a clear message', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['10.0.0.5/24', /not a canonical prefix.*did you mean 10\.0\.0\.0\/24/],
    ['2001:db8::1/64', /did you mean 2001:db8::\/64/],
    ['10.0.0.0', /missing "\/length"/],
    ['10.0.0.0/33', /length must be 0\.\.32/],
    ['::/129', /length must be 0\.\.128/],
    ['10.0.0.0/024', /length/],
    ['10.0.0.0/', /length/],
    ['10.0.0/24', /bad address/],
    ['10.0.0.256/32', /bad address/],
    ['010.0.0.0/8', /bad address/],
    ['10.0.0.0 /8', /bad address/],
    ['2001:db8:::/48', /bad address/],
    ['hello/8', /bad address/],
    ['', /missing/],
  ];
  for (const [text, re] of bad) {
    t.throws(() => P(text), re, text);
    const r = tryParsePrefix(text);
    t.type(r, 'string', `${text} via tryParsePrefix`);
  }
  t.match(tryParsePrefix(42), /expected a CIDR prefix string/);
  t.throws(() => P(7 as unknown as string), /not a string/);
  const err = (() => {
    try {
      parseAddress('1.2.3');
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(err instanceof TrellisError && err.code === ErrorCode.InvalidCidr, 'errors carry the E_INVALID_CIDR code');
});

t.test('keys', async (t) => {
  t.equal(prefixKey(P('100.64.1.0/26')), '100.64.1.0-26');
  t.equal(prefixKey(P('fd00::/64')), 'fd00::-64');
  t.ok(equal(parsePrefixKey('100.64.1.0-26'), P('100.64.1.0/26')));
  t.ok(equal(parsePrefixKey('fd00::-64'), P('fd00::/64')));
  t.throws(() => parsePrefixKey('100.64.1.0'), /missing "-length"/);
});

t.test('contains, overlaps, size, supernet, sibling, halves, split', async (t) => {
  const net = P('100.96.0.0/11');
  t.ok(contains(net, P('100.96.0.0/26')));
  t.ok(contains(net, P('100.127.255.192/26')));
  t.notOk(contains(net, P('100.128.0.0/26')));
  t.notOk(contains(P('100.96.0.0/26'), net));
  t.ok(contains(net, parseAddress('100.100.1.1')));
  t.notOk(contains(net, parseAddress('fd00::1')));
  t.notOk(contains(P('::/0'), P('0.0.0.0/0')), 'families never contain each other');
  t.ok(overlaps(P('10.0.0.0/8'), P('10.1.0.0/16')));
  t.ok(overlaps(P('10.1.0.0/16'), P('10.0.0.0/8')));
  t.notOk(overlaps(P('10.0.0.0/9'), P('10.128.0.0/9')));
  t.equal(size(P('10.0.0.0/26')), 64n);
  t.equal(size(P('::/64')), 1n << 64n);
  t.equal(formatAddress({ family: 4, addr: lastAddress(P('10.0.0.0/26')) }), '10.0.0.63');
  t.equal(formatPrefix(supernet(P('10.0.0.64/26'))), '10.0.0.0/25');
  t.equal(formatPrefix(supernet(P('10.0.0.64/26'), 8)), '10.0.0.0/8');
  t.throws(() => supernet(P('10.0.0.0/8'), 9), /supernet/);
  t.equal(formatPrefix(sibling(P('10.0.0.64/26'))), '10.0.0.0/26');
  t.equal(formatPrefix(sibling(P('10.0.0.0/26'))), '10.0.0.64/26');
  t.throws(() => sibling(P('0.0.0.0/0')), /no sibling/);
  t.same(fmt(halves(P('10.0.0.0/24'))), ['10.0.0.0/25', '10.0.0.128/25']);
  t.throws(() => halves(P('10.0.0.1/32')), /cannot be split/);
  t.same(fmt(split(P('10.0.0.0/24'), 26)), ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
  t.same(fmt(split(P('10.0.0.0/24'), 24)), ['10.0.0.0/24']);
  t.throws(() => split(P('10.0.0.0/24'), 23), /cannot split/);
  t.throws(() => split(P('10.0.0.0/8'), 32), /more than/);
  t.equal(formatPrefix(prefixOf(parseAddress('10.1.2.3'), 16)), '10.1.0.0/16');
  t.throws(() => prefixOf(parseAddress('10.1.2.3'), 33), /out of range/);
  t.equal(formatAddress(nthAddress(P('10.0.0.0/30'), 3n)), '10.0.0.3');
  t.throws(() => nthAddress(P('10.0.0.0/30'), 4n), /outside/);
  t.ok(comparePrefix(P('10.0.0.0/8'), P('10.0.0.0/9')) < 0, 'shorter first at the same address');
  t.ok(comparePrefix(P('fd00::/8'), P('10.0.0.0/8')) > 0, 'IPv4 sorts before IPv6');
});

t.test('aggregate: tables', async (t) => {
  const cases: Array<[string[], string[]]> = [
    [[], []],
    [['10.0.0.0/26', '10.0.0.64/26'], ['10.0.0.0/25']],
    [['10.0.0.64/26', '10.0.0.128/26'], ['10.0.0.64/26', '10.0.0.128/26']],
    [['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/25'], ['10.0.0.0/24']],
    [['10.0.0.0/24', '10.0.0.64/26', '10.0.0.0/24'], ['10.0.0.0/24']],
    [['0.0.0.0/1', '128.0.0.0/1'], ['0.0.0.0/0']],
    [['10.0.0.0/26', 'fd00::/65', 'fd00:0:0:0:8000::/65'], ['10.0.0.0/26', 'fd00::/64']],
    [['10.0.0.192/26', '10.0.0.0/26', '10.0.0.128/26', '10.0.0.64/26'], ['10.0.0.0/24']],
  ];
  for (const [input, want] of cases) t.same(fmt(aggregate(input.map(P))), want, input.join(' '));
});

t.test('subtract: tables', async (t) => {
  t.same(fmt(subtract(P('10.0.0.0/24'), [P('10.0.0.0/26')])), ['10.0.0.64/26', '10.0.0.128/25']);
  t.same(fmt(subtract(P('10.0.0.0/24'), [])), ['10.0.0.0/24']);
  t.same(fmt(subtract(P('10.0.0.0/24'), [P('10.0.0.0/8')])), []);
  t.same(fmt(subtract(P('10.0.0.0/24'), [P('11.0.0.0/8'), P('fd00::/8')])), ['10.0.0.0/24']);
  t.same(fmt(subtract(P('10.0.0.0/30'), [P('10.0.0.1/32'), P('10.0.0.2/32')])), ['10.0.0.0/32', '10.0.0.3/32']);
});

// --- properties: on random small IPv4 universes so that address sets can be enumerated exactly.

const UNIVERSE = P('100.64.0.0/22'); // 1024 addresses
const arbPrefixIn = (outer: Prefix): fc.Arbitrary<Prefix> =>
  fc.integer({ min: outer.len, max: 32 }).chain((len) =>
    fc
      .bigInt({ min: 0n, max: size(outer) - 1n })
      .map((off) => prefixOf({ family: 4, addr: outer.addr + off }, len)),
  );

function addressSet(ps: readonly Prefix[]): Set<bigint> {
  const s = new Set<bigint>();
  for (const p of ps) for (let a = p.addr; a <= lastAddress(p); a++) s.add(a);
  return s;
}

const sameSet = (a: Set<bigint>, b: Set<bigint>): boolean => a.size === b.size && [...a].every((x) => b.has(x));

t.test('aggregate is an exact, minimal, disjoint cover', async (t) => {
  fc.assert(
    fc.property(fc.array(arbPrefixIn(UNIVERSE), { maxLength: 30 }), (ps) => {
      const agg = aggregate(ps);
      if (!sameSet(addressSet(agg), addressSet(ps))) return false;
      for (let i = 1; i < agg.length; i++) {
        const a = agg[i - 1]!;
        const b = agg[i]!;
        if (comparePrefix(a, b) >= 0 || overlaps(a, b)) return false;
        // minimal: no two neighbours are mergeable siblings
        if (a.len === b.len && equal(sibling(a), b)) return false;
      }
      // idempotent
      return fmt(aggregate(agg)).join() === fmt(agg).join();
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random sets');
});

t.test('subtract is exact and its parts are disjoint', async (t) => {
  fc.assert(
    fc.property(arbPrefixIn(UNIVERSE), fc.array(arbPrefixIn(UNIVERSE), { maxLength: 10 }), (p, holes) => {
      const rest = subtract(p, holes);
      const want = addressSet([p]);
      for (const a of addressSet(holes)) want.delete(a);
      if (!sameSet(addressSet(rest), want)) return false;
      // already minimal: aggregating changes nothing
      return fmt(aggregate(rest)).join() === fmt(rest).join();
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random subtractions');
});

t.test('parse/format round-trip on random addresses', async (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }), (addr, len) => {
      const p = prefixOf({ family: 6, addr }, len);
      return equal(parsePrefix(formatPrefix(p)), p);
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), fc.integer({ min: 0, max: 32 }), (addr, len) => {
      const p = prefixOf({ family: 4, addr }, len);
      return equal(parsePrefix(formatPrefix(p)), p) && equal(parsePrefixKey(prefixKey(p)), p);
    }),
    { numRuns: 1000 },
  );
  t.pass('IPv4 and IPv6');
});
