// bench/plan: time planVpcRoutes on large subnets and print how many entries
// adding one node changes. A benchmark, not a test: it prints numbers and
// asserts nothing about time. Run:
//   npm run build && node dist/bench/plan.js
// (the scale part at the end times `trellisctl vpc plan` from dist/).
// Cases: SUBNETS subnets, each a /16 pod prefix holding BLOCKS /26 blocks of
// NODES nodes, either placed in node homes (contiguous) or scattered at random
// (every node's blocks interleaved with others': the DP's worst case).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPrefix, parsePrefix, type Prefix } from '../src/core/cidr.js';
import type { Topology } from '../src/core/topology.js';
import { loadTopology } from '../src/core/topology-parse.js';
import { record } from './lib/report.js';
import { diffVpcEntries, planVpcRoutes, type PlanInput, type PlanNode } from '../src/core/vpc-plan.js';
import { rng } from './lib/rng.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

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

// ---------------------------------------------------------------------------
// At today's AWS quotas: 5,000 nodes in 3 subnets (each its own route table),
// tables of 50, 500 and 1,000 routes; the planner in process, then
// `trellisctl vpc plan` on the same cluster as files (wall time of the whole
// command: Node start, parsing, planning, printing). BENCH_SCALE_NODES
// (default 5000) nodes, each one /26 in its subnet's /15 pod prefix.
const SCALE_NODES = Number(process.env.BENCH_SCALE_NODES ?? 5000);
const SCALE_ROUNDS = Number(process.env.BENCH_SCALE_ROUNDS ?? 3);
const scaleYaml = [
  'network: 100.64.0.0/10',
  'blockSize: 26',
  'zones:',
  ...[0, 1, 2].flatMap((s) => [`  - name: zone-${s}`, '    subnets:', `      - { id: subnet-${s}, cidr: 198.18.${8 * (s + 1)}.0/21, podPrefix: 100.${64 + 2 * s}.0.0/15, routeTable: rtb-${s} }`]),
].join('\n');
const scaleTopology = loadTopology(`${scaleYaml}\n`, 'bench scale topology');
const scaleNodes: PlanNode[] = Array.from({ length: SCALE_NODES }, (_, i) => {
  const s = i % 3;
  const k = Math.floor(i / 3);
  return { name: `n${String(i).padStart(5, '0')}`, subnet: `subnet-${s}`, instanceId: `i-${i.toString(16).padStart(8, '0')}`, blocks: [{ family: 4, addr: parsePrefix(`100.${64 + 2 * s}.0.0/15`).addr + BigInt(k) * 64n, len: 26 }], healthy: true };
});
const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-plan-'));
const topoFile = join(dir, 'topology.yaml');
const nodesFile = join(dir, 'nodes.json');
writeFileSync(topoFile, `${scaleYaml}\n`);
writeFileSync(nodesFile, JSON.stringify(scaleNodes.map((n) => ({ name: n.name, subnet: n.subnet, instanceId: n.instanceId, blocks: n.blocks.map(formatPrefix) }))));
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'trellisctl.js');
const scaleRows: Array<Record<string, number>> = [];
console.log(`\nscale: ${SCALE_NODES} nodes, 3 subnets, 3 route tables (one per subnet), 2 foreign routes per table`);
console.log('limit  entries/table  extra hop  plan ms (median)  +1 node ms  trellisctl vpc plan ms');
try {
  for (const limit of [50, 500, 1000]) {
    const input: PlanInput = { topology: scaleTopology, nodes: scaleNodes, tables: ['rtb-0', 'rtb-1', 'rtb-2'].map((id) => ({ id, limit, foreign: 2 })) };
    const times: number[] = [];
    let plan = planVpcRoutes(input);
    for (let r = 0; r < SCALE_ROUNDS; r++) {
      const t0 = process.hrtime.bigint();
      plan = planVpcRoutes(input);
      times.push(ms(t0));
    }
    const extra = { name: 'n-new', subnet: 'subnet-0', instanceId: 'i-new', healthy: true, blocks: [{ family: 4 as const, addr: parsePrefix('100.65.255.192/26').addr, len: 26 }] };
    const t1 = process.hrtime.bigint();
    planVpcRoutes({ ...input, nodes: [...scaleNodes, extra], current: plan.entries });
    const grow = ms(t1);
    const cliTimes: number[] = [];
    for (let r = 0; r < SCALE_ROUNDS; r++) {
      const t2 = process.hrtime.bigint();
      const run = spawnSync(process.execPath, [cli, 'vpc', 'plan', '--topology', topoFile, '--nodes', nodesFile, '--limit', String(limit), '--reserved', '2', '-o', 'json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      cliTimes.push(ms(t2));
      if (run.status !== 0) throw new Error(`trellisctl vpc plan failed: ${run.stderr}`);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const perTable = plan.entries.filter((e) => e.table === 'rtb-0').length;
    console.log(
      `${String(limit).padStart(5)}  ${String(perTable).padStart(13)}  ${`${(plan.extraHopShare * 100).toFixed(1)}%`.padStart(9)}  ${median(times).toFixed(0).padStart(16)}  ${grow.toFixed(0).padStart(10)}  ${median(cliTimes).toFixed(0).padStart(22)}`,
    );
    scaleRows.push({ limit, entries_per_table: perTable, extra_hop_share: Math.round(plan.extraHopShare * 10000) / 10000, plan_ms: Math.round(median(times)), add_node_ms: Math.round(grow), trellisctl_ms: Math.round(median(cliTimes)) });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
record({ vpc_plan_scale: { nodes: SCALE_NODES, subnets: 3, tables: 3, foreign_per_table: 2, rows: scaleRows } });
