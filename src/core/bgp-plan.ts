// BGP announcement planning (docs/bgp.md, "What is announced"): which pod
// prefixes a speaker announces to a peer, and through which next hops, as a
// pure function of the topology, the nodes (claimed blocks, host IP, health)
// and the peer's prefix limit.
//
// The VPC planner (vpc-plan.ts) does the work: the peer is planned as one
// route table whose budget is the peer's maxPrefixes, shared by every subnet
// of the topology (vpc-budget.ts splits it from shared state only, so every
// subnet's exporter computes the same split without talking to the others);
// an entry's target is the forwarder's host IP, which becomes the BGP next
// hop. Where the peer takes several paths (`multipath` > 1) an aggregate also
// carries the other healthy owners of blocks under it as next hops.
// Exporter mode announces the entries of the subnets it serves; ToR mode
// (planTorRoutes) announces a node's own blocks, merged, to its own router.
// Invariants: never more prefixes than the budget (all subnets together);
// every prefix lies inside the pod prefix of its subnet, hence inside the
// topology's network; every next hop is the host IP of a healthy node of that
// subnet, not a draining one unless the subnet has no other (vpc-plan.ts); the result depends on its input as a set.

import { aggregate, comparePrefix, contains, formatPrefix, type Prefix } from './cidr.js';
import type { Topology } from './topology.js';
import { compareText } from './vpc-budget.js';
import { planVpcRoutes, type PlanNode, type Plan, type UncoveredSubnet } from './vpc-plan.js';
import { ErrorCode, TrellisError } from '../errors.js';

/** The route table name the VPC planner sees for a BGP peer. */
const PEER_TABLE = 'bgp-peer';

export interface BgpPlanNode {
  readonly name: string;
  readonly subnet: string;
  /** Host IP: the next hop for its pods. Empty for a node that cannot forward. */
  readonly hostIP: string;
  readonly blocks: readonly Prefix[];
  readonly healthy: boolean;
  /** Being drained: a next hop only while its subnet has no other healthy host (see vpc-plan.ts). */
  readonly draining?: boolean;
}

export interface BgpPlanInput {
  readonly topology: Topology;
  readonly nodes: readonly BgpPlanNode[];
  /** The peer's maxPrefixes: most prefixes it accepts from the whole cluster. */
  readonly maxPrefixes: number;
  /** Subnets whose routes this speaker announces; all when absent. */
  readonly subnets?: readonly string[];
  /** Most next hops per prefix (1 = the planned forwarder only). */
  readonly multipath?: number;
  /** Routes announced now (prefix → first next hop): ties keep them. */
  readonly current?: ReadonlyArray<{ readonly prefix: Prefix; readonly nextHop: string }>;
}

export interface BgpRoute {
  readonly prefix: Prefix;
  /** Planned forwarder first, then other healthy owners under the prefix (by name). */
  readonly nextHops: readonly string[];
  /** Node name of the first next hop. */
  readonly node: string;
  readonly subnet: string;
}

export interface BgpPlan {
  /** Routes of the served subnets, by prefix. */
  readonly routes: readonly BgpRoute[];
  /** Routes of all subnets together (≤ maxPrefixes). */
  readonly clusterRoutes: number;
  readonly maxPrefixes: number;
  /** Prefixes each subnet may use of the peer's limit. */
  readonly shares: Readonly<Record<string, number>>;
  /** Subnets with claims the peer cannot be told about (no healthy host, or over budget). */
  readonly uncovered: readonly UncoveredSubnet[];
  /** Share of claimed addresses that reach a forwarder other than their owner. */
  readonly extraHopShare: number;
}

function asPeerTable(topology: Topology): Topology {
  return {
    ...topology,
    zones: topology.zones.map((z) => ({ ...z, subnets: z.subnets.map((s) => ({ ...s, routeTable: PEER_TABLE })) })),
  };
}

function checkBudget(maxPrefixes: number, multipath: number): void {
  if (!Number.isSafeInteger(maxPrefixes) || maxPrefixes < 1) {
    throw new TrellisError(ErrorCode.Config, `bgp: maxPrefixes must be a whole number ≥ 1, got ${maxPrefixes}`);
  }
  if (!Number.isSafeInteger(multipath) || multipath < 1) {
    throw new TrellisError(ErrorCode.Config, `bgp: multipath must be a whole number ≥ 1, got ${multipath}`);
  }
}

/** The announcements to one peer; see the module comment. */
export function planBgpRoutes(input: BgpPlanInput): BgpPlan {
  const multipath = input.multipath ?? 1;
  checkBudget(input.maxPrefixes, multipath);
  const nodes: PlanNode[] = input.nodes.map((n) => ({
    name: n.name,
    subnet: n.subnet,
    instanceId: n.hostIP,
    blocks: n.blocks,
    healthy: n.healthy && n.hostIP !== '',
    draining: n.draining === true,
  }));
  const plan: Plan = planVpcRoutes({
    topology: asPeerTable(input.topology),
    nodes,
    tables: [{ id: PEER_TABLE, limit: input.maxPrefixes, foreign: 0 }],
    current: (input.current ?? []).map((c) => ({ table: PEER_TABLE, destination: c.prefix, target: c.nextHop })),
  });
  // A draining node is another next hop only where the planner kept it forwarding.
  const kept = new Set(plan.drainKept.flatMap((d) => d.nodes));
  const served = input.subnets === undefined ? undefined : new Set(input.subnets);
  const podOf = new Map(input.topology.zones.flatMap((z) => z.subnets.map((s) => [s.id, s.podPrefix] as const)));
  const routes: BgpRoute[] = [];
  for (const e of plan.entries) {
    const pod = podOf.get(e.subnet);
    if (pod === undefined || !contains(pod, e.destination) || !contains(input.topology.network, e.destination)) {
      throw new TrellisError(ErrorCode.Internal, `bgp plan: ${formatPrefix(e.destination)} lies outside the pod prefix of ${e.subnet}`);
    }
    if (served !== undefined && !served.has(e.subnet)) continue;
    const others = input.nodes
      .filter((n) => n.subnet === e.subnet && n.healthy && n.hostIP !== '' && (n.draining !== true || kept.has(n.name)) && n.name !== e.node && n.blocks.some((b) => contains(e.destination, b)))
      .sort((a, b) => compareText(a.name, b.name))
      .map((n) => n.hostIP);
    const nextHops = [e.target, ...others.filter((h) => h !== e.target)].slice(0, multipath);
    routes.push({ prefix: e.destination, nextHops, node: e.node, subnet: e.subnet });
  }
  if (plan.entries.length > input.maxPrefixes) {
    throw new TrellisError(ErrorCode.Internal, `bgp plan: ${plan.entries.length} prefixes exceed the limit ${input.maxPrefixes}`);
  }
  const table = plan.perTable[0];
  return {
    routes: routes.sort((a, b) => comparePrefix(a.prefix, b.prefix)),
    clusterRoutes: plan.entries.length,
    maxPrefixes: input.maxPrefixes,
    shares: table?.shares ?? {},
    uncovered: plan.uncovered,
    extraHopShare: plan.extraHopShare,
  };
}

/**
 * ToR mode: a node announces its own blocks (merged where they aggregate) with
 * its host IP as next hop. When they still exceed the router's limit, the
 * first `maxPrefixes` (by prefix) are announced and the rest reported, since
 * a wider prefix could cover another node's addresses.
 */
export function planTorRoutes(node: BgpPlanNode, topology: Topology, maxPrefixes: number): { routes: BgpRoute[]; dropped: Prefix[] } {
  checkBudget(maxPrefixes, 1);
  const inside = node.blocks.filter((b) => contains(topology.network, b));
  const merged = aggregate(inside).sort(comparePrefix);
  const routes = merged.slice(0, maxPrefixes).map((prefix) => ({ prefix, nextHops: [node.hostIP], node: node.name, subnet: node.subnet }));
  return { routes, dropped: merged.slice(maxPrefixes) };
}
