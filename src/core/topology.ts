// The topology tree: network → zones → subnets → (nodes → blocks → addresses).
//
// This module holds the validated, fully resolved model (every subnet has its
// pod prefix, explicit or carved) and lookups over it. Parsing and validation
// of the file form live in topology-parse.ts, carving in carve.ts.
// Invariants of a Topology value (established by parseTopology):
//  * all pod prefixes are inside `network`, pairwise disjoint, and each holds
//    at least one block;
//  * host CIDRs of subnets are pairwise disjoint; zone names and subnet ids
//    are unique;
//  * network.len <= subnetSize <= blockSize, and nodeHomeSize <= blockSize.

import { contains, type Address, type Prefix } from './cidr.js';

export interface Subnet {
  /** Cloud subnet id or any unique name, e.g. "subnet-0abc". */
  readonly id: string;
  /** Name of the zone this subnet belongs to. */
  readonly zone: string;
  /** The host (underlay) CIDR: host IPs of this subnet's nodes lie in it. */
  readonly cidr: Prefix;
  /** The pod prefix owned by this subnet: every pod address of its nodes lies in it. */
  readonly podPrefix: Prefix;
  /** True when podPrefix was written in the file, false when it was carved. */
  readonly podPrefixExplicit: boolean;
  /** VPC route table that routes this subnet's traffic, if any. */
  readonly routeTable: string | undefined;
}

export interface Zone {
  readonly name: string;
  readonly subnets: readonly Subnet[];
}

export interface Topology {
  /** The pod network: every pod address lies inside it. */
  readonly network: Prefix;
  /** Prefix length of an address block, the unit a node claims (default /26 for IPv4). */
  readonly blockSize: number;
  /**
   * Prefix length of a node's home: the aligned region in which a node's
   * blocks are placed next to each other so that they aggregate.
   */
  readonly nodeHomeSize: number;
  /** Prefix length of the pod prefix carved for a subnet that names none. */
  readonly subnetSize: number;
  readonly zones: readonly Zone[];
}

/** All subnets in file order (zone by zone). */
export function allSubnets(topology: Topology): Subnet[] {
  return topology.zones.flatMap((z) => z.subnets);
}

export function findSubnet(topology: Topology, id: string): Subnet | undefined {
  for (const zone of topology.zones) {
    for (const subnet of zone.subnets) if (subnet.id === id) return subnet;
  }
  return undefined;
}

/** The subnet whose host CIDR contains `host`. */
export function subnetForHost(topology: Topology, host: Address): Subnet | undefined {
  for (const zone of topology.zones) {
    for (const subnet of zone.subnets) if (contains(subnet.cidr, host)) return subnet;
  }
  return undefined;
}

/** The subnet whose pod prefix contains the given pod prefix or address. */
export function subnetForPod(topology: Topology, pod: Prefix | Address): Subnet | undefined {
  for (const zone of topology.zones) {
    for (const subnet of zone.subnets) if (contains(subnet.podPrefix, pod)) return subnet;
  }
  return undefined;
}

/** Prefix length of a node home inside `subnet` (never larger than its pod prefix). */
export function homeSizeIn(topology: Topology, subnet: Subnet): number {
  return Math.max(topology.nodeHomeSize, subnet.podPrefix.len);
}

/** Route tables named by subnets, in first-seen order; "main" when none names one. */
export function routeTables(topology: Topology): string[] {
  const seen = new Set<string>();
  for (const subnet of allSubnets(topology)) seen.add(subnet.routeTable ?? 'main');
  return [...seen];
}
