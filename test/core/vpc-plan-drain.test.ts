// The planners with draining nodes (docs/lifecycle.md, "Drain and uncordon"):
// a draining node forwards for nobody while its subnet has another healthy
// host, its own blocks' entries keep their destinations and move to those
// hosts, and it keeps forwarding (reported) when it is its subnet's only
// healthy host. Uncordon gives its entries back.
import t from 'tap';
import fc from 'fast-check';
import { contains, formatPrefix, parsePrefix } from '../../src/core/cidr.js';
import type { Topology } from '../../src/core/topology.js';
import { diffVpcEntries, planVpcRoutes, type Plan, type PlanNode } from '../../src/core/vpc-plan.js';
import { planBgpRoutes, type BgpPlanNode } from '../../src/core/bgp-plan.js';

const P = parsePrefix;

const topology: Topology = {
  network: P('100.64.0.0/10'),
  blockSize: 26,
  nodeHomeSize: 24,
  subnetSize: 20,
  zones: [
    {
      name: 'zone-a',
      subnets: [
        { id: 'a', zone: 'zone-a', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/20'), podPrefixExplicit: true, routeTable: 'rtb-a' },
        { id: 'b', zone: 'zone-a', cidr: P('198.18.1.0/24'), podPrefix: P('100.64.16.0/20'), podPrefixExplicit: true, routeTable: 'rtb-b' },
      ],
    },
  ],
};

function node(name: string, subnet: string, blocks: string[], opts: { healthy?: boolean; draining?: boolean } = {}): PlanNode {
  return { name, subnet, instanceId: `i-${name}`, blocks: blocks.map(P), healthy: opts.healthy ?? true, draining: opts.draining ?? false };
}

/** Subnet a: a1..a3 with one /26 each; subnet b: b1 with one /26. */
function cluster(draining: readonly string[] = [], unhealthy: readonly string[] = []): PlanNode[] {
  const flags = (n: string) => ({ draining: draining.includes(n), healthy: !unhealthy.includes(n) });
  return [
    node('a1', 'a', ['100.64.0.0/26'], flags('a1')),
    node('a2', 'a', ['100.64.0.64/26'], flags('a2')),
    node('a3', 'a', ['100.64.0.128/26'], flags('a3')),
    node('b1', 'b', ['100.64.16.0/26'], flags('b1')),
  ];
}

function plan(nodes: PlanNode[], limit: number, current?: Plan): Plan {
  return planVpcRoutes({
    topology,
    nodes,
    tables: [{ id: 'rtb-a', limit, foreign: 0 }, { id: 'rtb-b', limit, foreign: 0 }],
    current: current?.entries,
  });
}

const view = (p: Plan): string[] => p.entries.map((e) => `${e.table} ${formatPrefix(e.destination)} ${e.node}`);

t.test('a drained node: its entries keep their destinations and go to other healthy hosts of its subnet', async (t) => {
  const before = plan(cluster(), 50);
  t.same(view(before).filter((l) => l.startsWith('rtb-a')), ['rtb-a 100.64.0.0/26 a1', 'rtb-a 100.64.0.64/26 a2', 'rtb-a 100.64.0.128/26 a3', 'rtb-a 100.64.16.0/26 b1']);
  const drained = plan(cluster(['a2']), 50, before);
  t.same(drained.entries.map((e) => formatPrefix(e.destination)), before.entries.map((e) => formatPrefix(e.destination)), 'same destinations');
  for (const e of drained.entries) t.not(e.node, 'a2', `${e.table} ${formatPrefix(e.destination)} does not target the draining node`);
  const moved = drained.entries.filter((e) => formatPrefix(e.destination) === '100.64.0.64/26');
  t.equal(moved.length, 2, 'its block has an entry in each table');
  for (const e of moved) t.ok(['a1', 'a3'].includes(e.node) && e.subnet === 'a', `${e.table}: to ${e.node}, a host of its subnet`);
  const steps = diffVpcEntries({ entries: drained.entries }, before.entries).steps;
  t.same(steps.map((s) => s.kind), ['replace', 'replace'], 'the move is one replace per table: no delete, no gap');
  t.same(drained.drainKept, [], 'nothing kept');
  t.same(drained.uncovered, [], 'everything covered');
});

t.test('a drained node that forwards for others under a small budget hands that over too', async (t) => {
  // One entry per subnet and table: a single aggregate for subnet a.
  const before = plan(cluster(), 2);
  const agg = before.entries.filter((e) => e.subnet === 'a');
  t.equal(agg.length, 2, 'one aggregate for subnet a per table');
  const forwarder = agg[0]?.node as string;
  const drained = plan(cluster([forwarder]), 2, before);
  const now = drained.entries.filter((e) => e.subnet === 'a');
  t.equal(now.length, 2, 'still one entry for a per table');
  for (const e of now) {
    t.not(e.node, forwarder, `${e.table}: the aggregate left the draining ${forwarder}`);
    for (const b of ['100.64.0.0/26', '100.64.0.64/26', '100.64.0.128/26']) t.ok(contains(e.destination, P(b)), `${e.table}: ${b} still covered`);
  }
});

t.test('the only healthy host of its subnet keeps forwarding while drained, and the plan says so', async (t) => {
  const before = plan(cluster(), 50);
  const alone = plan(cluster(['a2'], ['a1', 'a3']), 50, before);
  const sub = alone.entries.filter((e) => e.subnet === 'a');
  t.ok(sub.length > 0 && sub.every((e) => e.node === 'a2'), "a2 forwards for its subnet's blocks");
  t.same(alone.uncovered, [], 'no subnet left uncovered');
  t.equal(alone.drainKept.length, 1);
  t.equal(alone.drainKept[0]?.subnet, 'a');
  t.same(alone.drainKept[0]?.nodes, ['a2']);
  t.match(alone.drainKept[0]?.message, /no healthy host that is not draining: a2 keeps forwarding/);
  const b = plan(cluster(['b1']), 50, before);
  t.same(b.entries.filter((e) => e.subnet === 'b').map((e) => e.node), ['b1', 'b1'], 'a lone node of its subnet drained keeps its entries');
  t.same(b.drainKept.map((d) => d.subnet), ['b']);
  const every = plan(cluster(['a1', 'a2', 'a3']), 50, before);
  t.same(every.entries.filter((e) => e.subnet === 'a').map((e) => e.node).sort(), ['a1', 'a1', 'a2', 'a2', 'a3', 'a3'], 'every host drained: each keeps its own');
  t.same(every.drainKept[0]?.nodes, ['a1', 'a2', 'a3']);
});

t.test('a drained node that is also unhealthy forwards for nobody', async (t) => {
  const p = plan(cluster(['a2'], ['a1', 'a2', 'a3']), 50);
  t.same(p.entries.filter((e) => e.subnet === 'a'), []);
  t.same(p.drainKept, [], 'not kept: it is not healthy');
  t.same(p.uncovered.map((u) => `${u.subnet} ${u.reason}`), ['a no-healthy-host']);
});

t.test('uncordon gives the entries back to their owner', async (t) => {
  const before = plan(cluster(), 50);
  const drained = plan(cluster(['a2']), 50, before);
  const back = plan(cluster(), 50, drained);
  t.same(view(back), view(before), 'as before the drain');
  t.same(diffVpcEntries({ entries: back.entries }, drained.entries).steps.map((s) => s.kind), ['replace', 'replace']);
});

t.test('the BGP plan: a draining node is no next hop while its subnet has another healthy host', async (t) => {
  const bgpNodes = (draining: string[]): BgpPlanNode[] =>
    cluster(draining).map((n, i) => ({ name: n.name, subnet: n.subnet, hostIP: `198.18.${n.subnet === 'a' ? 0 : 1}.${10 + i}`, blocks: n.blocks, healthy: n.healthy, draining: n.draining }));
  const before = planBgpRoutes({ topology, nodes: bgpNodes([]), maxPrefixes: 2, multipath: 3 });
  const a = before.routes.find((r) => r.subnet === 'a');
  t.equal(a?.nextHops.length, 3, 'the aggregate of a has the three hosts as next hops');
  const drained = planBgpRoutes({ topology, nodes: bgpNodes(['a2']), maxPrefixes: 2, multipath: 3 });
  const d = drained.routes.find((r) => r.subnet === 'a');
  t.not(d?.node, 'a2');
  t.notOk(d?.nextHops.includes('198.18.0.11'), "a2's host IP is not among the next hops");
  t.equal(d?.nextHops.length, 2);
});

t.test('property: nobody forwards through a draining node while its subnet has another healthy host; every block stays covered', async (t) => {
  const arbNode = fc.record({ subnet: fc.integer({ min: 0, max: 1 }), slots: fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 3 }), healthy: fc.boolean(), draining: fc.boolean() });
  fc.assert(
    fc.property(fc.array(arbNode, { minLength: 1, maxLength: 7 }), fc.integer({ min: 2, max: 12 }), (specs, limit) => {
      const used = new Set<string>();
      const nodes = specs.map((s, i) => {
        const sub = s.subnet === 0 ? 'a' : 'b';
        const base = s.subnet === 0 ? 0 : 16;
        const blocks = s.slots.map((k) => `100.64.${base + (k >> 2)}.${(k & 3) * 64}/26`).filter((b) => !used.has(b) && used.add(b));
        return node(`n${i}`, sub, blocks, { healthy: s.healthy, draining: s.draining });
      });
      const p = plan(nodes, limit);
      for (const sub of ['a', 'b']) {
        const members = nodes.filter((n) => n.subnet === sub);
        const steady = members.some((n) => n.healthy && n.draining !== true);
        const kept = p.drainKept.find((d) => d.subnet === sub);
        const claims = members.some((n) => n.blocks.length > 0);
        const drainingHealthy = members.filter((n) => n.healthy && n.draining === true).map((n) => n.name);
        if (kept === undefined ? claims && !steady && drainingHealthy.length > 0 : steady || kept.nodes.join() !== drainingHealthy.join()) return false;
        for (const e of p.entries.filter((x) => x.subnet === sub)) {
          const n = members.find((m) => m.name === e.node);
          if (n === undefined || !n.healthy || (steady && n.draining === true)) return false;
        }
        const share = Object.fromEntries(p.perTable.map((x) => [x.table, x.shares[sub] ?? 0]));
        if (!members.some((n) => n.healthy)) continue;
        for (const table of ['rtb-a', 'rtb-b']) {
          if ((share[table] ?? 0) === 0) continue;
          for (const b of members.flatMap((n) => n.blocks)) {
            if (!p.entries.some((e) => e.table === table && e.subnet === sub && contains(e.destination, b))) return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 400 },
  );
  t.pass('held for 400 random clusters');
});
