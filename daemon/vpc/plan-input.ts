// What a subnet's advertiser feeds the VPC planner, and what it keeps of the
// plan. Pure functions over the validated cluster view.
//
// The planner splits each table's budget from shared state (every subnet's
// nodes and claims), so the input always holds the whole cluster; only the
// health of the advertiser's own subnet is probed, other subnets' nodes count
// as healthy while their node record lives; a drained node is marked
// draining (the planner moves its forwarding duties). A node is a possible forwarder
// only with an instance id and a live node record; blocks of dead nodes stay
// (claims outlive leases) and must still be covered.
// Invariants: node names in the result are unique; every block appears once,
// under the subnet its record names; the result is independent of map order.

import { formatPrefix, size, contains, type Prefix } from '../../src/core/cidr.js';
import type { Topology } from '../../src/core/topology.js';
import { compareText } from '../../src/core/vpc-budget.js';
import { extraHopShare, type PlanNode, type PlannedEntry } from '../../src/core/vpc-plan.js';
import type { BlockInfo, NodeInfo } from '../../src/state/validate.js';

export interface ClusterState {
  readonly topology: Topology;
  /** Live nodes (node record present) by name. */
  readonly nodes: ReadonlyMap<string, NodeInfo>;
  /** Claimed blocks grouped by owner name. */
  readonly blocksByNode: ReadonlyMap<string, readonly BlockInfo[]>;
  /** Names of the nodes being drained (drain records, daemon/drain-watch.ts). */
  readonly draining?: ReadonlySet<string>;
}

/**
 * Planner nodes for the whole cluster. `healthy(name)` is asked only for live
 * nodes of `subnet` that have an instance id.
 */
export function planNodes(state: ClusterState, subnet: string, healthy: (name: string) => boolean): PlanNode[] {
  const names = new Set([...state.nodes.keys(), ...state.blocksByNode.keys()]);
  const out: PlanNode[] = [];
  for (const name of [...names].sort(compareText)) {
    const node = state.nodes.get(name);
    const blocks = state.blocksByNode.get(name) ?? [];
    const home = node?.subnet.id ?? blocks[0]?.subnet.id;
    if (home === undefined) continue;
    const bySubnet = new Map<string, Prefix[]>([[home, []]]);
    for (const b of blocks) bySubnet.set(b.subnet.id, [...(bySubnet.get(b.subnet.id) ?? []), b.prefix]);
    for (const [where, prefixes] of bySubnet) {
      const live = node !== undefined && where === home && node.instanceId !== '';
      out.push({
        // Blocks left in another subnet (a node that moved) get a node of their own that never forwards.
        name: where === home ? name : `${name}@${where}`,
        subnet: where,
        instanceId: live ? node.instanceId : '',
        blocks: prefixes,
        healthy: live && (where !== subnet || healthy(name)),
        draining: state.draining?.has(name) === true,
      });
    }
  }
  return out;
}

/**
 * Share of `subnet`'s claimed addresses that `entries` (the subnet's planned
 * entries, every table) send to a forwarder other than their owner, in the
 * worst table.
 */
export function subnetExtraHopShare(entries: readonly PlannedEntry[], nodes: readonly PlanNode[], subnet: string): number {
  const owned = nodes.filter((n) => n.subnet === subnet).flatMap((n) => n.blocks.map((b) => ({ b, instanceId: n.instanceId, name: n.name })));
  const claimed = owned.reduce((sum, o) => sum + size(o.b), 0n);
  const perTable = new Map<string, bigint>();
  for (const e of entries) {
    if (e.subnet !== subnet) continue;
    let extra = 0n;
    for (const o of owned) if (contains(e.destination, o.b) && o.name !== e.node) extra += size(o.b);
    perTable.set(e.table, (perTable.get(e.table) ?? 0n) + extra);
  }
  const worst = [...perTable.values()].reduce((w, x) => (x > w ? x : w), 0n);
  return extraHopShare(worst, claimed);
}

/** "100.96.0.0/24 → i-0abc" for logs. */
export function describeEntry(e: { table: string; destination: Prefix; target: string }): string {
  return `${e.table}: ${formatPrefix(e.destination)} → ${e.target}`;
}
