// bench/plan: time planVpcRoutes on large subnets and print how many entries
// adding one node changes. A benchmark, not a test: it prints numbers and
// asserts nothing about time. Run:
//   node --import @isaacs/ts-node-temp-fork-for-pr-2009/import bench/plan.ts
// Cases: SUBNETS subnets, each a /16 pod prefix holding BLOCKS /26 blocks of
// NODES nodes, either placed in node homes (contiguous) or scattered at random
// (every node's blocks interleaved with others': the DP's worst case).
import { parsePrefix, type Prefix } from '../src/core/cidr.js';
import type { Topology } from '../src/core/topology.js';
import { diffVpcEntries, planVpcRoutes, type PlanInput, type PlanNode } from '../src/core/vpc-plan.js';
import { rng } from './lib/rng.js';

const NODES = Number(process.env.BENCH_NODES ?? 500);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 1000);
const SUBNETS = Number(process.env.BENCH_SUBNETS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);


function topology(): Topology {
  const subnets = Array.from({ length: SUBNETS }, (_, i) => ({
    id: `subnet-${i}`,
    zone: 'zone-a',
    cidr: parsePrefix(`198.18.${i}.0/24`),
    podPrefix: parsePrefix(`100.${64 + i}.0.0/16`),
    podPrefixExplicit: true,
    routeTable: undefined,
  }));
  const network = parsePrefix('100.64.0.0/10');
  return { network, blockSize: 26, nodeHomeSize: 24, subnetSize: 16, zones: [{ name: 'zone-a', subnets }] };
}

function nodes(layout: 'homes' | 'scattered', seed: number): PlanNode[] {
  const next = rng(seed);
  const out: PlanNode[] = [];
  for (let s = 0; s < SUBNETS; s++) {
    const pod = parsePrefix(`100.${64 + s}.0.0/16`);
    const blocks: Prefix[][] = Array.from({ length: NODES }, () => []);
    const slots = Array.from({ length: 1024 }, (_, i) => i);
    if (layout === 'scattered') slots.sort(() => next() - 0.5);
    for (let b = 0; b < Math.min(BLOCKS, 1024); b++) {
      const owner = layout === 'homes' ? Math.floor((b * NODES) / BLOCKS) : Math.floor(next() * NODES);
      blocks[owner]?.push({ family: 4, addr: pod.addr + BigInt(slots[b] ?? 0) * 64n, len: 26 });
    }
    blocks.forEach((own, n) =>
      out.push({ name: `n${s}-${String(n).padStart(4, '0')}`, subnet: `subnet-${s}`, instanceId: `i-${s}-${n}`, blocks: own, healthy: true }),
    );
  }
  return out;
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

for (const layout of ['homes', 'scattered'] as const) {
  const all = nodes(layout, 7);
  for (const limit of [50, 200, 900, 1000]) {
    const input: PlanInput = { topology: topology(), nodes: all, tables: [{ id: 'main', limit, foreign: 0 }] };
    const times: number[] = [];
    let plan = planVpcRoutes(input);
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = process.hrtime.bigint();
      plan = planVpcRoutes(input);
      times.push(ms(t0));
    }
    // One more node, claiming the first free /26 of subnet 0, planned against the previous entries.
    const used = new Set(all.flatMap((n) => n.blocks.map((b) => b.addr)));
    let free = parsePrefix('100.64.0.0/16').addr;
    while (used.has(free)) free += 64n;
    const blocks: Prefix[] = free < 0x64410000n ? [{ family: 4, addr: free, len: 26 }] : [];
    const grown = [...all, { name: 'n-new', subnet: 'subnet-0', instanceId: 'i-new', healthy: true, blocks }];
    const t1 = process.hrtime.bigint();
    const next = planVpcRoutes({ ...input, nodes: grown, current: plan.entries });
    const grow = ms(t1);
    const delta = diffVpcEntries(next, plan.entries);
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)] ?? 0;
    console.log(
      `${layout.padEnd(9)} subnets=${SUBNETS} nodes/subnet=${NODES} blocks/subnet=${BLOCKS} limit=${String(limit).padEnd(4)} ` +
        `plan=${median.toFixed(1)}ms entries=${plan.entries.length} extraHop=${(plan.extraHopShare * 100).toFixed(1)}% ` +
        `(${plan.extraHopAddresses}/${plan.claimedAddresses} addrs) | +1 node: ${grow.toFixed(1)}ms, ` +
        `${delta.create.length} create ${delta.replace.length} replace ${delta.delete.length} delete`,
    );
  }
}
