// Which routes of a VPC route table are Trellis's, decided from what
// DescribeRouteTables returns alone (EC2 routes carry no tags), so that every
// subnet's advertiser classifies a table the same way and computes the same
// budget split.
//
// A route is Trellis's ("owned") when its destination is an IPv4 CIDR inside
// the pod prefix of a topology subnet and its target is an instance and
// nothing else. Every other route is foreign: it counts against the table's
// budget and is never deleted. Foreign routes whose destination lies inside
// the pod network are "unmanaged": they are reported (something other than
// Trellis routes pod addresses), and the advertiser replaces one only when the
// plan needs exactly its destination (its target, a gateway or an interface,
// is never a live node).
// Invariants: owned + foreign = every route of the table; nothing outside the
// pod network is ever owned (0.0.0.0/0, the local route, NAT and gateway
// routes are always foreign).

import { contains, formatPrefix, tryParsePrefix, type Prefix } from '../core/cidr.js';
import { allSubnets, type Topology } from '../core/topology.js';
import type { VpcEntry } from '../core/vpc-diff.js';

/** One route as DescribeRouteTables reports it, reduced to what matters here. */
export interface DescribedRoute {
  /** IPv4 destination CIDR; undefined for IPv6 and prefix-list routes. */
  readonly destination: string | undefined;
  /** The target instance, when the route targets an instance. */
  readonly instanceId: string | undefined;
  /** Any other target (gateway, NAT gateway, interface, peering…), e.g. "local" or "igw-…". */
  readonly otherTarget: string | undefined;
  /** "active" or "blackhole". */
  readonly state?: string | undefined;
}

export interface DescribedTable {
  /** The table as the topology names it ("main" for the VPC's main table). */
  readonly name: string;
  /** The route table id in EC2. */
  readonly id: string;
  readonly routes: readonly DescribedRoute[];
}

export interface OwnedEntry extends VpcEntry {
  /** Subnet whose pod prefix holds the destination. */
  readonly subnet: string;
}

export interface UnmanagedRoute {
  readonly table: string;
  readonly destination: string;
  readonly target: string;
  /** Subnet whose pod prefix holds the destination, if any. */
  readonly subnet: string | undefined;
}

export interface TableState {
  /** Name in the topology. */
  readonly table: string;
  readonly id: string;
  /** Trellis's entries, of every subnet. */
  readonly owned: readonly OwnedEntry[];
  /** Routes Trellis does not own (the local route included). */
  readonly foreign: number;
  /** Every route in the table. */
  readonly total: number;
  /** Foreign routes inside the pod network. */
  readonly unmanaged: readonly UnmanagedRoute[];
}

function subnetOf(topology: Topology, p: Prefix): string | undefined {
  return allSubnets(topology).find((s) => contains(s.podPrefix, p))?.id;
}

/** Splits a described table into Trellis's entries and foreign routes; see the module comment. */
export function classifyTable(topology: Topology, table: DescribedTable): TableState {
  const owned: OwnedEntry[] = [];
  const unmanaged: UnmanagedRoute[] = [];
  let foreign = 0;
  for (const route of table.routes) {
    const parsed = route.destination === undefined ? undefined : tryParsePrefix(route.destination);
    const prefix = parsed === undefined || typeof parsed === 'string' || parsed.family !== 4 ? undefined : parsed;
    const inNetwork = prefix !== undefined && contains(topology.network, prefix);
    const subnet = inNetwork ? subnetOf(topology, prefix) : undefined;
    const instanceOnly = route.instanceId !== undefined && route.instanceId !== '' && route.otherTarget === undefined;
    if (prefix !== undefined && subnet !== undefined && instanceOnly) {
      owned.push({ table: table.name, destination: prefix, target: route.instanceId as string, subnet });
      continue;
    }
    foreign++;
    if (inNetwork) {
      const target = route.otherTarget ?? route.instanceId ?? '(none)';
      unmanaged.push({ table: table.name, destination: formatPrefix(prefix), target, subnet });
    }
  }
  return { table: table.name, id: table.id, owned, foreign, total: table.routes.length, unmanaged };
}

/** Owned entries of `subnet` in every table. */
export function subnetEntries(states: readonly TableState[], subnet: string): OwnedEntry[] {
  return states.flatMap((s) => s.owned.filter((e) => e.subnet === subnet));
}
