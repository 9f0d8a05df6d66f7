// bench/scale: a real trellisd and the trellis CNI plugin against one real
// etcd holding a large synthetic cluster, side by side with the same daemon
// against an empty cluster, in one run.
//
// Per phase ("empty": topology only; "seeded": see lib/scale-seed.ts, by
// default 5,000 nodes in 10 subnets, 10,000 block claims, 500,000 pod
// addresses), a fresh etcd and a trellisd in its own network namespace
// (host 198.18.1.254 on subnet-0: eth0 one end of a veth whose peer stays in the namespace; routes on) reaching etcd
// through a byte-counting TCP proxy. Measured:
//   exec-to-ready    spawn to "cluster view synced" and "IPAM API listening"
//   IPAM allocate    /v1/allocate round trips on the daemon's socket (p50/p99)
//   CNI ADD          the plugin run in the host namespace for fresh pod namespaces
//   adv → route      one same-subnet peer claims a block, then its Advertisement
//                    gains it: from that write to the route in the daemon's
//                    kernel (ip monitor route)
//   RSS              daemon and its children, idle and peak under churn (and
//                    PSS idle: shared pages counted once)
//   bytes/foreign ADD bytes of the HTTP/2 frames etcd sent the daemon that
//                    carried a PodAddress of another node, per such record
//                    written (and, to compare, all bytes over the window less
//                    an idle window as long)
//   etcd dbSize      endpoint status
// Prints a table, records the figures (bench/results.json through run-all).
//
// Run as root:  npm run build && node dist/bench/scale.js [--full] [--nodes N --pods N --blocks N --subnets N]
// Default (reduced): 500 nodes, 1,000 blocks, 50,000 pods; --full: 5,000 / 10,000 / 500,000.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { installPlugin } from '../lab/cni-harness.js';
import { startEtcd, type EtcdServer } from '../lab/etcd.js';
import { Lab, needRoot, type Netns } from '../lab/netns.js';
import { fromNamespace, type NsForward } from '../lab/ns-forward.js';
import { Daemon } from '../lab/trellis.js';
import { BlockSchema, NodeSchema } from '../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../src/state/keys.js';
import { encodeRecord, makeRecord } from '../src/state/records.js';
import { percentile, record, round, type Figures } from './lib/report.js';
import { RouteMonitor } from './lib/route-monitor.js';
import { H2Scan } from './lib/h2-scan.js';
import { tapRelay } from './lib/tap-relay.js';
import { advertisement, blockPrefix, podAddressValue, seedCluster, seedScaleTopology, synthNode, type ScaleShape } from './lib/scale-seed.js';
import { timedApiCall } from './lib/ipam-api.js';
import { settle, usage } from './lib/proc-usage.js';
import { descendants } from '../lab/pids.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const HOST_IP = '198.18.1.254';
const ETCD_PORT_IN_NS = 2379;
/** Samples per figure: fewer in the reduced mode, which must stay under a minute. */
const FULL_ROUNDS = { ipam: 200, cni: 40, adv: 40, foreign: 200, churnMs: 5000 };
const REDUCED_ROUNDS = { ipam: 100, cni: 20, adv: 20, foreign: 100, churnMs: 3000 };
let ROUNDS = REDUCED_ROUNDS;

function options(): ScaleShape & { full: boolean } {
  const { values: v } = parseArgs({ options: { full: { type: 'boolean' }, nodes: { type: 'string' }, pods: { type: 'string' }, blocks: { type: 'string' }, subnets: { type: 'string' } } });
  const full = v.full === true || process.env.BENCH_SCALE_FULL === '1';
  const nodes = Number(v.nodes ?? (full ? 5000 : 500));
  return { full, subnets: Number(v.subnets ?? 10), nodes, pods: Number(v.pods ?? nodes * 100), blocks: Number(v.blocks ?? nodes * 2) };
}

/**
 * A loopback TCP proxy to etcd counting the bytes etcd sends back and, once
 * `scanFor(needle)` is called, the bytes of HTTP/2 frames carrying `needle`.
 */
async function countingProxy(port: number): Promise<{ port: number; received: () => number; scanFor: (needle: string) => void; matched: () => { bytes: number; frames: number }; close: () => Promise<void> }> {
  let received = 0;
  let needle: string | undefined;
  const scans: H2Scan[] = [];
  const relay = await tapRelay(port, () => {
    // Every connection is scanned from its first byte, so frames stay aligned.
    const scan = new H2Scan(() => needle);
    scans.push(scan);
    return (d) => {
      received += d.length;
      scan.push(d);
    };
  });
  return {
    port: relay.port,
    received: () => received,
    scanFor: (n) => void (needle = n),
    matched: () => scans.reduce((a, s) => ({ bytes: a.bytes + s.matchedBytes, frames: a.frames + s.matchedFrames }), { bytes: 0, frames: 0 }),
    close: () => relay.close(),
  };
}

/** Resident MiB of `pid` and all its descendants. */
function treeRssMiB(pid: number): number {
  let mib = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      mib += usage(p).rssMiB;
    } catch {
      // gone meanwhile
    }
  }
  return mib;
}

/**
 * Proportional set size of `pid` and its descendants, MiB: pages shared by
 * several of them (the node binary's text, mapped by the daemon and its route
 * listener child) counted once, split among them, rather than once each.
 */
function treePssMiB(pid: number): number {
  let kib = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      kib += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return kib / 1024;
}

function runPlugin(plugin: string, hostNs: string, env: Record<string, string>, conf: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('nsenter', [`--net=/var/run/netns/${hostNs}`, plugin], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`CNI ${env.CNI_COMMAND} failed (${code}): ${out}`))));
    child.stdin.end(JSON.stringify(conf));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function dbSizeMiB(etcd: EtcdServer): Promise<number> {
  const out = JSON.parse(await etcd.etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { dbSize: number } }>;
  return (out[0]?.Status.dbSize ?? NaN) / 2 ** 20;
}

type PhaseFigures = Record<string, number>;

async function phase(name: 'empty' | 'seeded', shape: ScaleShape, lab: Lab, plugin: string): Promise<PhaseFigures> {
  const f: PhaseFigures = {};
  const etcd = await startEtcd(undefined, { extraArgs: ['--quota-backend-bytes', String(8 * 2 ** 30)] });
  const client = new Etcd3({ hosts: etcd.endpoint });
  const keys = new Keys();
  const proxy = await countingProxy(Number(new URL(etcd.endpoint).port));
  const host: Netns = await lab.ns(`scale-${name}`);
  let d: Daemon | undefined;
  let monitor: RouteMonitor | undefined;
  let forward: NsForward | undefined;
  try {
    const topology = await seedScaleTopology(client, keys, shape.subnets);
    if (name === 'seeded') {
      const s = await seedCluster(client, keys, topology, shape);
      f.seed_keys = s.keys;
      f.seed_s = round(s.ms / 1000, 1);
      console.log(`seeded ${s.keys} keys in ${s.txns} transactions in ${(s.ms / 1000).toFixed(1)} s`);
      f.etcd_settle_s = round((await settle(etcd.pid)) / 1000, 1);
      console.log(`etcd quiet again after ${f.etcd_settle_s} s (below 5% of a core for 2 s)`);
    }
    await lab.exec(host, 'sh', ['-ec', `ip link add eth0 type veth peer name wire0 && ip addr add ${HOST_IP}/23 dev eth0 && ip link set wire0 up && ip link set eth0 up`]);
    forward = await fromNamespace(undefined, host.name, '127.0.0.1', ETCD_PORT_IN_NS, proxy.port);
    monitor = new RouteMonitor(name, lab.spawn(host, 'ip', ['-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    d = new Daemon({ etcd: `http://127.0.0.1:${ETCD_PORT_IN_NS}`, nodeName: `bench-${name}`, hostIP: HOST_IP, netns: host.name, holdTime: '10s' });
    const spawned = performance.now();
    await d.start('cluster view synced', 120_000);
    await d.waitForLog('IPAM API listening', 60_000);
    f.exec_to_ready_ms = round(performance.now() - spawned);
    const pid = d.pid as number;
    await sleep(2000);
    f.rss_idle_mib = round(treeRssMiB(pid));
    f.pss_idle_mib = round(treePssMiB(pid));
    f.processes = 1 + descendants(pid).length;
    const socket = join(d.stateDir, 'trellisd.sock');

    const ipam: number[] = [];
    for (let i = 0; i < ROUNDS.ipam; i++) {
      ipam.push(await timedApiCall(socket, '/v1/allocate', { containerId: `ipam-${i}`, ifName: 'eth0', network: 'trellis' }));
      await timedApiCall(socket, '/v1/release', { containerId: `ipam-${i}`, ifName: 'eth0' });
    }
    f.ipam_allocate_p50_ms = round(percentile(ipam, 0.5), 2);
    f.ipam_allocate_p99_ms = round(percentile(ipam, 0.99), 2);

    const conf = { cniVersion: '1.0.0', name: 'trellis', type: 'trellis', socket };
    const cni: number[] = [];
    let peak = f.rss_idle_mib;
    for (let i = 0; i < ROUNDS.cni; i++) {
      const pod = await lab.ns(`sp${i}`);
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `cni-${i}`, CNI_NETNS: `/var/run/netns/${pod.name}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: `K8S_POD_NAMESPACE=scale;K8S_POD_NAME=cni-${i}` };
      cni.push(await runPlugin(plugin, host.name, env, conf));
      peak = Math.max(peak, treeRssMiB(pid));
    }
    f.cni_add_p50_ms = round(percentile(cni, 0.5), 1);
    f.cni_add_p99_ms = round(percentile(cni, 0.99), 1);

    // Advertisement → route: same-subnet synthetic peers (seeded ones, or made here when empty) gain a third block.
    const adv: number[] = [];
    // Peers accept an advertisement only under its node record's lease: peers made here share one.
    const ownLease = String(await client.lease(600, { autoKeepAlive: false }).grant());
    for (let i = 0; i < ROUNDS.adv; i++) {
      const peer = synthNode(topology, 0, 400 + i); // homes 400.. of subnet-0: seeded in the full shape, fresh otherwise
      const blocks = [blockPrefix(peer, 0), blockPrefix(peer, 1)];
      const subnet = 'subnet-0';
      const want = blockPrefix(peer, 2);
      // A prefix counts only while a block claim says the peer owns it: the claim first, as trellisd does.
      const claims = name === 'empty' || 400 + i >= Math.ceil(shape.nodes / shape.subnets) ? [...blocks, want] : [want];
      const seeded = (await client.get(keys.node(peer.name)).exec()).kvs[0];
      const lease = seeded !== undefined && String(seeded.lease) !== '0' ? String(seeded.lease) : ownLease;
      if (claims.length > 1) {
        await client.put(keys.node(peer.name)).value(encodeRecord(NodeSchema, makeRecord(NodeSchema, { name: peer.name, subnet, zone: 'zone-0', hostIp: peer.hostIP, agentVersion: 'synthetic' }))).lease(lease);
        await client.put(keys.route(subnet, peer.name)).value(advertisement(peer, blocks)).lease(lease);
      }
      for (const b of claims) await client.put(keys.block(b)).value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: b, subnet, node: peer.name })));
      await sleep(50);
      monitor.track([want]);
      const written = performance.now();
      await client.put(keys.route(subnet, peer.name)).value(advertisement(peer, [...blocks, want])).lease(lease);
      const end = Date.now() + 10_000;
      while (!monitor.present.has(want) && Date.now() < end) await sleep(1);
      const at = monitor.present.get(want);
      if (at === undefined) throw new Error(`${name}: no kernel route to ${want} within 10 s of its advertisement`);
      adv.push(at - written);
      peak = Math.max(peak, treeRssMiB(pid));
    }
    f.adv_to_route_p50_ms = round(percentile(adv, 0.5), 1);
    f.adv_to_route_p99_ms = round(percentile(adv, 0.99), 1);

    // Bytes per foreign pod ADD: PodAddress records written for another node, against an idle window as long.
    const foreign = synthNode(topology, 1, 0);
    const fblock = blockPrefix(foreign, 3);
    await sleep(1000);
    const idle0 = proxy.received();
    const idleStart = performance.now();
    await sleep(3000);
    const idleBytes = proxy.received() - idle0;
    const idleMs = performance.now() - idleStart;
    proxy.scanFor(keys.ipamPrefix(foreign.name));
    const busy0 = proxy.received();
    const busyStart = performance.now();
    for (let i = 0; i < ROUNDS.foreign; i++) {
      const address = `${fblock.split('.').slice(0, 3).join('.')}.${192 + (i % 64)}`;
      await client.put(keys.podAddress(foreign.name, fblock, address)).value(podAddressValue(foreign, fblock, address, `foreign-${i}`));
    }
    await sleep(1000);
    const busyBytes = proxy.received() - busy0;
    const busyMs = performance.now() - busyStart;
    // Exact: bytes of the HTTP/2 frames from etcd that carried one of the foreign node's records.
    const carried = proxy.matched();
    f.bytes_per_foreign_add = round(carried.bytes / ROUNDS.foreign, 2);
    f.frames_with_foreign_records = carried.frames;
    // For comparison, all bytes over the window less an idle window as long (keep-alives make it ±1).
    f.bytes_per_foreign_add_window = round((busyBytes - (idleBytes * busyMs) / idleMs) / ROUNDS.foreign, 2);
    f.bytes_idle_per_s = Math.round((idleBytes * 1000) / idleMs);

    // Churn: allocate/release in a loop (5 s, 3 s reduced) while sampling the daemon's tree.
    const churnEnd = Date.now() + ROUNDS.churnMs;
    let c = 0;
    while (Date.now() < churnEnd) {
      await timedApiCall(socket, '/v1/allocate', { containerId: `churn-${c}`, ifName: 'eth0', network: 'trellis' });
      await timedApiCall(socket, '/v1/release', { containerId: `churn-${c++}`, ifName: 'eth0' });
      if (c % 20 === 0) peak = Math.max(peak, treeRssMiB(pid));
    }
    f.rss_churn_peak_mib = round(Math.max(peak, treeRssMiB(pid)));
    f.etcd_db_mib = round(await dbSizeMiB(etcd), 1);
    return f;
  } finally {
    monitor?.child.kill();
    await d?.destroy();
    await forward?.close();
    client.close();
    await proxy.close();
    await etcd.destroy();
  }
}

const TARGETS: Array<[string, string, (e: PhaseFigures, s: PhaseFigures) => boolean]> = [
  ['cni_add_p50_ms', 'seeded ≤ 1.2 × empty', (e, s) => s.cni_add_p50_ms! <= 1.2 * e.cni_add_p50_ms!],
  ['ipam_allocate_p50_ms', '≤ 10 ms', (_e, s) => s.ipam_allocate_p50_ms! <= 10],
  ['adv_to_route_p99_ms', '≤ 20 ms', (_e, s) => s.adv_to_route_p99_ms! <= 20],
  ['rss_idle_mib', '≤ 100 MiB', (_e, s) => s.rss_idle_mib! <= 100],
  ['rss_churn_peak_mib', '≤ 100 MiB', (_e, s) => s.rss_churn_peak_mib! <= 100],
  ['exec_to_ready_ms', '≤ 1000 ms', (_e, s) => s.exec_to_ready_ms! <= 1000],
  ['bytes_per_foreign_add', '0', (_e, s) => s.bytes_per_foreign_add === 0],
];

async function main(): Promise<void> {
  const reason = needRoot();
  if (reason !== false) {
    console.error(`bench/scale ${reason}`);
    process.exit(1);
  }
  const shape = options();
  ROUNDS = shape.full ? FULL_ROUNDS : REDUCED_ROUNDS;
  console.log(`bench/scale (${shape.full ? 'full' : 'reduced'}): ${shape.nodes} nodes in ${shape.subnets} subnets, ${shape.blocks} block claims, ${shape.pods} pod addresses`);
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-scale-'));
  try {
    const plugin = installPlugin(dir);
    const empty = await phase('empty', shape, lab, plugin);
    const seeded = await phase('seeded', shape, lab, plugin);
    const names = [...new Set([...Object.keys(empty), ...Object.keys(seeded)])];
    const w = Math.max(...names.map((n) => n.length));
    console.log(`\n${'figure'.padEnd(w)}  ${'empty'.padStart(10)}  ${'seeded'.padStart(10)}  target`);
    for (const n of names) {
      const t = TARGETS.find(([k]) => k === n);
      const verdict = t === undefined ? '' : `${t[1]}: ${t[2](empty, seeded) ? 'met' : 'MISSED'}`;
      console.log(`${n.padEnd(w)}  ${String(empty[n] ?? '').padStart(10)}  ${String(seeded[n] ?? '').padStart(10)}  ${verdict}`);
    }
    const figures: Figures = { mode: shape.full ? 'full' : 'reduced', nodes: shape.nodes, subnets: shape.subnets, blocks: shape.blocks, pods: shape.pods, empty, seeded };
    figures.cni_add_p50_seeded_over_empty = round(seeded.cni_add_p50_ms! / empty.cni_add_p50_ms!, 2);
    record(figures);
  } finally {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
