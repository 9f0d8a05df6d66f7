// Table-driven tests of the BGP announcement planner (the VPC planner under a
// peer's prefix limit) and of ToR-mode announcements.
import t from 'tap';
import { contains, formatPrefix, parsePrefix } from '../../src/core/cidr.js';
import type { Topology } from '../../src/core/topology.js';
import { planBgpRoutes, planTorRoutes, type BgpPlanNode } from '../../src/core/bgp-plan.js';
import { TrellisError } from '../../src/errors.js';

const P = parsePrefix;

/** `n` subnets: subnet-<i> with pod prefix 100.96.<16·i>.0/20 and hosts 198.18.<i>.0/24. */
function topology(n: number): Topology {
  return {
    network: P('100.96.0.0/16'),
    blockSize: 26,
    nodeHomeSize: 24,
    subnetSize: 20,
    zones: Array.from({ length: n }, (_, i) => ({
      name: `zone-${i}`,
      subnets: [
        {
          id: `subnet-${i}`,
          zone: `zone-${i}`,
          cidr: P(`198.18.${i}.0/24`),
          podPrefix: P(`100.96.${16 * i}.0/20`),
          podPrefixExplicit: true,
          routeTable: undefined,
        },
      ],
    })),
  };
}

/** Node j of subnet i owns one /26 in its own /24 home. */
function nodes(subnets: number, perSubnet: number, unhealthy: string[] = []): BgpPlanNode[] {
  return Array.from({ length: subnets }, (_, i) =>
    Array.from({ length: perSubnet }, (_, j) => ({
      name: `h${i}-${j}`,
      subnet: `subnet-${i}`,
      hostIP: `198.18.${i}.${10 + j}`,
      blocks: [P(`100.96.${16 * i + j}.0/26`)],
      healthy: !unhealthy.includes(`h${i}-${j}`),
    })),
  ).flat();
}

t.test('a limit of 3 with 3 subnets of 10 nodes yields exactly 3 prefixes, one per subnet', async (t) => {
  const plan = planBgpRoutes({ topology: topology(3), nodes: nodes(3, 10), maxPrefixes: 3 });
  t.equal(plan.routes.length, 3);
  t.equal(plan.clusterRoutes, 3);
  t.same(plan.routes.map((r) => r.subnet), ['subnet-0', 'subnet-1', 'subnet-2']);
  for (const r of plan.routes) {
    const i = Number(r.subnet.split('-')[1]);
    t.ok(contains(P(`100.96.${16 * i}.0/20`), r.prefix), `${formatPrefix(r.prefix)} inside the pod prefix of ${r.subnet}`);
    // Every claimed block of the subnet lies under its one prefix.
    for (let j = 0; j < 10; j++) t.ok(contains(r.prefix, P(`100.96.${16 * i + j}.0/26`)));
    t.match(r.nextHops[0], new RegExp(`^198\\.18\\.${i}\\.`), 'next hop in the same subnet');
  }
  t.same(plan.uncovered, []);
});

t.test('one route per node when the limit allows, each through its owner', async (t) => {
  const plan = planBgpRoutes({ topology: topology(3), nodes: nodes(3, 4), maxPrefixes: 100 });
  t.equal(plan.routes.length, 12);
  for (const r of plan.routes) {
    const [i, j] = r.node.slice(1).split('-').map(Number) as [number, number];
    t.equal(formatPrefix(r.prefix), `100.96.${16 * i + j}.0/26`);
    t.same(r.nextHops, [`198.18.${i}.${10 + j}`]);
  }
  t.equal(plan.extraHopShare, 0);
});

t.test('an exporter announces only the subnets it serves, within the shared split', async (t) => {
  const all = planBgpRoutes({ topology: topology(3), nodes: nodes(3, 10), maxPrefixes: 7 });
  t.ok(all.clusterRoutes <= 7);
  const mine = planBgpRoutes({ topology: topology(3), nodes: nodes(3, 10), maxPrefixes: 7, subnets: ['subnet-1'] });
  t.ok(mine.routes.length > 0);
  t.ok(mine.routes.every((r) => r.subnet === 'subnet-1'));
  t.equal(mine.routes.length, all.shares['subnet-1']);
  const sum = Object.values(all.shares).reduce((a, b) => a + b, 0);
  t.ok(sum <= 7, 'shares fit the limit');
});

t.test('next hops are healthy forwarders only; multipath adds the other owners under an aggregate', async (t) => {
  const sick = ['h0-0', 'h0-1'];
  const plan = planBgpRoutes({ topology: topology(1), nodes: nodes(1, 4, sick), maxPrefixes: 1, multipath: 4 });
  t.equal(plan.routes.length, 1);
  const hops = plan.routes[0]!.nextHops;
  t.same([...hops].sort(), ['198.18.0.12', '198.18.0.13']);
  const single = planBgpRoutes({ topology: topology(1), nodes: nodes(1, 4, sick), maxPrefixes: 1 });
  t.equal(single.routes[0]!.nextHops.length, 1);
  t.notOk(['198.18.0.10', '198.18.0.11'].includes(single.routes[0]!.nextHops[0]!));
});

t.test('a subnet without a healthy host is reported, not announced', async (t) => {
  const plan = planBgpRoutes({ topology: topology(2), nodes: nodes(2, 2, ['h1-0', 'h1-1']), maxPrefixes: 10 });
  t.ok(plan.routes.every((r) => r.subnet === 'subnet-0'));
  t.same(plan.uncovered.map((u) => [u.subnet, u.reason]), [['subnet-1', 'no-healthy-host']]);
});

t.test('a limit below the number of subnets starves the last ones, never exceeds the limit', async (t) => {
  const plan = planBgpRoutes({ topology: topology(3), nodes: nodes(3, 3), maxPrefixes: 2 });
  t.equal(plan.routes.length, 2);
  t.same(plan.uncovered.map((u) => [u.subnet, u.reason]), [['subnet-2', 'over-budget']]);
});

t.test('stability: the current next hop of an aggregate is kept when as good', async (t) => {
  const input = { topology: topology(1), nodes: nodes(1, 1).concat([{ name: 'h0-9', subnet: 'subnet-0', hostIP: '198.18.0.99', blocks: [], healthy: true }]), maxPrefixes: 1 };
  const sick = { ...input, nodes: input.nodes.map((n) => (n.name === 'h0-0' ? { ...n, healthy: false } : n)) };
  const plan = planBgpRoutes(sick);
  t.same(plan.routes[0]!.nextHops, ['198.18.0.99'], 'an owner-less healthy host forwards when the owner is down');
});

t.test('bad limits are refused', async (t) => {
  t.throws(() => planBgpRoutes({ topology: topology(1), nodes: [], maxPrefixes: 0 }), TrellisError);
  t.throws(() => planBgpRoutes({ topology: topology(1), nodes: [], maxPrefixes: 3, multipath: 0 }), TrellisError);
});

t.test('ToR mode: own blocks merged, within the limit, nothing outside the pod network', async (t) => {
  const n: BgpPlanNode = {
    name: 'h0-0',
    subnet: 'subnet-0',
    hostIP: '198.18.0.10',
    blocks: [P('100.96.0.0/26'), P('100.96.0.64/26'), P('100.96.1.0/26'), P('100.97.0.0/26')],
    healthy: true,
  };
  const all = planTorRoutes(n, topology(1), 10);
  t.same(all.routes.map((r) => formatPrefix(r.prefix)), ['100.96.0.0/25', '100.96.1.0/26']);
  t.same(all.routes[0]!.nextHops, ['198.18.0.10']);
  const one = planTorRoutes(n, topology(1), 1);
  t.equal(one.routes.length, 1);
  t.same(one.dropped.map(formatPrefix), ['100.96.1.0/26']);
});
