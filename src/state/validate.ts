// Validation of node, block and advertisement records read from etcd.
//
// Nothing read from etcd is trusted: every record is checked against its key,
// the topology and (for advertisements) the block records before it can
// influence a route. The functions are pure and return either the checked
// value or a reason; callers log the reason once and count it.
// Invariant: an advertised prefix is accepted only when the blocks that the
// block records assign to the advertising node cover it exactly. A prefix
// that covers a block of another node, an unclaimed block, or space outside
// the node's subnet is dropped.

import { aggregate, contains, equal, formatPrefix, parseAddress, tryParsePrefix, type Address, type Prefix } from '../core/cidr.js';
import { findSubnet, type Subnet, type Topology } from '../core/topology.js';
import type { Advertisement, Block, Node } from '../gen/trellis/v1/records_pb.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface NodeInfo {
  readonly name: string;
  readonly subnet: Subnet;
  readonly hostIP: Address;
  readonly instanceId: string;
  readonly healthEndpoint: string;
}

export interface BlockInfo {
  readonly prefix: Prefix;
  readonly node: string;
  readonly subnet: Subnet;
}

export interface AdvertisementInfo {
  readonly node: string;
  readonly subnet: Subnet;
  readonly nextHop: Address;
  /** Accepted prefixes. */
  readonly prefixes: readonly Prefix[];
  /** Prefixes dropped, with the reason for each. */
  readonly rejected: ReadonlyArray<{ prefix: string; reason: string }>;
  readonly instanceId: string;
}

const fail = <T>(reason: string): Checked<T> => ({ ok: false, reason });

function address(text: string): Address | undefined {
  try {
    return parseAddress(text);
  } catch {
    return undefined;
  }
}

export function checkNode(record: Node, keyName: string, topology: Topology): Checked<NodeInfo> {
  if (record.name !== keyName) return fail(`node record under key ${keyName} names ${JSON.stringify(record.name)}`);
  const subnet = findSubnet(topology, record.subnet);
  if (subnet === undefined) return fail(`node ${keyName}: unknown subnet ${JSON.stringify(record.subnet)}`);
  const hostIP = address(record.hostIp);
  if (hostIP === undefined) return fail(`node ${keyName}: bad hostIp ${JSON.stringify(record.hostIp)}`);
  if (!contains(subnet.cidr, hostIP)) {
    return fail(`node ${keyName}: hostIp ${record.hostIp} is outside subnet ${subnet.id} (${formatPrefix(subnet.cidr)})`);
  }
  return {
    ok: true,
    value: { name: record.name, subnet, hostIP, instanceId: record.instanceId, healthEndpoint: record.healthEndpoint },
  };
}

export function checkBlock(record: Block, keyPrefix: Prefix, topology: Topology): Checked<BlockInfo> {
  const prefix = tryParsePrefix(record.prefix);
  if (typeof prefix === 'string') return fail(`block ${formatPrefix(keyPrefix)}: ${prefix}`);
  if (!equal(prefix, keyPrefix)) return fail(`block record under key ${formatPrefix(keyPrefix)} names ${record.prefix}`);
  if (prefix.len !== topology.blockSize) {
    return fail(`block ${record.prefix}: length /${prefix.len} differs from the topology block size /${topology.blockSize}`);
  }
  const subnet = findSubnet(topology, record.subnet);
  if (subnet === undefined) return fail(`block ${record.prefix}: unknown subnet ${JSON.stringify(record.subnet)}`);
  if (!contains(subnet.podPrefix, prefix)) {
    return fail(`block ${record.prefix}: outside the pod prefix ${formatPrefix(subnet.podPrefix)} of subnet ${subnet.id}`);
  }
  if (record.node === '') return fail(`block ${record.prefix}: no owner node`);
  for (const a of Object.keys(record.allocations)) {
    const addr = address(a);
    if (addr === undefined || !contains(prefix, addr)) return fail(`block ${record.prefix}: allocation ${JSON.stringify(a)} is not an address of the block`);
  }
  return { ok: true, value: { prefix, node: record.node, subnet } };
}

/**
 * Check an advertisement against its key, the topology and `owned`: the
 * blocks that the block records in etcd assign to the advertising node.
 */
export function checkAdvertisement(
  record: Advertisement,
  key: { subnet: string; node: string },
  topology: Topology,
  owned: readonly BlockInfo[],
): Checked<AdvertisementInfo> {
  if (record.node !== key.node || record.subnet !== key.subnet) {
    return fail(`advertisement under ${key.subnet}/${key.node} names ${record.subnet}/${record.node}`);
  }
  const subnet = findSubnet(topology, record.subnet);
  if (subnet === undefined) return fail(`advertisement of ${key.node}: unknown subnet ${JSON.stringify(record.subnet)}`);
  const nextHop = address(record.nextHop);
  if (nextHop === undefined) return fail(`advertisement of ${key.node}: bad nextHop ${JSON.stringify(record.nextHop)}`);
  if (!contains(subnet.cidr, nextHop)) {
    return fail(`advertisement of ${key.node}: nextHop ${record.nextHop} is outside subnet ${subnet.id} (${formatPrefix(subnet.cidr)})`);
  }
  const mine = owned.filter((b) => b.node === key.node && b.subnet.id === subnet.id).map((b) => b.prefix);
  const prefixes: Prefix[] = [];
  const rejected: Array<{ prefix: string; reason: string }> = [];
  for (const text of record.prefixes) {
    const p = tryParsePrefix(text);
    if (typeof p === 'string') {
      rejected.push({ prefix: text, reason: p });
      continue;
    }
    if (!contains(subnet.podPrefix, p)) {
      rejected.push({ prefix: text, reason: `outside the pod prefix ${formatPrefix(subnet.podPrefix)} of subnet ${subnet.id}` });
      continue;
    }
    const cover = aggregate(mine.filter((b) => contains(p, b)));
    if (cover.length !== 1 || !equal(cover[0] as Prefix, p)) {
      rejected.push({ prefix: text, reason: `not covered exactly by blocks that ${key.node} owns` });
      continue;
    }
    prefixes.push(p);
  }
  return {
    ok: true,
    value: { node: key.node, subnet, nextHop, prefixes: aggregate(prefixes), rejected, instanceId: record.instanceId },
  };
}
