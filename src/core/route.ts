// Kernel routes as data, and the pure diff that reconciles a desired set of
// routes with what the kernel holds.
//
// Identity: the kernel knows a route by (table, family, destination, metric);
// two routes with the same key cannot coexist, whatever their type, gateway
// or protocol. `routeKey` is that identity, with the kernel's default metric
// filled in (0 for IPv4, 1024 for IPv6) so an unset metric and the metric the
// kernel reports compare equal.
//
// Invariants of `diffRoutes` (property-tested):
// * Ownership: only routes carrying our `rtm_protocol` ever appear in
//   `replace` or `remove`; a route of another protocol is never touched.
// * A desired route whose key is held by a foreign route is reported in
//   `conflicts` and neither added nor replaced; our own route at that key, if
//   any, is left alone too (not fought, not dropped).
// * `keep` protects owned routes that are not desired from removal.
// * Applying add/replace/remove to the observed table makes the owned routes
//   equal the desired ones (minus conflicts, plus kept ones); diffing again
//   then yields nothing to do. Output is sorted by key: deterministic.

import { comparePrefix, formatAddress, formatPrefix, type Address, type Family, type Prefix } from './cidr.js';

/** Route types Trellis installs. */
export type InstallableRouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';

/** Every route type the kernel can report (rtm_type). */
export type RouteType =
  | InstallableRouteType
  | 'unspec'
  | 'local'
  | 'broadcast'
  | 'anycast'
  | 'multicast'
  | 'nat'
  | 'xresolve';

export const RT_TABLE_MAIN = 254;

export interface KernelRoute {
  readonly dst: Prefix;
  readonly type: RouteType;
  /** Next hop, same family as `dst` (unicast only). */
  readonly gateway?: Address;
  /** Output device by name; resolved to an index when installing. */
  readonly ifName?: string;
  /** Output device by index, as the kernel reports it. */
  readonly ifIndex?: number;
  /** Routing table id, 1..2^32-1 (main = 254). */
  readonly table: number;
  /** rtm_protocol: who owns the route. */
  readonly protocol: number;
  /** Route priority; unset means the kernel default (0 for IPv4, 1024 for IPv6). */
  readonly metric?: number;
}

/** The metric the kernel uses when none is given. */
export function defaultMetric(family: Family): number {
  return family === 4 ? 0 : 1024;
}

export function effectiveMetric(r: Pick<KernelRoute, 'dst' | 'metric'>): number {
  return r.metric ?? defaultMetric(r.dst.family);
}

/** The kernel's identity of a route: table, family, destination and metric. */
export function routeKey(r: Pick<KernelRoute, 'dst' | 'table' | 'metric'>): string {
  return `${r.table}|${r.dst.family}|${r.dst.addr.toString(16)}/${r.dst.len}|${effectiveMetric(r)}`;
}

function sameKey(a: KernelRoute, b: KernelRoute): boolean {
  return (
    a.table === b.table &&
    a.dst.family === b.dst.family &&
    a.dst.addr === b.dst.addr &&
    a.dst.len === b.dst.len &&
    effectiveMetric(a) === effectiveMetric(b)
  );
}

function sameAddress(a: Address | undefined, b: Address | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.family === b.family && a.addr === b.addr;
}

/**
 * Devices match when either side leaves the device open, else by name when
 * both have one, else by index when both have one.
 */
function sameDevice(a: KernelRoute, b: KernelRoute): boolean {
  const aOpen = a.ifName === undefined && a.ifIndex === undefined;
  const bOpen = b.ifName === undefined && b.ifIndex === undefined;
  if (aOpen || bOpen) return true;
  if (a.ifName !== undefined && b.ifName !== undefined) return a.ifName === b.ifName;
  if (a.ifIndex !== undefined && b.ifIndex !== undefined) return a.ifIndex === b.ifIndex;
  return false;
}

/**
 * Same identity and same forwarding: type, and for unicast routes gateway and
 * device. Blackhole/unreachable routes carry no next hop (the kernel reports
 * IPv6 ones on `lo`), so only their type counts. Protocol is not compared.
 */
export function sameRoute(a: KernelRoute, b: KernelRoute): boolean {
  if (!sameKey(a, b) || a.type !== b.type) return false;
  if (a.type !== 'unicast') return true;
  return sameAddress(a.gateway, b.gateway) && sameDevice(a, b);
}

/** One line in `ip route` style, for messages and logs. */
export function describeRoute(r: KernelRoute): string {
  const parts: string[] = [];
  if (r.type !== 'unicast') parts.push(r.type);
  parts.push(formatPrefix(r.dst));
  if (r.gateway !== undefined) parts.push('via', formatAddress(r.gateway));
  if (r.ifName !== undefined) parts.push('dev', r.ifName);
  else if (r.ifIndex !== undefined) parts.push('dev', `#${r.ifIndex}`);
  parts.push('table', String(r.table), 'proto', String(r.protocol));
  if (r.metric !== undefined) parts.push('metric', String(r.metric));
  return parts.join(' ');
}

/** Total order used to sort diff output: key parts, then type, gateway, device, protocol. */
export function compareRoutes(a: KernelRoute, b: KernelRoute): number {
  return (
    a.table - b.table ||
    comparePrefix(a.dst, b.dst) ||
    effectiveMetric(a) - effectiveMetric(b) ||
    cmp(a.type, b.type) ||
    compareGateways(a.gateway, b.gateway) ||
    cmp(a.ifName ?? '', b.ifName ?? '') ||
    (a.ifIndex ?? 0) - (b.ifIndex ?? 0) ||
    a.protocol - b.protocol ||
    // An unset metric sorts before the same metric spelled out.
    Number(a.metric !== undefined) - Number(b.metric !== undefined)
  );
}

/** No gateway first, then by family and address. */
function compareGateways(a: Address | undefined, b: Address | undefined): number {
  if (a === undefined || b === undefined) return Number(a !== undefined) - Number(b !== undefined);
  return a.family - b.family || (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface RouteConflict {
  readonly desired: KernelRoute;
  /** The route of another protocol holding the desired route's key. */
  readonly foreign: KernelRoute;
}

export interface RouteDiff {
  readonly add: KernelRoute[];
  readonly replace: KernelRoute[];
  readonly remove: KernelRoute[];
  readonly conflicts: RouteConflict[];
}

export interface DiffOptions {
  /** Our rtm_protocol: only routes carrying it are ever replaced or removed. */
  readonly protocol: number;
  /** Owned routes for which this returns true are never removed (they may still be replaced). */
  readonly keep?: (r: KernelRoute) => boolean;
}

/** True when the diff has nothing to apply (conflicts are reported, not applied). */
export function isEmptyDiff(d: RouteDiff): boolean {
  return d.add.length === 0 && d.replace.length === 0 && d.remove.length === 0;
}

function groupByKey(routes: readonly KernelRoute[]): Map<string, KernelRoute[]> {
  const byKey = new Map<string, KernelRoute[]>();
  for (const r of routes) {
    const key = routeKey(r);
    const list = byKey.get(key);
    if (list === undefined) byKey.set(key, [r]);
    else list.push(r);
  }
  return byKey;
}

/**
 * Plans the changes that make the kernel's owned routes equal `desired`.
 * Desired routes are stamped with `protocol`. When two desired routes share a
 * key, the first in `compareRoutes` order wins, so the result does not depend
 * on input order.
 */
export function diffRoutes(desired: readonly KernelRoute[], observed: readonly KernelRoute[], opts: DiffOptions): RouteDiff {
  const { protocol, keep } = opts;
  const want = new Map<string, KernelRoute>();
  for (const r of [...desired].sort(compareRoutes)) {
    const key = routeKey(r);
    if (!want.has(key)) want.set(key, r.protocol === protocol ? r : { ...r, protocol });
  }
  const seen = groupByKey(observed);
  const add: KernelRoute[] = [];
  const replace: KernelRoute[] = [];
  const remove: KernelRoute[] = [];
  const conflicts: RouteConflict[] = [];

  for (const [key, d] of want) {
    const here = seen.get(key) ?? [];
    const foreign = here.filter((r) => r.protocol !== protocol).sort(compareRoutes);
    const ours = here.filter((r) => r.protocol === protocol).sort(compareRoutes);
    const firstForeign = foreign[0];
    if (firstForeign !== undefined) {
      conflicts.push({ desired: d, foreign: firstForeign });
      continue;
    }
    const match = ours.find((r) => sameRoute(r, d));
    if (match === undefined) {
      if (ours.length === 0) add.push(d);
      else {
        replace.push(d);
        // A replace rewrites one route at the key; extra owned siblings go.
        remove.push(...ours.slice(1));
      }
    } else {
      remove.push(...ours.filter((r) => r !== match));
    }
  }

  for (const [key, here] of seen) {
    if (want.has(key)) continue;
    for (const r of here) {
      if (r.protocol === protocol && !(keep?.(r) ?? false)) remove.push(r);
    }
  }

  return {
    add: add.sort(compareRoutes),
    replace: replace.sort(compareRoutes),
    remove: remove.sort(compareRoutes),
    conflicts: conflicts.sort((a, b) => compareRoutes(a.desired, b.desired)),
  };
}
