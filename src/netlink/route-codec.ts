// Translation between KernelRoute and rtnetlink route messages (struct rtmsg
// plus RTA_* attributes), both directions, IPv4 and IPv6.
//
// Invariants: the table id always travels in RTA_TABLE (rtm_table says
// RT_TABLE_COMPAT when it does not fit in a byte) and is read from RTA_TABLE
// first; enum fields, which the package reports as names for known values and
// numbers otherwise, always come back as numbers; a message that is not a
// plain IPv4/IPv6 route (multicast families, cloned cache entries) decodes to
// undefined.

import { rt } from 'netlink';
import { ErrorCode, TrellisError } from '../errors.js';
import { maxLen, type Address, type Family, type Prefix } from '../core/cidr.js';
import { defaultMetric, describeRoute, type KernelRoute, type RouteType } from '../core/route.js';

export const AF_INET = 2;
export const AF_INET6 = 10;
const RT_TABLE_COMPAT = 252;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;

const TYPE_NUMBERS: Readonly<Record<RouteType, number>> = {
  unspec: 0,
  unicast: 1,
  local: 2,
  broadcast: 3,
  anycast: 4,
  multicast: 5,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
  nat: 10,
  xresolve: 11,
};
const TYPE_NAMES = new Map<number, RouteType>(
  Object.entries(TYPE_NUMBERS).map(([name, n]) => [n, name as RouteType]),
);
const INSTALLABLE: ReadonlySet<RouteType> = new Set(['unicast', 'blackhole', 'unreachable', 'prohibit', 'throw']);

/** An enum field as a number, whether the package gave its name or its value. */
function enumNumber(mapping: Record<string, string | number>, value: string | number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const n = mapping[value];
  return typeof n === 'number' ? n : 0;
}

export function familyOf(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

function addressBytes(family: Family): number {
  return family === 4 ? 4 : 16;
}

export function addressToBuffer(family: Family, addr: bigint): Buffer {
  const n = addressBytes(family);
  const buf = Buffer.alloc(n);
  let v = addr;
  for (let i = n - 1; i >= 0; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return buf;
}

export function bufferToAddress(buf: Buffer): bigint {
  let v = 0n;
  for (const byte of buf) v = (v << 8n) | BigInt(byte);
  return v;
}

/** The route message for `op`; `ifIndex` is the resolved output device, if any. */
export function encodeRoute(
  route: KernelRoute,
  op: 'new' | 'del',
  ifIndex: number | undefined,
): { data: rt.Route; attrs: rt.RouteAttrs } {
  const { dst } = route;
  if (!INSTALLABLE.has(route.type)) {
    throw new TrellisError(ErrorCode.Internal, `cannot install a ${route.type} route: ${describeRoute(route)}`);
  }
  if (route.gateway !== undefined && (route.type !== 'unicast' || route.gateway.family !== dst.family)) {
    throw new TrellisError(
      ErrorCode.Internal,
      `a gateway needs a unicast route of the same family: ${describeRoute(route)}`,
    );
  }
  if (!Number.isInteger(route.table) || route.table < 1 || route.table > 0xffffffff) {
    throw new TrellisError(ErrorCode.Internal, `routing table id out of range: ${describeRoute(route)}`);
  }
  let scope = RT_SCOPE_UNIVERSE;
  if (op === 'del') scope = RT_SCOPE_NOWHERE; // matches any scope
  else if (route.type === 'unicast' && route.gateway === undefined) scope = RT_SCOPE_LINK;
  const data: rt.Route = {
    family: dst.family === 4 ? AF_INET : AF_INET6,
    dstLen: dst.len,
    table: route.table < 256 ? route.table : RT_TABLE_COMPAT,
    protocol: route.protocol,
    scope,
    type: TYPE_NUMBERS[route.type],
  };
  const attrs: rt.RouteAttrs = { table: route.table };
  if (dst.len > 0) attrs.dst = addressToBuffer(dst.family, dst.addr);
  if (route.gateway !== undefined) attrs.gateway = addressToBuffer(route.gateway.family, route.gateway.addr);
  if (ifIndex !== undefined && route.type === 'unicast') attrs.oif = ifIndex;
  if (route.metric !== undefined) attrs.priority = route.metric;
  return { data, attrs };
}

/**
 * The KernelRoute in a route message, or undefined when it is not an IPv4 or
 * IPv6 route we model. `nameOf` resolves the output device's name.
 */
export function decodeRoute(
  msg: { data: rt.Route; attrs: rt.RouteAttrs },
  nameOf: (index: number) => string | undefined,
): KernelRoute | undefined {
  const { data, attrs } = msg;
  const family = familyOf(data.family ?? 0);
  if (family === undefined) return undefined;
  if (data.flags?.cloned === true) return undefined;
  const len = data.dstLen ?? 0;
  if (len > maxLen(family)) return undefined;
  const raw = attrs.dst === undefined ? 0n : bufferToAddress(attrs.dst);
  const host = (1n << BigInt(maxLen(family) - len)) - 1n;
  const dst: Prefix = { family, addr: raw & ~host, len };
  const type = TYPE_NAMES.get(enumNumber(rt.RouteType, data.type)) ?? 'unspec';
  const route: {
    -readonly [K in keyof KernelRoute]: KernelRoute[K];
  } = {
    dst,
    type,
    table: attrs.table ?? data.table ?? 0,
    protocol: enumNumber(rt.RouteProtocol, data.protocol),
    metric: attrs.priority ?? defaultMetric(family),
  };
  if (attrs.gateway !== undefined && attrs.gateway.length === addressBytes(family)) {
    const gateway: Address = { family, addr: bufferToAddress(attrs.gateway) };
    route.gateway = gateway;
  }
  if (attrs.oif !== undefined) {
    route.ifIndex = attrs.oif;
    const name = nameOf(attrs.oif);
    if (name !== undefined) route.ifName = name;
  }
  return route;
}
