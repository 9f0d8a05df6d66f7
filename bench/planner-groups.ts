// bench/planner-groups: how much traffic takes an extra hop for a given VPC
// route-table budget, Trellis's planner next to fixed-group aggregation as
// Romana v2.0 did it (each subnet's pod prefix cut into a fixed number of
// equal groups, one entry per group, pointing at one host of the group).
//
// 1,000 nodes in 3 subnets claim 1-4 /26 blocks each through the real IPAM
// allocator (so blocks sit where trellisd would put them). For each budget,
// the extra-hop share is the fraction of claimed addresses whose entry
// targets a host other than the address's owner. Prints numbers only.
//
// Run: npm run build && node dist/bench/planner-groups.js
import { contains, parsePrefix, size } from '../src/core/cidr.js';
import { Ipam } from '../src/core/ipam.js';
import { MemoryIpamStore } from '../src/core/memory-store.js';
import { loadTopology } from '../src/core/topology-parse.js';
import { allSubnets, type Subnet } from '../src/core/topology.js';
import { planVpcRoutes, type PlanNode } from '../src/core/vpc-plan.js';
import { rng } from './lib/rng.js';
import { record, round } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const BUDGETS = (process.env.BENCH_BUDGETS ?? '3,6,12,24,48,50,96,192,384,500,1000').split(',').map(Number);

const topology = loadTopology(
  `
network: 100.64.0.0/10
subnetSize: 12
zones:
  - { name: zone-a, subnets: [{ id: subnet-a, cidr: 198.18.1.0/24 }] }
  - { name: zone-b, subnets: [{ id: subnet-b, cidr: 198.18.2.0/24 }] }
  - { name: zone-c, subnets: [{ id: subnet-c, cidr: 198.18.3.0/24 }] }
`,
  'bench',
);

async function placeNodes(): Promise<PlanNode[]> {
  const next = rng(11);
  const store = new MemoryIpamStore();
  const subnets = allSubnets(topology);
  const nodes: PlanNode[] = [];
  for (let i = 0; i < NODES; i++) {
    const subnet = subnets[i % subnets.length] as Subnet;
    const name = `node-${String(i).padStart(4, '0')}`;
    const ipam = new Ipam({ topology, subnet, node: name, store, claims: store, clock: () => 0 });
    const want = 1 + Math.floor(next() * 4);
    await ipam.ensureBlock();
    for (let b = 1; b < want; b++) await ipam.claimBlock();
    nodes.push({ name, subnet: subnet.id, instanceId: `i-${i.toString(16).padStart(8, '0')}`, blocks: (await ipam.listBlocks()).map(parsePrefix), healthy: true });
  }
  return nodes;
}

/**
 * Romana-style fixed groups: each subnet's share of the budget is cut into
 * equal groups of hosts in the order their addresses were handed out (so a
 * group's blocks are contiguous), one entry per group targeting the group's
 * first host. Groups are not required to be aligned prefixes here, which
 * flatters this scheme: Romana's were.
 */
function fixedGroupsExtraHop(nodes: readonly PlanNode[], budget: number): { extra: bigint; claimed: bigint; entries: number } {
  const subnets = allSubnets(topology);
  const share = Math.max(1, Math.floor(budget / subnets.length));
  let extra = 0n;
  let claimed = 0n;
  let entries = 0;
  for (const subnet of subnets) {
    const owners = nodes
      .filter((n) => n.subnet === subnet.id && n.blocks.length > 0 && contains(subnet.podPrefix, n.blocks[0]!))
      .sort((a, b) => (a.blocks[0]!.addr < b.blocks[0]!.addr ? -1 : 1));
    const perGroup = Math.ceil(owners.length / share);
    for (let g = 0; g * perGroup < owners.length; g++) {
      const group = owners.slice(g * perGroup, (g + 1) * perGroup);
      entries++;
      for (const [i, n] of group.entries()) {
        const addresses = n.blocks.reduce((sum, b) => sum + size(b), 0n);
        claimed += addresses;
        if (i > 0) extra += addresses; // only the group's first host owns what its entry targets
      }
    }
  }
  return { extra, claimed, entries };
}

const share = (x: bigint, of: bigint): number => (of === 0n ? 0 : Number((x * 1_000_000n) / of) / 1_000_000);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`.padStart(7);

async function main(): Promise<void> {
  const t0 = performance.now();
  const nodes = await placeNodes();
  const blocks = nodes.reduce((n, x) => n + x.blocks.length, 0);
  console.log(`bench/planner-groups: ${nodes.length} nodes in 3 subnets, ${blocks} /26 blocks placed by the IPAM allocator in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log('budget  trellis entries  extra hop   plan ms | fixed groups entries  extra hop');
  const rows: Array<Record<string, number>> = [];
  for (const budget of BUDGETS) {
    const t = performance.now();
    const plan = planVpcRoutes({ topology, nodes, tables: [{ id: 'main', limit: budget, foreign: 0 }] });
    const planMs = performance.now() - t;
    const romana = fixedGroupsExtraHop(nodes, budget);
    const romanaShare = share(romana.extra, romana.claimed);
    console.log(
      `${String(budget).padStart(6)}  ${String(plan.entries.length).padStart(15)}  ${pct(plan.extraHopShare)}  ${planMs.toFixed(0).padStart(8)} | ${String(romana.entries).padStart(20)}  ${pct(romanaShare)}`,
    );
    rows.push({ budget, trellis_entries: plan.entries.length, trellis_extra_hop_share: round(plan.extraHopShare, 4), plan_ms: round(planMs), fixed_group_entries: romana.entries, fixed_group_extra_hop_share: round(romanaShare, 4) });
  }
  record({ planner_extra_hop: { nodes: nodes.length, subnets: 3, blocks, rows } });
}

main().catch((err: unknown) => {
  console.error(`bench/planner-groups: ${(err as Error).message}`);
  process.exit(1);
});
