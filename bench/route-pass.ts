// bench/route-pass: the CPU cost of one advertisement change in a node's
// route computation, with N peers in its subnet (N = 5,000 by default):
//  * full:        every desired route recomputed (desiredRoutes over every
//                 valid advertisement) and diffed against the whole table,
//                 as every pass did before the route index;
//  * incremental: the route index told the one changed advertisement, and
//                 only the keys it returned diffed, as the route agent's
//                 incremental pass does.
// Both read the same ClusterView (the change goes through validation). No
// kernel: the observed table is the desired one before the change. Prints
// p50/p99 per change; asserts nothing.
//
// Run:          npm run build && node dist/bench/route-pass.js
// Environment:  BENCH_PEERS (N, default 5000), BENCH_SAMPLES (default 300).

import { performance } from 'node:perf_hooks';
import { formatPrefix, parseAddress, split } from '../src/core/cidr.js';
import { desiredRoutes } from '../src/core/desired-routes.js';
import { RouteIndex } from '../src/core/route-index.js';
import { diffRoutes, routeKey, type KernelRoute } from '../src/core/route.js';
import { loadTopology } from '../src/core/topology-parse.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../src/gen/trellis/v1/records_pb.js';
import { ClusterView } from '../src/state/cluster-view.js';
import { Keys } from '../src/state/keys.js';
import { encodeRecord, makeRecord } from '../src/state/records.js';
import { percentile } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const PEERS = Number(process.env.BENCH_PEERS ?? 5000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const print = (line: string): void => void process.stdout.write(`${line}\n`);

const topology = loadTopology('network: 100.64.0.0/10\nblockSize: 26\nsubnetSize: 13\nzones:\n  - name: z\n    subnets:\n      - { id: s1, cidr: 198.18.0.0/19 }\n', 'bench');
const subnet = topology.zones[0]?.subnets[0];
if (subnet === undefined) throw new Error('no subnet');
const keys = new Keys();
const blocks = split(subnet.podPrefix, 26);
const config = { self: 'self', selfIP: parseAddress('198.18.0.5'), subnet: 's1', iface: 'eth0', table: 254, protocol: 84, ownBlocks: 'unreachable' as const };
const hostIP = (k: number): string => `198.18.${Math.floor((k + 10) / 250)}.${((k + 10) % 250) + 1}`;

let rev = 1;
const view = new ClusterView(topology, keys);
// Node records and advertisements share a lease, as trellisd writes them.
const put = (key: string, value: string): void => view.apply(key, { value, modRevision: String(rev++), createRevision: String(rev), lease: '1' });
for (let k = 0; k < PEERS; k++) {
  const name = `peer-${k}`;
  const prefix = formatPrefix(blocks[k + 1] as (typeof blocks)[number]);
  put(keys.node(name), encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, subnet: 's1', hostIp: hostIP(k) })));
  put(keys.block(prefix), encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, subnet: 's1', node: name })));
  put(keys.route('s1', name), encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: name, subnet: 's1', nextHop: hostIP(k), prefixes: [prefix] })));
}
view.nodes();

const full = (): KernelRoute[] =>
  desiredRoutes({ ...config, advertisements: [...view.advertisements().values()].map((a) => ({ ...a, subnet: a.subnet.id })), ownPrefixes: [] });
let observed = full();
const index = new RouteIndex(config);
for (const [node, a] of view.advertisements()) index.setAdvertisement(node, { ...a, subnet: a.subnet.id });
view.takeChangedAdvertisers();
const observedByKey = new Map(observed.map((r) => [routeKey(r), r]));

/** Peer k moves to a new host IP (its advertisement's next hop changes). */
function change(i: number): void {
  const k = (i * 7919) % PEERS;
  const name = `peer-${k}`;
  const prefix = formatPrefix(blocks[k + 1] as (typeof blocks)[number]);
  const hop = hostIP((k + 1 + i) % PEERS);
  put(keys.node(name), encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, subnet: 's1', hostIp: hop })));
  put(keys.route('s1', name), encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: name, subnet: 's1', nextHop: hop, prefixes: [prefix] })));
}

const fullTimes: number[] = [];
const incTimes: number[] = [];
for (let i = 0; i < SAMPLES; i++) {
  change(i);
  let t0 = performance.now();
  const desired = full();
  const d = diffRoutes(desired, observed, { protocol: 84 });
  fullTimes.push(performance.now() - t0);
  observed = desired;
  // The same change, incrementally (validation is counted here too: it was done above for `full`, so redo it).
  change(i + SAMPLES);
  t0 = performance.now();
  const adverts = view.advertisements();
  const changed = new Map<string, KernelRoute | undefined>();
  for (const node of view.takeChangedAdvertisers()) {
    const a = adverts.get(node);
    for (const [key, r] of index.setAdvertisement(node, a === undefined ? undefined : { ...a, subnet: a.subnet.id })) changed.set(key, r);
  }
  const want = [...changed.values()].filter((r): r is KernelRoute => r !== undefined);
  const here = [...changed.keys()].map((key) => observedByKey.get(key)).filter((r): r is KernelRoute => r !== undefined);
  const di = diffRoutes(want, here, { protocol: 84 });
  incTimes.push(performance.now() - t0);
  for (const r of [...di.add, ...di.replace]) observedByKey.set(routeKey(r), r);
  if (d.replace.length + di.replace.length === 0) throw new Error('a change changed no route');
}
const show = (xs: number[]): string => `p50 ${percentile(xs, 0.5).toFixed(3)} ms, p99 ${percentile(xs, 0.99).toFixed(3)} ms`;
print(`${PEERS} advertisements, ${SAMPLES} changes of one next hop each`);
print(`full recompute + diff:        ${show(fullTimes)}`);
print(`route index + diff of change: ${show(incTimes)}`);
