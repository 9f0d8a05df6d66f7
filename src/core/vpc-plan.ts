// VPC route planning (docs/vpc.md, "Route planning"): which `prefix →
// forwarder instance` entries each route table should hold, as a pure function
// of the topology, the nodes (claimed blocks, health), the tables' limits and
// the entries Trellis owns now. Objectives, in order:
//  1. no table holds more of our entries than its budget (limit − foreign);
//  2. every claimed address of a subnet with a healthy host is matched by
//     exactly one entry of that subnet: its entries are pairwise disjoint, lie
//     inside its pod prefix and target healthy hosts of that subnet;
//  3. least extra-hop traffic (vpc-cover.ts), zero when the share allows;
//  4. spread: entries that several forwarders serve equally well are balanced
//     over them (assignTargets);
//  5. stability: among equally good choices, the current destination and target.
// A draining node (`trellisctl node drain`, docs/lifecycle.md) forwards for
// nobody, its own blocks included, while its subnet has another healthy host:
// its entries go to those hosts, which reach it over their direct same-subnet
// route. When it is its subnet's only healthy host it keeps forwarding (its
// pods stay reachable) and the plan says so in `drainKept`.
// Each table's budget is split among the subnets by vpc-budget.ts from shared
// state only (never health), so every advertiser computes the same split.
// Tables are those the topology names (routeTables); others are ignored.
// Invariants: the plan depends on its input as a set (not on the order of
// nodes, blocks, tables or current entries); entries are sorted by (table,
// destination); nothing outside a subnet's pod prefix is ever planned.

import { comparePrefix, contains, formatPrefix, overlaps, size, type Prefix } from './cidr.js';
import { allSubnets, routeTables, type Subnet, type Topology } from './topology.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { compareText, splitBudget, type BudgetDemand, type BudgetSplit } from './vpc-budget.js';
import { buildCoverTrie, chooseCover, prefixId, type CoverChoice, type CoverTrie, type OwnedBlock } from './vpc-cover.js';
import { compareEntry, type VpcEntry } from './vpc-diff.js';

export { diffVpcEntries, type VpcDelta, type VpcEntry, type VpcStep, type VpcStepKind } from './vpc-diff.js';

/** Routes per VPC route table when the caller names no limit (the AWS default quota since 2025; adjustable to 1000). */
export const DEFAULT_ROUTE_LIMIT = 500;

export interface PlanNode {
  readonly name: string;
  /** Id of the node's subnet. */
  readonly subnet: string;
  readonly instanceId: string;
  /** Blocks the node owns, all inside its subnet's pod prefix. */
  readonly blocks: readonly Prefix[];
  readonly healthy: boolean;
  /** Being drained: a forwarder only while no other healthy host of its subnet is (default false). */
  readonly draining?: boolean;
}

export interface RouteTableLimit {
  readonly id: string;
  /** Most routes the table may hold. */
  readonly limit: number;
  /** Routes in it that Trellis does not own. */
  readonly foreign: number;
}

export interface PlanInput {
  readonly topology: Topology;
  readonly nodes: readonly PlanNode[];
  /** Limits of the topology's tables; a table not listed gets DEFAULT_ROUTE_LIMIT, foreign 0. */
  readonly tables: readonly RouteTableLimit[];
  /** The entries Trellis owns now: ties go to keeping them. */
  readonly current?: readonly VpcEntry[];
}

export interface PlannedEntry extends VpcEntry {
  /** Name of the forwarding node (`target` is its instance id). */
  readonly node: string;
  /** Id of the subnet whose pods the entry routes. */
  readonly subnet: string;
}

export interface TablePlan {
  readonly table: string;
  /** limit − foreign, at least 0. */
  readonly budget: number;
  /** Entries planned in the table. */
  readonly used: number;
  /** Entries each subnet of the topology may use in this table. */
  readonly shares: Record<string, number>;
  /** Claimed addresses this table sends to a forwarder other than their owner. */
  readonly extraHopAddresses: bigint;
}

export type UncoveredReason = 'no-healthy-host' | 'over-budget';

export interface UncoveredSubnet {
  readonly subnet: string;
  /** The table without room for the subnet; absent when no table can route it. */
  readonly table?: string;
  readonly reason: UncoveredReason;
  readonly message: string;
}

/** Draining nodes that still forward: their subnet has no other healthy host. */
export interface DrainKept {
  readonly subnet: string;
  readonly nodes: readonly string[];
  readonly message: string;
}

export interface Plan {
  readonly entries: readonly PlannedEntry[];
  readonly perTable: readonly TablePlan[];
  /** Subnets with claimed blocks that some table does not route, by subnet id. */
  readonly uncovered: readonly UncoveredSubnet[];
  /** True when some table's budget is below the number of subnets needing entries. */
  readonly budgetExceeded: boolean;
  /** Subnets whose draining nodes keep forwarding (no other healthy host), by subnet id. */
  readonly drainKept: readonly DrainKept[];
  /** Extra-hop addresses of the worst table. */
  readonly extraHopAddresses: bigint;
  /** Every claimed address of every node. */
  readonly claimedAddresses: bigint;
  /** extraHopAddresses / claimedAddresses (0 when nothing is claimed). */
  readonly extraHopShare: number;
}

/** A subnet's nodes and claims, as the planner sees them. */
interface SubnetState {
  readonly subnet: Subnet;
  /** All nodes of the subnet, by name; an owner index points in here. */
  readonly members: readonly PlanNode[];
  /** Nodes owning at least one block. */
  readonly owners: number;
  /** Undefined when nothing is claimed. */
  readonly trie: CoverTrie | undefined;
  /** Per member: may forward (healthy, and not draining unless no other healthy member may). */
  readonly eligible: readonly boolean[];
  readonly anyHealthy: boolean;
  /** Draining members that stay forwarders for want of another healthy host. */
  readonly drainKept: readonly string[];
  readonly claimed: bigint;
}

function badRecord(message: string, details: Record<string, unknown>): TrellisError {
  return new TrellisError(ErrorCode.BadRecord, message, { details });
}

/** The node's blocks without duplicates or blocks inside another of its blocks. */
function ownBlocks(node: PlanNode, subnet: Subnet): Prefix[] {
  const out: Prefix[] = [];
  for (const b of [...node.blocks].sort(comparePrefix)) {
    if (!contains(subnet.podPrefix, b)) {
      throw badRecord(`node ${node.name}: block ${formatPrefix(b)} is outside the pod prefix of subnet ${subnet.id}`, {
        node: node.name,
        block: formatPrefix(b),
      });
    }
    const last = out[out.length - 1];
    if (last === undefined || !contains(last, b)) out.push(b);
  }
  return out;
}

function subnetStates(topology: Topology, nodes: readonly PlanNode[]): SubnetState[] {
  const subnets = allSubnets(topology);
  const members = new Map<string, PlanNode[]>(subnets.map((s) => [s.id, []]));
  const sorted = [...nodes].sort((a, b) => compareText(a.name, b.name));
  sorted.forEach((node, i) => {
    if (i > 0 && sorted[i - 1]?.name === node.name) {
      throw badRecord(`node ${node.name} is listed twice`, { node: node.name });
    }
    const list = members.get(node.subnet);
    if (list === undefined) {
      throw badRecord(`node ${node.name}: unknown subnet ${JSON.stringify(node.subnet)}`, { node: node.name });
    }
    list.push(node);
  });
  return subnets.map((subnet) => {
    const list = members.get(subnet.id) as PlanNode[];
    const blocks: OwnedBlock[] = [];
    let owners = 0;
    list.forEach((node, owner) => {
      const own = ownBlocks(node, subnet);
      if (own.length > 0) owners++;
      for (const prefix of own) blocks.push({ prefix, owner });
    });
    blocks.sort((a, b) => comparePrefix(a.prefix, b.prefix));
    for (let i = 1; i < blocks.length; i++) {
      const [a, b] = [blocks[i - 1] as OwnedBlock, blocks[i] as OwnedBlock];
      if (overlaps(a.prefix, b.prefix)) {
        const [na, nb] = [list[a.owner]?.name, list[b.owner]?.name];
        throw badRecord(`nodes ${na} and ${nb} both own ${formatPrefix(b.prefix)}`, { nodes: [na, nb] });
      }
    }
    const steady = list.some((n) => n.healthy && n.draining !== true);
    const eligible = list.map((n) => n.healthy && (!steady || n.draining !== true));
    const drainKept = steady ? [] : list.filter((n) => n.healthy && n.draining === true).map((n) => n.name);
    return {
      subnet,
      members: list,
      owners,
      trie: blocks.length === 0 ? undefined : buildCoverTrie(subnet.podPrefix, blocks, eligible),
      eligible,
      anyHealthy: eligible.includes(true),
      drainKept,
      claimed: blocks.reduce((sum, b) => sum + size(b.prefix), 0n),
    };
  });
}

function tableBudgets(topology: Topology, tables: readonly RouteTableLimit[]): Array<{ table: string; budget: number }> {
  const given = new Map<string, RouteTableLimit>();
  for (const t of tables) {
    for (const [field, value] of [['limit', t.limit], ['foreign', t.foreign]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new TrellisError(ErrorCode.Config, `route table ${t.id}: ${field} must be a whole number ≥ 0, got ${value}`, {
          details: { table: t.id, [field]: value },
        });
      }
    }
    if (given.has(t.id)) {
      throw new TrellisError(ErrorCode.Config, `route table ${t.id} is listed twice`, { details: { table: t.id } });
    }
    given.set(t.id, t);
  }
  return routeTables(topology).map((table) => {
    const t = given.get(table);
    return { table, budget: Math.max(0, (t?.limit ?? DEFAULT_ROUTE_LIMIT) - (t?.foreign ?? 0)) };
  });
}

/**
 * Forwarders for a subnet's chosen destinations. An entry goes to the healthy
 * owner with the most claimed addresses under it (objective 3). When several
 * tie, or no owner under it is healthy, any of them (or any healthy host) will
 * do: the current target stays if it is one of them, the others go to the
 * least loaded, first by name; then an entry moves while a candidate carries
 * at least two entries fewer than its forwarder (objective 4: no forwarder
 * carries much more than its share), which ends because Σ load² drops.
 */
function assignTargets(
  table: string,
  state: SubnetState,
  trie: CoverTrie,
  choices: readonly CoverChoice[],
  current: readonly VpcEntry[],
): { entries: PlannedEntry[]; extraHop: bigint } {
  const members = state.members;
  const eligible = (i: number): boolean => state.eligible[i] === true;
  const wasTarget = new Map(current.map((e) => [prefixId(e.destination), e.target]));
  const load = members.map(() => 0);
  const anyone = members.flatMap((_, i) => (eligible(i) ? [i] : []));
  const picks = choices.map((choice) => {
    const owned = new Map<number, bigint>();
    let total = 0n;
    for (let i = choice.node.first; i < choice.node.end; i++) {
      const b = trie.blocks[i] as OwnedBlock;
      owned.set(b.owner, (owned.get(b.owner) ?? 0n) + size(b.prefix));
      total += size(b.prefix);
    }
    let best = 0n;
    for (const [o, n] of owned) if (eligible(o) && n > best) best = n;
    const tied = [...owned].flatMap(([o, n]) => (n === best && eligible(o) ? [o] : []));
    const candidates = best === 0n ? anyone : tied.sort((a, b) => a - b);
    const was = wasTarget.get(prefixId(choice.destination));
    const kept = candidates.length === 1 ? candidates[0] : candidates.find((i) => members[i]?.instanceId === was);
    return { choice, owned, total, candidates, target: kept ?? -1 };
  });
  const loadOf = (i: number): number => load[i] as number;
  const assign = (p: (typeof picks)[number], to: number): void => {
    if (p.target >= 0) load[p.target] = loadOf(p.target) - 1;
    p.target = to;
    load[to] = loadOf(to) + 1;
  };
  const leastLoaded = (candidates: readonly number[]): number =>
    candidates.reduce((best, i) => (loadOf(i) < loadOf(best) ? i : best), candidates[0] as number);
  const flexible = picks.filter((p) => p.candidates.length > 1);
  for (const p of picks) if (p.target >= 0) load[p.target] = loadOf(p.target) + 1;
  for (const p of flexible) if (p.target < 0) assign(p, leastLoaded(p.candidates));
  for (let moved = true; moved; ) {
    moved = false;
    for (const p of flexible) {
      const to = leastLoaded(p.candidates);
      if (loadOf(to) + 1 < loadOf(p.target)) {
        assign(p, to);
        moved = true;
      }
    }
  }
  let extraHop = 0n;
  const entries = picks.map((p) => {
    const node = members[p.target] as PlanNode;
    extraHop += p.total - (p.owned.get(p.target) ?? 0n);
    return { table, destination: p.choice.destination, target: node.instanceId, node: node.name, subnet: state.subnet.id };
  });
  return { entries, extraHop };
}

/** The share of claimed addresses taking an extra hop, as a number in [0, 1]. */
export function extraHopShare(extraHopAddresses: bigint, claimedAddresses: bigint): number {
  if (claimedAddresses <= 0n) return 0;
  const shift = BigInt(Math.max(0, claimedAddresses.toString(2).length - 53));
  return Number(extraHopAddresses >> shift) / Number(claimedAddresses >> shift);
}

/** The entries every route table of the topology should hold; see the module comment. */
export function planVpcRoutes(input: PlanInput): Plan {
  const states = subnetStates(input.topology, input.nodes);
  const budgets = tableBudgets(input.topology, input.tables);
  const demands: BudgetDemand[] = states.map((s) => ({
    subnet: s.subnet.id,
    nodes: s.owners,
    demand: s.trie?.zeroHopEntries ?? 0,
  }));
  const splits = new Map<number, BudgetSplit>();
  const entries: PlannedEntry[] = [];
  const perTable: TablePlan[] = [];
  const uncovered: UncoveredSubnet[] = [];
  const needy = demands.filter((d) => d.demand > 0).length;
  for (const state of states) {
    if (state.trie === undefined || state.anyHealthy) continue;
    const message = `subnet ${state.subnet.id} has claimed blocks but no healthy host to forward to them`;
    uncovered.push({ subnet: state.subnet.id, reason: 'no-healthy-host', message });
  }

  for (const { table, budget } of budgets) {
    const split = splits.get(budget) ?? splitBudget(budget, demands);
    splits.set(budget, split);
    for (const subnet of split.starved) {
      const message = `route table ${table} has room for ${budget} of the ${needy} subnets needing entries`;
      uncovered.push({ subnet, table, reason: 'over-budget', message });
    }
    const current = (input.current ?? []).filter((e) => e.table === table);
    let used = 0;
    let extraHop = 0n;
    for (const state of states) {
      const share = split.shares.get(state.subnet.id) ?? 0;
      if (state.trie === undefined || share === 0 || !state.anyHealthy) continue;
      const here = current.filter((e) => contains(state.subnet.podPrefix, e.destination));
      const choices = chooseCover(state.trie, share, here.map((e) => e.destination));
      const planned = assignTargets(table, state, state.trie, choices, here);
      entries.push(...planned.entries);
      used += planned.entries.length;
      extraHop += planned.extraHop;
    }
    const shares = Object.fromEntries(states.map((s) => [s.subnet.id, split.shares.get(s.subnet.id) ?? 0]));
    perTable.push({ table, budget, used, shares, extraHopAddresses: extraHop });
  }
  const drainKept = states.flatMap((s): DrainKept[] => {
    if (s.drainKept.length === 0 || s.trie === undefined) return [];
    const who = s.drainKept.join(', ');
    return [{ subnet: s.subnet.id, nodes: s.drainKept, message: `subnet ${s.subnet.id} has no healthy host that is not draining: ${who} keep${s.drainKept.length === 1 ? 's' : ''} forwarding (pods stay reachable) until another host of the subnet is healthy` }];
  });
  // By subnet id; the sort is stable, so a reason for every table comes first.
  uncovered.sort((a, b) => compareText(a.subnet, b.subnet));
  const claimedAddresses = states.reduce((sum, s) => sum + s.claimed, 0n);
  const extraHopAddresses = perTable.reduce((worst, t) => (t.extraHopAddresses > worst ? t.extraHopAddresses : worst), 0n);
  return {
    entries: entries.sort(compareEntry),
    perTable,
    uncovered,
    budgetExceeded: uncovered.some((u) => u.reason === 'over-budget'),
    drainKept,
    extraHopAddresses,
    claimedAddresses,
    extraHopShare: extraHopShare(extraHopAddresses, claimedAddresses),
  };
}
