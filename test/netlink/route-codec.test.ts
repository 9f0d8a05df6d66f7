// The route codec without a kernel: routes survive encode → wire bytes →
// parse → decode (property), and the edge cases of decoding what the kernel
// (or another daemon) may send.

import t from 'tap';
import fc from 'fast-check';
import { AttrStream, rt } from 'netlink';
import { parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { describeRoute, routeKey, sameRoute, type KernelRoute } from '../../src/core/route.js';
import { addressToBuffer, bufferToAddress, decodeRoute, encodeRoute } from '../../src/netlink/route-codec.js';

function wire(msg: { data: rt.Route; attrs: rt.RouteAttrs }): Buffer {
  const out = new AttrStream();
  rt.formatRouteMessage({ kind: 'route', ...msg }, out);
  return Buffer.concat(out.bufs);
}

const names = (i: number): string | undefined => (i === 3 ? 'eth0' : undefined);

function r(dst: string, extra: Partial<KernelRoute> = {}): KernelRoute {
  return { dst: parsePrefix(dst), type: 'unicast', table: 254, protocol: 84, ...extra };
}

t.test('addresses to bytes and back', async (t) => {
  t.same([...addressToBuffer(4, parseAddress('198.18.0.2').addr)], [198, 18, 0, 2]);
  t.equal(addressToBuffer(6, parseAddress('fd00::1').addr).toString('hex'), 'fd000000000000000000000000000001');
  t.equal(bufferToAddress(Buffer.from([100, 64, 0, 1])), parseAddress('100.64.0.1').addr);
});

const routeArb: fc.Arbitrary<KernelRoute> = fc
  .record({
    family: fc.constantFrom(4, 6),
    addr: fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
    len: fc.nat(128),
    type: fc.constantFrom('unicast', 'blackhole', 'unreachable', 'prohibit', 'throw'),
    hop: fc.nat(65535),
    dev: fc.boolean(),
    table: fc.oneof(fc.integer({ min: 1, max: 255 }), fc.integer({ min: 256, max: 0xffffffff })),
    protocol: fc.integer({ min: 5, max: 255 }),
    metric: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
  })
  .map(({ family, addr, len, type, hop, dev, table, protocol, metric }) => {
    const bits = family === 4 ? 32 : 128;
    const l = len % (bits + 1);
    const a = (addr & ((1n << BigInt(bits)) - 1n)) & ~((1n << BigInt(bits - l)) - 1n);
    const route: { -readonly [K in keyof KernelRoute]: KernelRoute[K] } = {
      dst: { family, addr: a, len: l },
      type,
      table,
      protocol,
    };
    if (metric !== undefined) route.metric = metric;
    if (type === 'unicast') {
      route.gateway = { family, addr: BigInt(hop) + 1n };
      if (dev) route.ifIndex = 3;
    }
    return route;
  });

t.test('property: encode → bytes → parse → decode keeps the route', async (t) => {
  fc.assert(
    fc.property(routeArb, (route) => {
      const msg = encodeRoute(route, 'new', route.ifIndex);
      const back = decodeRoute(rt.parseRouteMessage(wire(msg)), names);
      return (
        back !== undefined &&
        routeKey(back) === routeKey(route) &&
        sameRoute(back, route) &&
        back.protocol === route.protocol &&
        back.ifName === (route.ifIndex === 3 ? 'eth0' : undefined)
      );
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 random routes');
});

t.test('encode: table, scope and refusals', async (t) => {
  const big = encodeRoute(r('100.64.0.0/24', { table: 70000 }), 'new', 3);
  t.equal(big.data.table, 252, 'rtm_table says COMPAT');
  t.equal(big.attrs.table, 70000, 'RTA_TABLE carries the id');
  t.equal(big.data.scope, 253, 'device route: scope link');
  t.equal(encodeRoute(r('100.64.0.0/24', { gateway: parseAddress('198.18.0.2') }), 'new', undefined).data.scope, 0);
  t.equal(encodeRoute(r('100.64.0.0/24'), 'del', 3).data.scope, 255, 'delete matches any scope');
  t.equal(encodeRoute(r('0.0.0.0/0', { type: 'blackhole' }), 'new', 3).attrs.dst, undefined, 'no RTA_DST for /0');
  t.equal(encodeRoute(r('100.64.0.0/24', { type: 'blackhole' }), 'new', 3).attrs.oif, undefined, 'no device on a blackhole');
  const refuse: Array<[string, KernelRoute]> = [
    ['local type', r('100.64.0.0/24', { type: 'local' })],
    ['gateway family', r('100.64.0.0/24', { gateway: parseAddress('fd00::1') })],
    ['gateway on blackhole', r('100.64.0.0/24', { type: 'blackhole', gateway: parseAddress('198.18.0.1') })],
    ['table 0', r('100.64.0.0/24', { table: 0 })],
  ];
  for (const [name, route] of refuse) t.throws(() => encodeRoute(route, 'new', undefined), { code: 'E_INTERNAL' }, name);
});

t.test('decode: what the kernel may send', async (t) => {
  const msg = (data: rt.Route, attrs: rt.RouteAttrs = {}): { data: rt.Route; attrs: rt.RouteAttrs } => ({ data, attrs });
  t.equal(decodeRoute(msg({ family: 128, dstLen: 32 }), names), undefined, 'ipmr family');
  t.equal(decodeRoute(msg({ family: 2, dstLen: 32, flags: { cloned: true } }), names), undefined, 'cloned cache entry');
  t.equal(decodeRoute(msg({ family: 2, dstLen: 40 }), names), undefined, 'impossible length');
  const named = decodeRoute(msg({ family: 2, dstLen: 24, table: 254, protocol: 'STATIC', type: 'UNICAST' }, { dst: Buffer.from([100, 64, 0, 9]), oif: 3 }), names);
  t.equal(named && describeRoute(named), '100.64.0.0/24 dev eth0 table 254 proto 4 metric 0', 'names become numbers, host bits dropped');
  const v6 = decodeRoute(msg({ family: 10, dstLen: 0, table: 252, protocol: 186, type: 7 }, { table: 5000, oif: 1 }), names);
  t.equal(v6 && describeRoute(v6), 'unreachable ::/0 dev #1 table 5000 proto 186 metric 1024', 'default route, RTA_TABLE, unnamed device');
  const odd = decodeRoute(msg({ family: 2, dstLen: 8, type: 42 as rt.RouteType }, { dst: Buffer.from([10, 0, 0, 0]), gateway: Buffer.from([1, 2]) }), names);
  t.match(odd, { type: 'unspec', table: 0, protocol: 0 }, 'unknown type, missing table');
  t.equal(odd?.gateway, undefined, 'malformed gateway ignored');
});
