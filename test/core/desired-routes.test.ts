import t from 'tap';
import fc from 'fast-check';
import { formatAddress, formatPrefix, parseAddress, parsePrefix, type Prefix } from '../../src/core/cidr.js';
import { desiredRoutes, isPodRoute, type DesiredRoutesInput, type PeerAdvertisement } from '../../src/core/desired-routes.js';
import { describeRoute, type KernelRoute } from '../../src/core/route.js';

const P = parsePrefix;
const A = parseAddress;
const peer = (node: string, subnet: string, nextHop: string, prefixes: string[]): PeerAdvertisement => ({
  node,
  subnet,
  nextHop: A(nextHop),
  prefixes: prefixes.map(P),
});
const base: DesiredRoutesInput = {
  self: 'a',
  selfIP: A('198.18.1.10'),
  subnet: 's1',
  iface: 'eth0',
  table: 254,
  protocol: 84,
  ownBlocks: 'unreachable',
  advertisements: [],
  ownPrefixes: [],
};
const show = (rs: KernelRoute[]): string[] => rs.map(describeRoute);

t.test('peers in the same subnet, own blocks, nothing else', async (t) => {
  const routes = desiredRoutes({
    ...base,
    advertisements: [
      peer('a', 's1', '198.18.1.10', ['100.96.0.0/26']), // self: skipped
      peer('b', 's1', '198.18.1.11', ['100.96.1.0/26', '100.96.2.0/25']),
      peer('c', 's2', '198.18.2.10', ['100.96.16.0/26']), // other subnet: skipped
      peer('d', 's1', '198.18.1.10', ['100.96.3.0/26']), // claims our IP as next hop: skipped
      peer('e', 's1', 'fd00::1', ['100.96.4.0/26']), // family mismatch: skipped
    ],
    ownPrefixes: [P('100.96.0.0/26'), P('100.96.0.64/26')],
  });
  t.same(
    routes.map((r) => [formatPrefix(r.dst), r.type, r.gateway === undefined ? '' : formatAddress(r.gateway), r.ifName ?? '', r.table, r.protocol]),
    [
      ['100.96.1.0/26', 'unicast', '198.18.1.11', 'eth0', 254, 84],
      ['100.96.2.0/25', 'unicast', '198.18.1.11', 'eth0', 254, 84],
      ['100.96.0.0/25', 'unreachable', '', '', 254, 84],
    ],
  );
});

t.test('own blocks: blackhole or none', async (t) => {
  const own = [P('100.96.0.0/26')];
  t.same(show(desiredRoutes({ ...base, ownBlocks: 'blackhole', ownPrefixes: own })).length, 1);
  t.equal(desiredRoutes({ ...base, ownBlocks: 'blackhole', ownPrefixes: own })[0]?.type, 'blackhole');
  t.same(desiredRoutes({ ...base, ownBlocks: 'none', ownPrefixes: own }), []);
});

t.test('pod routes are recognised and peer routes are not', async (t) => {
  const pod: KernelRoute = { dst: P('100.96.0.5/32'), type: 'unicast', ifName: 'veth1234', table: 254, protocol: 84 };
  t.ok(isPodRoute(pod, 84, 'eth0'));
  t.notOk(isPodRoute({ ...pod, protocol: 4 }, 84, 'eth0'), 'other protocol');
  t.notOk(isPodRoute({ ...pod, ifName: 'eth0' }, 84, 'eth0'), 'out of the peer interface');
  t.notOk(isPodRoute({ ...pod, dst: P('100.96.0.0/26') }, 84, 'eth0'), 'not a host route');
  t.notOk(isPodRoute({ ...pod, type: 'blackhole' }, 84, 'eth0'), 'not unicast');
  const { ifName: _drop, ...noDev } = pod;
  t.notOk(isPodRoute(noDev, 84, 'eth0'), 'no device');
  t.ok(isPodRoute({ ...pod, dst: P('fd00::5/128') }, 84, 'eth0'), 'IPv6 host route');
});

t.test('property: only same-subnet peers, every accepted prefix exactly once', async (t) => {
  const arbAdvert = fc.record({
    node: fc.constantFrom('a', 'b', 'c', 'd'),
    subnet: fc.constantFrom('s1', 's2'),
    host: fc.integer({ min: 10, max: 14 }),
    blocks: fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 4 }),
  });
  fc.assert(
    fc.property(fc.array(arbAdvert, { maxLength: 8 }), (ads) => {
      const advertisements = ads.map((a) =>
        peer(a.node, a.subnet, `198.18.${a.subnet === 's1' ? 1 : 2}.${a.host}`, a.blocks.map((b) => `100.96.${b}.0/26`)),
      );
      const routes = desiredRoutes({ ...base, advertisements });
      const expected = advertisements
        .filter((a) => a.node !== 'a' && a.subnet === 's1' && formatAddress(a.nextHop) !== '198.18.1.10')
        .flatMap((a) => a.prefixes.map((p: Prefix) => `${formatPrefix(p)} via ${formatAddress(a.nextHop)}`));
      const got = routes.map((r) => `${formatPrefix(r.dst)} via ${formatAddress(r.gateway!)}`);
      return JSON.stringify(got) === JSON.stringify(expected) && routes.every((r) => r.ifName === 'eth0' && r.protocol === 84);
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random advertisement sets');
});
