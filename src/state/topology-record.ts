// The stored topology: conversion between the resolved model and its etcd
// record, and the rules for replacing it.
//
// The record holds every subnet's pod prefix (explicit or carved), so the
// stored record, not a re-carve of some file, is the authority on where a
// subnet's pods live. Reading a record runs it through the same validation
// as a topology file, so a hand-edited or hostile record is rejected whole.
// Replacing it (`trellisctl topology apply`) must never move or shrink an
// existing subnet's pod prefix, change the block size under claimed blocks,
// or leave a claimed block outside its subnet's pod prefix.

import { contains, formatPrefix, equal, type Prefix } from '../core/cidr.js';
import { allSubnets, findSubnet, type Topology } from '../core/topology.js';
import { formatIssues, parseTopology } from '../core/topology-parse.js';
import { TopologySchema, type Topology as TopologyRecord } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, makeRecord, msToTimestamp } from './records.js';
import type { Checked } from './validate.js';

export function topologyToRecord(topology: Topology, generation: bigint, nowMs: number): TopologyRecord {
  return makeRecord(TopologySchema, {
    network: formatPrefix(topology.network),
    blockSize: topology.blockSize,
    nodeHomeSize: topology.nodeHomeSize,
    subnetSize: topology.subnetSize,
    generation,
    appliedAt: msToTimestamp(nowMs),
    zones: topology.zones.map((z) => ({
      name: z.name,
      subnets: z.subnets.map((s) => ({
        id: s.id,
        cidr: formatPrefix(s.cidr),
        podPrefix: formatPrefix(s.podPrefix),
        podPrefixExplicit: s.podPrefixExplicit,
        routeTable: s.routeTable ?? '',
      })),
    })),
  });
}

/** Decode and validate the stored topology's value (the text under <prefix>/v1/topology). */
export function decodeStoredTopology(value: string): Checked<Topology> & { record?: TopologyRecord } {
  const decoded = decodeRecord(TopologySchema, value);
  if (!decoded.ok) return decoded;
  const checked = topologyFromRecord(decoded.value);
  return checked.ok ? { ...checked, record: decoded.value } : checked;
}

/** Validate a stored record exactly like a topology file and resolve it. */
export function topologyFromRecord(record: TopologyRecord): Checked<Topology> {
  const doc = {
    network: record.network,
    blockSize: record.blockSize,
    nodeHomeSize: record.nodeHomeSize,
    subnetSize: record.subnetSize,
    zones: record.zones.map((z) => ({
      name: z.name,
      subnets: z.subnets.map((s) => ({
        id: s.id,
        cidr: s.cidr,
        podPrefix: s.podPrefix,
        ...(s.routeTable !== '' ? { routeTable: s.routeTable } : {}),
      })),
    })),
  };
  const parsed = parseTopology(JSON.stringify(doc), 'stored topology');
  if ('errors' in parsed) return { ok: false, reason: formatIssues('stored topology', parsed.errors).join('; ') };
  const explicit = new Map(record.zones.flatMap((z) => z.subnets.map((s) => [s.id, s.podPrefixExplicit] as const)));
  const topology: Topology = {
    ...parsed.topology,
    zones: parsed.topology.zones.map((z) => ({
      ...z,
      subnets: z.subnets.map((s) => ({ ...s, podPrefixExplicit: explicit.get(s.id) ?? false })),
    })),
  };
  return { ok: true, value: topology };
}

export interface ClaimedBlock {
  readonly prefix: Prefix;
  readonly subnet: string;
  readonly node: string;
}

/**
 * Problems that forbid replacing `current` with `next`, given the blocks
 * claimed now. Empty when the change is safe (appending zones or subnets,
 * growing a prefix in place, renaming route tables...).
 */
export function checkTopologyChange(current: Topology, next: Topology, claimed: readonly ClaimedBlock[]): string[] {
  const problems: string[] = [];
  if (!equal(current.network, next.network) && !contains(next.network, current.network)) {
    problems.push(`network ${formatPrefix(next.network)} does not contain the current network ${formatPrefix(current.network)}`);
  }
  if (claimed.length > 0 && current.blockSize !== next.blockSize) {
    problems.push(`blockSize cannot change from /${current.blockSize} to /${next.blockSize} while ${claimed.length} blocks are claimed`);
  }
  for (const old of allSubnets(current)) {
    const now = findSubnet(next, old.id);
    if (now === undefined) {
      const held = claimed.filter((b) => b.subnet === old.id).length;
      if (held > 0) problems.push(`subnet ${old.id} cannot be removed: ${held} claimed block(s) would be orphaned`);
      continue;
    }
    if (!contains(now.podPrefix, old.podPrefix)) {
      const verb = contains(old.podPrefix, now.podPrefix) ? 'shrink' : 'move';
      problems.push(
        `subnet ${old.id}: pod prefix would ${verb} from ${formatPrefix(old.podPrefix)} to ${formatPrefix(now.podPrefix)}` +
          (old.podPrefixExplicit ? '' : ` (it was carved: write "podPrefix: ${formatPrefix(old.podPrefix)}" to keep it)`),
      );
    }
    if (!contains(now.cidr, old.cidr)) {
      problems.push(`subnet ${old.id}: host CIDR would shrink or move from ${formatPrefix(old.cidr)} to ${formatPrefix(now.cidr)}`);
    }
  }
  for (const b of claimed) {
    const subnet = findSubnet(next, b.subnet);
    if (subnet !== undefined && !contains(subnet.podPrefix, b.prefix)) {
      problems.push(`block ${formatPrefix(b.prefix)} of node ${b.node} would be outside the pod prefix of subnet ${b.subnet}`);
    }
  }
  return problems;
}
