// Property test of the incremental route index: random sequences of
// advertisement puts and deletes and own-block changes (same-subnet and
// other-subnet peers, shared and overlapping prefixes, next hops of the other
// family or equal to this node's IP). After every step the index equals the
// full computation (desiredRoutes of the whole state, one route per key as
// diffRoutes resolves them), and the delta it returned is exactly the change.
import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { parseAddress, parsePrefix, type Prefix } from '../../src/core/cidr.js';
import { desiredRoutes, type DesiredRoutesInput, type OwnBlocksRoute, type PeerAdvertisement } from '../../src/core/desired-routes.js';
import { RouteIndex, type RouteDelta } from '../../src/core/route-index.js';
import { compareRoutes, describeRoute, routeKey, sameRoute, type KernelRoute } from '../../src/core/route.js';

const RUNS = 300;
const NODES = ['a', 'b', 'c', 'd', 'e'];
const PREFIXES = ['100.96.0.0/26', '100.96.0.64/26', '100.96.0.0/25', '100.96.1.0/26', '100.96.1.64/26', '100.96.2.0/24', 'fd00:96::/64'].map(parsePrefix);
const HOPS = ['198.18.1.10', '198.18.1.11', '198.18.1.12', 'fd00::11'].map(parseAddress);

type Step =
  | { op: 'advert'; node: string; subnet: string; hop: number; prefixes: number[] }
  | { op: 'withdraw'; node: string }
  | { op: 'own'; prefixes: number[] };

const arbStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('advert' as const),
      node: fc.constantFrom(...NODES),
      subnet: fc.constantFrom('s1', 's1', 's2'),
      hop: fc.nat({ max: HOPS.length - 1 }),
      prefixes: fc.array(fc.nat({ max: PREFIXES.length - 1 }), { maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('withdraw' as const), node: fc.constantFrom(...NODES) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('own' as const), prefixes: fc.array(fc.nat({ max: PREFIXES.length - 1 }), { maxLength: 3 }) }) },
);

/** desiredRoutes' output as the route agent acts on it: one route per key, the first in compareRoutes order. */
function oracle(input: DesiredRoutesInput): Map<string, KernelRoute> {
  const out = new Map<string, KernelRoute>();
  for (const r of desiredRoutes(input).sort(compareRoutes)) if (!out.has(routeKey(r))) out.set(routeKey(r), r);
  return out;
}

const show = (m: ReadonlyMap<string, KernelRoute>): string[] => [...m.values()].sort(compareRoutes).map(describeRoute);

t.test('after every step the index equals the full computation, and each delta is exactly what changed', async () => {
  fc.assert(
    fc.property(fc.constantFrom<OwnBlocksRoute>('unreachable', 'blackhole', 'none'), fc.array(arbStep, { maxLength: 40 }), (ownBlocks, steps) => {
      const config = { self: 'a', selfIP: HOPS[0] as (typeof HOPS)[number], subnet: 's1', iface: 'eth0', table: 254, protocol: 84, ownBlocks };
      const index = new RouteIndex(config);
      const adverts = new Map<string, PeerAdvertisement>();
      let own: Prefix[] = [];
      let held = new Map<string, KernelRoute>();
      for (const step of steps) {
        let delta: RouteDelta;
        if (step.op === 'advert') {
          const a = { node: step.node, subnet: step.subnet, nextHop: HOPS[step.hop] as PeerAdvertisement['nextHop'], prefixes: step.prefixes.map((i) => PREFIXES[i] as Prefix) };
          adverts.set(step.node, a);
          delta = index.setAdvertisement(step.node, a);
        } else if (step.op === 'withdraw') {
          adverts.delete(step.node);
          delta = index.setAdvertisement(step.node, undefined);
        } else {
          own = step.prefixes.map((i) => PREFIXES[i] as Prefix).filter((p) => p.family === 4);
          delta = index.setOwnPrefixes(own);
        }
        const want = oracle({ ...config, advertisements: adverts.values(), ownPrefixes: own });
        const now = new Map(index.routes().map((r) => [routeKey(r), r]));
        assert.deepEqual(show(now), show(want), 'index equals desiredRoutes');
        for (const [key, r] of delta) {
          const before = held.get(key);
          assert.ok(before === undefined ? r !== undefined : r === undefined || !sameRoute(before, r), `delta at ${key} is a change`);
          if (r === undefined) held.delete(key);
          else held.set(key, r);
        }
        assert.deepEqual(show(held), show(want), 'previous routes + delta = new routes');
        held = new Map(held);
      }
    }),
    { numRuns: RUNS },
  );
});

t.test('a change touches only its routes', async (t) => {
  const index = new RouteIndex({ self: 'a', selfIP: parseAddress('198.18.1.10'), subnet: 's1', iface: 'eth0', table: 254, protocol: 84, ownBlocks: 'unreachable' });
  for (let i = 0; i < 1000; i++) {
    const dst = parsePrefix(`100.${96 + Math.floor(i / 256)}.${i % 256}.0/26`);
    index.setAdvertisement(`n${i}`, { node: `n${i}`, subnet: 's1', nextHop: parseAddress('198.18.1.11'), prefixes: [dst] });
  }
  t.equal(index.size, 1000);
  const delta = index.setAdvertisement('n7', { node: 'n7', subnet: 's1', nextHop: parseAddress('198.18.1.12'), prefixes: [parsePrefix('100.96.7.0/26')] });
  t.equal(delta.size, 1, 'one route changed');
  t.same([...delta.values()].map((r) => (r === undefined ? '' : describeRoute(r))), ['100.96.7.0/26 via 198.18.1.12 dev eth0 table 254 proto 84']);
  t.equal(index.setAdvertisement('n7', undefined).size, 1, 'withdrawn: one route removed');
  t.equal(index.setAdvertisement('n8', { node: 'n8', subnet: 's1', nextHop: parseAddress('198.18.1.11'), prefixes: [parsePrefix('100.96.8.0/26')] }).size, 0, 'the same advertisement again changes nothing');
});
