// A synthetic cluster for bench/scale, written straight into etcd: its
// topology (pod network 100.64.0.0/10, one /14 pod prefix per subnet, /26
// blocks inside a /24 home per node, host subnets /23 inside 198.18.0.0/15),
// and for every synthetic node its Node record and Advertisement (under one
// long-lived lease per subnet), its block claims (empty allocation maps: the
// per-node IPAM layout) and its pod addresses as PodAddress records under
// ipam/<node>/<block>/<address>.
//
// Invariants: node k of subnet i has host IP 198.18.(2i).0/23 + 10 + k and home
// /24 number k of its subnet's pod prefix; its blocks are the first
// `blocksPerNode` /26 of that home, filled in order; host offsets 510 and up
// of each subnet and homes from `nodesPerSubnet` on are left free for the
// daemon under test. Writes go in transactions of at most 128 operations
// (etcd's default --max-txn-ops), several in flight.

import { Etcd3, type IRequestOp } from 'etcd3';
import { loadTopology } from '../../src/core/topology-parse.js';
import { allSubnets, type Topology } from '../../src/core/topology.js';
import { AdvertisementSchema, BlockSchema, NodeSchema, PodAddressSchema, TopologySchema } from '../../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../../src/state/keys.js';
import { encodeRecord, makeRecord, msToTimestamp } from '../../src/state/records.js';
import { topologyToRecord } from '../../src/state/topology-record.js';

export const TXN_OPS = 128;
const TXNS_IN_FLIGHT = 8;
/** Seeded leases outlive any run; nothing needs to keep them alive. */
const LEASE_TTL_S = 24 * 3600;

export interface ScaleShape {
  subnets: number;
  nodes: number;
  blocks: number;
  pods: number;
}

export interface SeedResult {
  keys: number;
  ms: number;
  txns: number;
}

const ip4 = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
const int4 = (a: string): number => a.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);

/** Subnet i: id, host CIDR, first host address. */
export function subnetOf(i: number): { id: string; cidr: string; base: number } {
  const base = int4('198.18.0.0') + i * 512;
  return { id: `subnet-${i}`, cidr: `${ip4(base)}/23`, base };
}

/** The topology YAML of the synthetic cluster. */
export function scaleTopologyYaml(subnets: number): string {
  const lines = ['network: 100.64.0.0/10', 'blockSize: 26', 'nodeHomeSize: 24', 'subnetSize: 14', 'zones:'];
  for (let i = 0; i < subnets; i++) {
    const s = subnetOf(i);
    lines.push(`  - name: zone-${i}`, '    subnets:', `      - id: ${s.id}`, `        cidr: ${s.cidr}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A synthetic node: name, subnet, host IP, home base address. */
export interface SynthNode {
  name: string;
  subnet: number;
  hostIP: string;
  home: number;
}

export function synthNode(topology: Topology, subnet: number, k: number): SynthNode {
  const s = allSubnets(topology)[subnet]!;
  const pod = Number(s.podPrefix.addr);
  return { name: `n${subnet}-${k}`, subnet, hostIP: ip4(subnetOf(subnet).base + 10 + k), home: pod + k * 256 };
}

export function blockPrefix(node: SynthNode, b: number): string {
  return `${ip4(node.home + b * 64)}/26`;
}

export function advertisement(node: SynthNode, prefixes: readonly string[]): string {
  return encodeRecord(
    AdvertisementSchema,
    makeRecord(AdvertisementSchema, { node: node.name, subnet: `subnet-${node.subnet}`, nextHop: node.hostIP, prefixes: [...prefixes], updatedAt: msToTimestamp(Date.now()) }),
  );
}

export function podAddressValue(node: SynthNode, block: string, address: string, id: string): string {
  return encodeRecord(
    PodAddressSchema,
    makeRecord(PodAddressSchema, {
      address,
      block,
      node: node.name,
      allocation: { containerId: id, ifName: 'eth0', netns: `/var/run/netns/${id}`, podNamespace: 'scale', podName: id, allocatedAt: msToTimestamp(Date.now()), network: 'trellis' },
    }),
  );
}

/** Writes `ops` in transactions of ≤ 128, several in flight. */
export async function writeOps(client: Etcd3, ops: readonly IRequestOp[]): Promise<number> {
  let next = 0;
  let txns = 0;
  const worker = async (): Promise<void> => {
    while (next < ops.length) {
      const chunk = ops.slice(next, next + TXN_OPS);
      next += TXN_OPS;
      await client.kv.txn({ compare: [], success: chunk, failure: [] });
      txns++;
    }
  };
  await Promise.all(Array.from({ length: TXNS_IN_FLIGHT }, worker));
  return txns;
}

const put = (key: string, value: string, lease?: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease } });

/** Stores the topology; returns it parsed. */
export async function seedScaleTopology(client: Etcd3, keys: Keys, subnets: number): Promise<Topology> {
  const topology = loadTopology(scaleTopologyYaml(subnets), 'scale topology');
  await client.put(keys.topology()).value(encodeRecord(TopologySchema, topologyToRecord(topology, 1n, Date.now())));
  return topology;
}

/** Seeds the synthetic cluster of `shape` (see the module comment). */
export async function seedCluster(client: Etcd3, keys: Keys, topology: Topology, shape: ScaleShape): Promise<SeedResult> {
  const started = performance.now();
  const perSubnet = Math.ceil(shape.nodes / shape.subnets);
  const blocksPerNode = Math.max(1, Math.round(shape.blocks / shape.nodes));
  const podsPerNode = Math.floor(shape.pods / shape.nodes);
  if (podsPerNode > blocksPerNode * 64) throw new Error(`scale: ${podsPerNode} pods per node do not fit ${blocksPerNode} blocks of 64`);
  if (blocksPerNode > 4) throw new Error('scale: a node home (/24) holds 4 blocks');
  const leases: string[] = [];
  for (let i = 0; i < shape.subnets; i++) leases.push((await client.lease(LEASE_TTL_S, { autoKeepAlive: false }).grant()) as string);
  let keysWritten = 0;
  let txns = 0;
  const now = msToTimestamp(Date.now());
  // One batch of operations per few hundred nodes keeps memory flat.
  let ops: IRequestOp[] = [];
  const flush = async (): Promise<void> => {
    keysWritten += ops.length;
    txns += await writeOps(client, ops);
    ops = [];
  };
  for (let n = 0; n < shape.nodes; n++) {
    const subnet = n % shape.subnets;
    const node = synthNode(topology, subnet, Math.floor(n / shape.subnets));
    if (Math.floor(n / shape.subnets) >= perSubnet) continue;
    const lease = leases[subnet];
    const s = allSubnets(topology)[subnet]!;
    ops.push(
      put(keys.node(node.name), encodeRecord(NodeSchema, makeRecord(NodeSchema, { name: node.name, subnet: s.id, zone: s.zone, hostIp: node.hostIP, startedAt: now, agentVersion: 'synthetic' })), lease),
    );
    const blocks = Array.from({ length: blocksPerNode }, (_, b) => blockPrefix(node, b));
    ops.push(put(keys.route(s.id, node.name), advertisement(node, blocks), lease));
    for (const b of blocks) ops.push(put(keys.block(b), encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: b, subnet: s.id, node: node.name, claimedAt: now }))));
    for (let p = 0; p < podsPerNode; p++) {
      const block = blocks[Math.floor(p / 64)]!;
      const address = ip4(node.home + p);
      ops.push(put(keys.podAddress(node.name, block, address), podAddressValue(node, block, address, `${node.name}-${p}`)));
    }
    if (ops.length >= 16 * TXN_OPS * TXNS_IN_FLIGHT) await flush();
  }
  await flush();
  return { keys: keysWritten, ms: performance.now() - started, txns };
}
