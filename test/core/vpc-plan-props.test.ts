// Property tests of the VPC route planner on random topologies: random subnets
// and route tables, nodes with random aligned blocks inside their subnet's pod
// prefix, random health, limits, foreign counts and stale current entries.
// The checks use their own oracles: longest-prefix match by splitting a block
// until no entry lies strictly inside a piece, and a brute-force search over
// every disjoint cover of the full binary tree for the least extra hop.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import { aggregate, contains, formatPrefix, halves, overlaps, size, type Prefix } from '../../src/core/cidr.js';
import { allSubnets, routeTables, type Topology } from '../../src/core/topology.js';
import { compareEntry } from '../../src/core/vpc-diff.js';
import {
  DEFAULT_ROUTE_LIMIT,
  diffVpcEntries,
  planVpcRoutes,
  type Plan,
  type PlanInput,
  type PlanNode,
  type PlannedEntry,
  type VpcEntry,
} from '../../src/core/vpc-plan.js';

const POD_LEN = 22;
const TABLES = ['main', 'rtb-1', 'rtb-2'] as const;
/** Subnet ids, deliberately not in topology order. */
const IDS = ['subnet-d', 'subnet-b', 'subnet-a', 'subnet-c'] as const;

const slotArb = fc.record({ slot: fc.nat(1023), len: fc.integer({ min: 24, max: 28 }) });
const inputArb = fc.record({
  subnets: fc.integer({ min: 1, max: 4 }),
  tableOf: fc.array(fc.constantFrom(undefined, 'rtb-1', 'rtb-2'), { minLength: 4, maxLength: 4 }),
  nodes: fc.array(
    fc.record({ subnet: fc.nat(3), health: fc.nat(3), blocks: fc.array(slotArb, { maxLength: 4 }) }),
    { maxLength: 14 },
  ),
  limits: fc.array(fc.record({ given: fc.boolean(), limit: fc.integer({ min: 0, max: 24 }), foreign: fc.nat(4) }), {
    minLength: 3,
    maxLength: 3,
  }),
  current: fc.array(
    fc.record({
      table: fc.nat(2),
      subnet: fc.nat(3),
      slot: fc.nat(1023),
      len: fc.integer({ min: 20, max: 28 }),
      target: fc.nat(15),
    }),
    { maxLength: 6 },
  ),
  seed: fc.nat(),
});
type Shape = typeof inputArb extends fc.Arbitrary<infer T> ? T : never;

function podOf(i: number): Prefix {
  return { family: 4, addr: 0x64400000n + BigInt(i) * (1n << BigInt(32 - POD_LEN)), len: POD_LEN };
}

/** The aligned prefix of length `len` at `slot` (modulo the space of `within`). */
function place(within: Prefix, slot: number, len: number): Prefix {
  const step = 1n << BigInt(32 - len);
  const count = len >= within.len ? 1n << BigInt(len - within.len) : 1n;
  const base = within.addr & ~((1n << BigInt(32 - Math.min(len, within.len))) - 1n);
  return { family: 4, addr: base + (BigInt(slot) % count) * step, len };
}

function build(shape: Shape): PlanInput {
  const topology: Topology = {
    network: { family: 4, addr: 0x64400000n, len: 10 },
    blockSize: 26,
    nodeHomeSize: 24,
    subnetSize: POD_LEN,
    zones: [
      {
        name: 'zone-a',
        subnets: Array.from({ length: shape.subnets }, (_, i) => ({
          id: IDS[i] as string,
          zone: 'zone-a',
          cidr: { family: 4 as const, addr: 0xc6120000n + BigInt(i) * 256n, len: 24 },
          podPrefix: podOf(i),
          podPrefixExplicit: true,
          routeTable: shape.tableOf[i],
        })),
      },
    ],
  };
  const taken: Prefix[] = [];
  const nodes: PlanNode[] = shape.nodes.map((n, j) => {
    const s = n.subnet % shape.subnets;
    const blocks: Prefix[] = [];
    for (const b of n.blocks) {
      const p = place(podOf(s), b.slot, b.len);
      if (taken.some((q) => overlaps(p, q))) continue;
      taken.push(p);
      blocks.push(p);
    }
    const name = `node-${String(j).padStart(2, '0')}`;
    return { name, subnet: IDS[s] as string, instanceId: `i-${j}`, blocks, healthy: n.health > 0 };
  });
  const tables = TABLES.flatMap((id, i) => {
    const l = shape.limits[i];
    return l?.given === true ? [{ id, limit: l.limit, foreign: l.foreign }] : [];
  });
  const current: VpcEntry[] = shape.current.map((c) => ({
    table: TABLES[c.table] as string,
    destination: place(podOf(c.subnet % shape.subnets), c.slot, c.len),
    target: `i-${c.target}`,
  }));
  return { topology, nodes, tables, current };
}

/** Deterministic shuffle (the property must hold for every order). */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const show = (e: VpcEntry): string => `${e.table} ${formatPrefix(e.destination)} ${e.target}`;

/** Longest-prefix match of every address of `q`: pieces of q and the entry each piece matches. */
function lpm(entries: readonly PlannedEntry[], q: Prefix): Array<[Prefix, PlannedEntry | undefined]> {
  const over = entries.filter((e) => overlaps(e.destination, q));
  if (over.some((e) => e.destination.len > q.len)) return halves(q).flatMap((h) => lpm(over, h));
  return [[q, [...over].sort((a, b) => b.destination.len - a.destination.len)[0]]];
}

interface Facts {
  input: PlanInput;
  subnets: ReturnType<typeof allSubnets>;
  budget: Map<string, number>;
  claimed: Map<string, PlanNode[]>;
  healthyHosts: Map<string, Set<string>>;
}

function facts(input: PlanInput): Facts {
  const subnets = allSubnets(input.topology);
  const budget = new Map(
    routeTables(input.topology).map((id) => {
      const l = input.tables.find((x) => x.id === id);
      return [id, Math.max(0, (l?.limit ?? DEFAULT_ROUTE_LIMIT) - (l?.foreign ?? 0))];
    }),
  );
  const claimed = new Map(subnets.map((s) => [s.id, input.nodes.filter((n) => n.subnet === s.id && n.blocks.length > 0)]));
  const healthyHosts = new Map(
    subnets.map((s) => [s.id, new Set(input.nodes.filter((n) => n.subnet === s.id && n.healthy).map((n) => n.instanceId))]),
  );
  return { input, subnets, budget, claimed, healthyHosts };
}

/** Subnets needing entries that a table of this budget leaves out: the last ones by id. */
function starved(f: Facts, budget: number): string[] {
  const needy = f.subnets.filter((s) => (f.claimed.get(s.id) ?? []).length > 0).map((s) => s.id).sort();
  return needy.slice(Math.min(budget, needy.length));
}

/** Addresses of `subnet` that `table` sends to a forwarder other than their owner. */
function measuredExtraHop(plan: Plan, table: string, owners: readonly PlanNode[]): bigint {
  const entries = plan.entries.filter((e) => e.table === table);
  let extra = 0n;
  for (const n of owners) {
    for (const b of n.blocks) for (const [piece, e] of lpm(entries, b)) if (e?.target !== n.instanceId) extra += size(piece);
  }
  return extra;
}

/** Least extra hop over every cover of the owners' blocks by at most k disjoint prefixes inside `pod`. */
function bruteOptimum(pod: Prefix, owners: readonly PlanNode[], k: number): number {
  const blocks = owners.flatMap((n) => n.blocks.map((b) => ({ b, n })));
  const deepest = Math.max(...blocks.map((x) => x.b.len));
  const walk = (q: Prefix): number[] => {
    const under = new Map<PlanNode, number>();
    for (const { b, n } of blocks) {
      if (overlaps(q, b)) under.set(n, (under.get(n) ?? 0) + Number(size(q.len > b.len ? q : b)));
    }
    const out = new Array<number>(k + 1).fill(under.size === 0 ? 0 : Infinity);
    if (under.size === 0) return out;
    const claims = [...under.values()].reduce((a, b) => a + b, 0);
    const best = Math.max(0, ...[...under].filter(([n]) => n.healthy).map(([, c]) => c));
    for (let j = 1; j <= k; j++) out[j] = claims - best;
    if (q.len < deepest) {
      const [l, r] = halves(q).map(walk) as [number[], number[]];
      for (let j = 0; j <= k; j++) {
        for (let a = 0; a <= j; a++) out[j] = Math.min(out[j] as number, (l[a] as number) + (r[j - a] as number));
      }
    }
    return out;
  };
  return walk(pod)[k] as number;
}

const NUM_RUNS = 500;

t.test('objectives 1 and 2: budgets hold; every claimed address routes to a healthy host of its subnet', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const input = build(shape);
      const f = facts(input);
      const plan = planVpcRoutes(input);
      const expectUncovered: string[] = [];
      for (const s of f.subnets) {
        const claims = (f.claimed.get(s.id) ?? []).length > 0;
        if (claims && f.healthyHosts.get(s.id)?.size === 0) expectUncovered.push(`${s.id} - no-healthy-host`);
      }
      for (const [table, budget] of f.budget) for (const s of starved(f, budget)) expectUncovered.push(`${s} ${table} over-budget`);
      const got = plan.uncovered.map((u) => `${u.subnet} ${u.table ?? '-'} ${u.reason}`);
      if (JSON.stringify([...got].sort()) !== JSON.stringify(expectUncovered.sort())) throw new Error(`uncovered ${got}`);
      if (plan.budgetExceeded !== got.some((u) => u.endsWith('over-budget'))) throw new Error('budgetExceeded');
      if ([...plan.entries].sort(compareEntry).some((e, i) => e !== plan.entries[i])) throw new Error('entries not sorted');
      let worst = 0n;
      for (const tp of plan.perTable) {
        const entries = plan.entries.filter((e) => e.table === tp.table);
        const shares = Object.values(tp.shares).reduce((a, b) => a + b, 0);
        if (tp.budget !== f.budget.get(tp.table) || entries.length !== tp.used || tp.used > tp.budget || shares > tp.budget) {
          throw new Error(`objective 1 broken in ${tp.table}`);
        }
        entries.forEach((e, i) => {
          const pod = f.subnets.find((s) => s.id === e.subnet)?.podPrefix;
          if (pod === undefined || !contains(pod, e.destination)) throw new Error(`${formatPrefix(e.destination)} outside its pod prefix`);
          if (f.subnets.some((s) => s.id !== e.subnet && overlaps(s.podPrefix, e.destination))) throw new Error('overlaps another subnet');
          if (!(f.healthyHosts.get(e.subnet)?.has(e.target) ?? false)) throw new Error(`${e.target}: not a healthy host of ${e.subnet}`);
          if (input.nodes.find((n) => n.name === e.node)?.instanceId !== e.target) throw new Error('node and target disagree');
          if (entries.slice(i + 1).some((o) => overlaps(o.destination, e.destination))) throw new Error('entries overlap');
        });
        let extra = 0n;
        for (const s of f.subnets) {
          const owners = f.claimed.get(s.id) ?? [];
          const mine = entries.filter((e) => e.subnet === s.id);
          if (mine.length > (tp.shares[s.id] ?? 0)) throw new Error(`${s.id} exceeds its share`);
          const routed = (f.healthyHosts.get(s.id)?.size ?? 0) > 0 && !starved(f, tp.budget).includes(s.id);
          if (!routed) continue;
          for (const n of owners) {
            for (const b of n.blocks) {
              for (const [piece, e] of lpm(entries, b)) {
                if (e === undefined || e.subnet !== s.id) throw new Error(`${tp.table}: ${formatPrefix(piece)} of ${n.name} misrouted`);
              }
            }
          }
          extra += measuredExtraHop(plan, tp.table, owners);
        }
        if (extra !== tp.extraHopAddresses) throw new Error(`extra hop ${tp.extraHopAddresses}, measured ${extra}`);
        if (extra > worst) worst = extra;
      }
      const claimed = input.nodes.reduce((sum, n) => sum + n.blocks.reduce((s, b) => s + size(b), 0n), 0n);
      return plan.extraHopAddresses === worst && plan.claimedAddresses === claimed;
    }),
    { numRuns: NUM_RUNS },
  );
  t.pass(`${NUM_RUNS} random plans`);
});

t.test('objective 3: the least extra hop that the share allows, zero when it allows one entry per aggregate', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const input = build(shape);
      const f = facts(input);
      const plan = planVpcRoutes(input);
      for (const tp of plan.perTable) {
        for (const s of f.subnets) {
          const owners = f.claimed.get(s.id) ?? [];
          const k = tp.shares[s.id] ?? 0;
          if (owners.length === 0 || k === 0 || f.healthyHosts.get(s.id)?.size === 0) continue;
          const measured = Number(measuredExtraHop(plan, tp.table, owners));
          const optimum = bruteOptimum(s.podPrefix, owners, k);
          if (measured !== optimum) throw new Error(`${tp.table} ${s.id} k=${k}: extra hop ${measured}, optimum ${optimum}`);
          const aggregates = owners.reduce((sum, n) => sum + aggregate(n.blocks).length, 0);
          if (owners.every((n) => n.healthy) && k >= aggregates && measured !== 0) throw new Error('extra hop despite a large share');
        }
        const total = f.subnets.reduce((sum, s) => sum + (f.claimed.get(s.id) ?? []).reduce((a, n) => a + aggregate(n.blocks).length, 0), 0);
        if (tp.budget >= total && input.nodes.every((n) => n.healthy) && tp.extraHopAddresses !== 0n) {
          throw new Error('budget for every aggregate, yet extra hop');
        }
      }
      return true;
    }),
    { numRuns: NUM_RUNS },
  );
  t.pass(`${NUM_RUNS} random plans against brute force`);
});


t.test('determinism: the same input in any order gives the same plan', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const input = build(shape);
      const plan = planVpcRoutes(input);
      const shuffled: PlanInput = {
        topology: input.topology,
        nodes: shuffle(input.nodes, shape.seed).map((n, i) => ({ ...n, blocks: shuffle(n.blocks, shape.seed + i) })),
        tables: shuffle(input.tables, shape.seed + 1),
        current: shuffle(input.current ?? [], shape.seed + 2),
      };
      return isDeepStrictEqual(planVpcRoutes(input), plan) && isDeepStrictEqual(planVpcRoutes(shuffled), plan);
    }),
    { numRuns: NUM_RUNS },
  );
  t.pass(`${NUM_RUNS} inputs planned twice and shuffled`);
});

t.test('stability: planning again against the plan changes nothing (no churn on restart)', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const input = build(shape);
      const plan = planVpcRoutes(input);
      const again = planVpcRoutes({ ...input, current: plan.entries });
      return isDeepStrictEqual(again, plan) && diffVpcEntries(again, plan.entries).steps.length === 0;
    }),
    { numRuns: NUM_RUNS },
  );
  t.pass(`${NUM_RUNS} restarts`);
});

t.test('diff: applying the steps gives the plan; a block routed before and after is routed in between', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const input = build(shape);
      const plan = planVpcRoutes(input);
      const delta = diffVpcEntries(plan, input.current ?? []);
      const key = (e: VpcEntry): string => `${e.table} ${formatPrefix(e.destination)}`;
      const blocks = input.nodes.flatMap((n) => n.blocks);
      /** "table block" for every claimed block that every address of is routed somewhere. */
      const routed = (entries: readonly VpcEntry[]): Set<string> =>
        new Set(
          routeTables(input.topology).flatMap((id) => {
            const mine = entries.filter((e) => e.table === id) as PlannedEntry[];
            return blocks.filter((b) => lpm(mine, b).every(([, e]) => e !== undefined)).map((b) => `${id} ${formatPrefix(b)}`);
          }),
        );
      const state = new Map((input.current ?? []).map((e) => [key(e), e]));
      const after = routed(plan.entries);
      const keep = [...routed([...state.values()])].filter((r) => after.has(r));
      for (const step of delta.steps) {
        if (step.kind === 'delete') state.delete(key(step.entry));
        else state.set(key(step.entry), step.entry);
        const now = routed([...state.values()]);
        for (const r of keep) if (!now.has(r)) throw new Error(`${r} lost its route at ${step.kind} ${show(step.entry)}`);
      }
      const applied = [...state.values()];
      if (JSON.stringify(applied.map(show).sort()) !== JSON.stringify(plan.entries.map(show).sort())) {
        throw new Error('apply(diff) is not the plan');
      }
      return diffVpcEntries(plan, applied).steps.length === 0;
    }),
    { numRuns: NUM_RUNS },
  );
  t.pass(`${NUM_RUNS} deltas applied`);
});

t.test('stability: adding one node', async (t) => {
  const exercised = { perAggregate: 0, allHealthy: 0 };
  fc.assert(
    fc.property(inputArb, fc.nat(3), fc.array(slotArb, { minLength: 1, maxLength: 6 }), (shape, where, slots) => {
      const input = { ...build(shape), current: [] };
      const before = planVpcRoutes(input);
      const f0 = facts(input);
      const subnet = f0.subnets[where % f0.subnets.length] as (typeof f0.subnets)[number];
      // The new node claims free space outside every current destination: a fresh node home.
      const blocks: Prefix[] = [];
      const used = [...input.nodes.flatMap((n) => n.blocks), ...before.entries.map((e) => e.destination)];
      for (const s of slots) {
        const p = place(subnet.podPrefix, s.slot, s.len);
        if (![...used, ...blocks].some((q) => overlaps(p, q))) blocks.push(p);
      }
      const added: PlanNode = { name: 'node-new', subnet: subnet.id, instanceId: 'i-new', blocks, healthy: true };
      const grown: PlanInput = { ...input, nodes: [...input.nodes, added], current: before.entries };
      const after = planVpcRoutes(grown);
      const owners = input.nodes.filter((n) => n.subnet === subnet.id && n.blocks.length > 0);
      const need = (nodes: readonly PlanNode[]): number => nodes.reduce((sum, n) => sum + aggregate(n.blocks).length, 0);
      for (const tp of after.perTable) {
        const old = before.perTable.find((p) => p.table === tp.table);
        for (const s of f0.subnets) {
          if (s.id === subnet.id) continue;
          // (a) Another subnet whose share did not move keeps every entry.
          const was = before.entries.filter((e) => e.table === tp.table && e.subnet === s.id).map(show);
          const now = after.entries.filter((e) => e.table === tp.table && e.subnet === s.id).map(show);
          if (old?.shares[s.id] === tp.shares[s.id] && JSON.stringify(was) !== JSON.stringify(now)) throw new Error(`${s.id} churned`);
        }
        // (b) The new node's subnet was routed, with a share of one entry per aggregate before and after.
        const routed = (f0.healthyHosts.get(subnet.id)?.size ?? 0) > 0;
        const oneEach = (old?.shares[subnet.id] ?? 0) >= need(owners) && (tp.shares[subnet.id] ?? 0) >= need([...owners, added]);
        if (!routed || !oneEach || owners.length === 0) continue;
        exercised.perAggregate++;
        const mine = (e: VpcEntry): boolean => e.table === tp.table && contains(subnet.podPrefix, e.destination);
        const delta = diffVpcEntries({ entries: after.entries.filter(mine) }, before.entries.filter(mine));
        // Nothing is deleted; only the new node's aggregates appear, each routed to it ...
        if (delta.delete.length > 0) throw new Error('deleted an entry');
        if (delta.create.length > aggregate(blocks).length || delta.create.some((e) => e.target !== 'i-new')) {
          throw new Error(`${delta.create.map(show)} created for ${aggregate(blocks).map(formatPrefix)}`);
        }
        // ... and an entry routed to the owner of everything under it keeps its target.
        for (const e of delta.replace) {
          const prev = before.entries.find((b) => mine(b) && show(b).split(' ')[1] === show(e).split(' ')[1]);
          const holders = owners.filter((n) => n.blocks.some((b) => overlaps(b, e.destination)));
          if (holders.length === 1 && holders[0]?.instanceId === prev?.target) throw new Error(`moved ${show(e)} away from its owner`);
        }
        // (c) With every owner healthy that is all: at most one create per aggregate of the new node.
        if (owners.every((n) => n.healthy)) {
          exercised.allHealthy++;
          if (delta.replace.length > 0) throw new Error('replaced an entry');
        }
      }
      return true;
    }),
    { numRuns: NUM_RUNS },
  );
  t.ok(exercised.perAggregate > 0 && exercised.allHealthy > 0, `both cases exercised: ${JSON.stringify(exercised)}`);
});

t.test('spread: entries of a subnet whose owners are all down are balanced over its healthy hosts', async (t) => {
  fc.assert(
    fc.property(inputArb, (shape) => {
      const raw = build(shape);
      // Owners down, and two block-less healthy forwarders in every subnet.
      const nodes = raw.nodes.map((n) => ({ ...n, healthy: n.blocks.length === 0 ? n.healthy : false }));
      const extra = allSubnets(raw.topology).flatMap((s) =>
        [0, 1].map((i) => ({ name: `fwd-${s.id}-${i}`, subnet: s.id, instanceId: `i-fwd-${s.id}-${i}`, blocks: [], healthy: true })),
      );
      const input = { ...raw, nodes: [...nodes, ...extra] };
      const plan = planVpcRoutes(input);
      const f = facts(input);
      for (const tp of plan.perTable) {
        for (const s of f.subnets) {
          const load = new Map([...(f.healthyHosts.get(s.id) ?? [])].map((h) => [h, 0]));
          for (const e of plan.entries) if (e.table === tp.table && e.subnet === s.id) load.set(e.target, (load.get(e.target) ?? 0) + 1);
          const loads = [...load.values()];
          if (Math.max(...loads) - Math.min(...loads) > 1) throw new Error(`${tp.table} ${s.id}: loads ${loads}`);
        }
      }
      return true;
    }),
    { numRuns: NUM_RUNS / 2 },
  );
  t.pass('balanced');
});
