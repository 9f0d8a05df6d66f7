// The kernel routes a node wants, computed from validated state (pure).
//
//  * For every valid advertisement of a peer in the node's own subnet: each
//    advertised prefix via the peer's host IP on the configured interface.
//    Peers in other subnets get nothing: their pods are reached through the
//    default route (the VPC route tables, or the L3 network, carry them).
//  * For the node's own blocks (aggregated): an unreachable or blackhole
//    route, so traffic for a pod address that is not assigned (yet, or any
//    more) is answered or dropped here instead of looping out of the default
//    route. Assigned pods have /32 routes to their veth, which win by
//    longest-prefix match.
// Invariant: a route is only ever derived from an advertisement that passed
// validation (src/state/validate.ts), never via this node's own host IP, and
// always with a next hop of the prefix's own address family.

import { aggregate, maxLen, type Address, type Prefix } from './cidr.js';
import type { KernelRoute } from './route.js';

export type OwnBlocksRoute = 'unreachable' | 'blackhole' | 'none';

export interface PeerAdvertisement {
  readonly node: string;
  readonly subnet: string;
  readonly nextHop: Address;
  readonly prefixes: readonly Prefix[];
}

export interface DesiredRoutesInput {
  readonly self: string;
  readonly selfIP: Address;
  readonly subnet: string;
  /** Interface towards same-subnet peers. */
  readonly iface: string;
  readonly table: number;
  readonly protocol: number;
  readonly ownBlocks: OwnBlocksRoute;
  readonly advertisements: Iterable<PeerAdvertisement>;
  /** This node's blocks in its subnet. */
  readonly ownPrefixes: readonly Prefix[];
}

export function desiredRoutes(input: DesiredRoutesInput): KernelRoute[] {
  const routes: KernelRoute[] = [];
  const base = { table: input.table, protocol: input.protocol };
  for (const a of input.advertisements) {
    if (a.node === input.self || a.subnet !== input.subnet) continue;
    if (a.nextHop.family === input.selfIP.family && a.nextHop.addr === input.selfIP.addr) continue;
    for (const dst of a.prefixes) {
      if (dst.family !== a.nextHop.family) continue;
      routes.push({ ...base, dst, type: 'unicast', gateway: a.nextHop, ifName: input.iface });
    }
  }
  if (input.ownBlocks !== 'none') {
    for (const dst of aggregate(input.ownPrefixes)) routes.push({ ...base, dst, type: input.ownBlocks });
  }
  return routes;
}

/**
 * A route the CNI plugin installed for one pod: our protocol, a host route
 * (/32 or /128) out of a device other than the peer interface. The route
 * agent never removes these; their owner (the plugin's DEL) does.
 */
export function isPodRoute(route: KernelRoute, protocol: number, iface: string): boolean {
  return (
    route.protocol === protocol &&
    route.type === 'unicast' &&
    route.dst.len === maxLen(route.dst.family) &&
    route.ifName !== undefined &&
    route.ifName !== iface
  );
}
