// Which routes of a VPC route table are Trellis's, decided from what
// DescribeRouteTables returns (EC2 routes carry no tags) and from what the
// subnets' advertisers recorded in etcd, so that every subnet's advertiser
// classifies a table the same way and computes the same budget split.
//
// A route is Trellis's ("owned") when its destination is an IPv4 CIDR inside
// the pod prefix of a topology subnet, its target is an instance and nothing
// else, and the ownership test says Trellis planned it: the advertisers pass
// a test against the entries every subnet's status record lists as planned or
// applied (the plan is recorded before any EC2 write, so nothing Trellis
// writes is missing from it). Every other route is foreign: it counts against
// the table's budget and is never deleted. Foreign routes whose destination
// lies inside the pod network are "unmanaged": they are reported (something
// other than Trellis routes pod addresses), and the advertiser replaces one
// only when the plan needs exactly its destination and its target is not a
// live node.
// Invariants: owned + foreign = every route of the table; nothing outside the
// pod network is ever owned (0.0.0.0/0, the local route, NAT and gateway
// routes are always foreign).

import { contains, formatPrefix, tryParsePrefix, type Prefix } from './cidr.js';
import { allSubnets, type Topology } from './topology.js';
import type { VpcEntry } from './vpc-diff.js';

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
  /** The target instance, when the route targets one. */
  readonly instanceId: string | undefined;
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

/** Whether Trellis planned the instance route `destination` → `target` of `subnet` in `table`. */
export type OwnershipTest = (subnet: string, table: string, destination: string, target: string) => boolean;

/** The key of an entry in an ownership history. */
export function entryKey(subnet: string, table: string, destination: string, target: string): string {
  return `${subnet}|${table}|${destination}|${target}`;
}

/** The ownership test of a history of entry keys. */
export function ownedBy(history: ReadonlySet<string>): OwnershipTest {
  return (subnet, table, destination, target) => history.has(entryKey(subnet, table, destination, target));
}

/**
 * Splits a described table into Trellis's entries and foreign routes; see the
 * module comment. Without `isTrellis`, every instance route inside a subnet's
 * pod prefix counts as Trellis's (offline planning, and tests of the rest).
 */
export function classifyTable(topology: Topology, table: DescribedTable, isTrellis: OwnershipTest = () => true): TableState {
  const owned: OwnedEntry[] = [];
  const unmanaged: UnmanagedRoute[] = [];
  let foreign = 0;
  for (const route of table.routes) {
    const parsed = route.destination === undefined ? undefined : tryParsePrefix(route.destination);
    const prefix = parsed === undefined || typeof parsed === 'string' || parsed.family !== 4 ? undefined : parsed;
    const inNetwork = prefix !== undefined && contains(topology.network, prefix);
    const subnet = inNetwork ? subnetOf(topology, prefix) : undefined;
    const instanceOnly = route.instanceId !== undefined && route.instanceId !== '' && route.otherTarget === undefined;
    if (prefix !== undefined && subnet !== undefined && instanceOnly && isTrellis(subnet, table.name, formatPrefix(prefix), route.instanceId as string)) {
      owned.push({ table: table.name, destination: prefix, target: route.instanceId as string, subnet });
      continue;
    }
    foreign++;
    if (inNetwork) {
      const target = route.otherTarget ?? route.instanceId ?? '(none)';
      unmanaged.push({ table: table.name, destination: formatPrefix(prefix), target, instanceId: instanceOnly ? route.instanceId : undefined, subnet });
    }
  }
  return { table: table.name, id: table.id, owned, foreign, total: table.routes.length, unmanaged };
}

/** Owned entries of `subnet` in every table. */
export function subnetEntries(states: readonly TableState[], subnet: string): OwnedEntry[] {
  return states.flatMap((s) => s.owned.filter((e) => e.subnet === subnet));
}
