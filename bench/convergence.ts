// bench/convergence: how fast trellisd turns an advertisement in etcd into a
// kernel route on every host of the subnet. A lab with one subnet of three
// hosts (three agents) and etcd on its router; for N synthetic peers (1,000,
// then 5,000) it preloads their block records and advertisements, measures how
// long the agents take to install the N routes, then writes M single new
// advertisements one at a time and measures, for each, the time from the put's
// acknowledgement until the route is in the kernel of every agent. Routes are
// observed with `ip monitor route` inside each host (lines timestamped on
// arrival here), never by polling. Prints numbers; asserts nothing.
//
// Run as root:  npm run build && node dist/bench/convergence.js
// Environment:  BENCH_PEERS (default "1000,5000"), BENCH_SAMPLES (M, default
// 200, at least 100), BENCH_INSTALL_TIMEOUT (seconds without a route before
// giving up, default 20).
//
// Synthetic peers are named peer-<k>, own one /26 each in subnet-1's pod
// prefix (outside the agents' homes) and advertise it via 198.18.1.<100..249>:
// on-link for the agents, nobody answers there and nothing is sent to it.
// Between sizes the peers are removed and the agents' routes awaited gone.

import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { buildClusterLab, type ClusterLab, type LabHost } from '../lab/cluster-lab.js';
import { delay, which } from '../lab/pids.js';
import { EtcdWriter, RouteMonitor, waitFor } from './lib/route-monitor.js';
import { percentile, record, round } from './lib/report.js';
import { measure } from './lib/proc-usage.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const SIZES = (process.env.BENCH_PEERS ?? '1000,5000').split(',').map((s) => Number(s.trim()));
const SAMPLES = Math.max(100, Number(process.env.BENCH_SAMPLES ?? 200));
const INSTALL_TIMEOUT_MS = Number(process.env.BENCH_INSTALL_TIMEOUT ?? 20) * 1000;
const AGENTS = 3;
const NETWORK = '100.64.0.0/10';
/** subnet-1 gets 100.64.0.0/13: 8,192 blocks of /26, room for 5,000 peers and the probes. */
const SUBNET_SIZE = 13;
const SUBNET = 'subnet-1';
/** A destination only used to prove that each monitor is listening. */
const MONITOR_PROBE = '100.127.255.255/32';
const RESOURCE_WINDOW_MS = Number(process.env.BENCH_RESOURCE_SECONDS ?? 10) * 1000;
const FAILURE_TRIALS = Math.max(5, Number(process.env.BENCH_FAILURE_TRIALS ?? 5));
const HOLD_TIME = '6s';
const WRITER = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'etcd-writer.js');

interface Peer {
  node: string;
  prefix: string;
  nextHop: string;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const msText = (ms: number): string => `${ms.toFixed(1)} ms`;

function ipv4(text: string): number {
  return text.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

function dotted(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** `count` /26 blocks of the subnet's pod prefix, skipping the homes of the agents' blocks. */
function peerPrefixes(cluster: ClusterLab, agentBlocks: readonly string[], count: number): string[] {
  const subnet = cluster.topology.zones[0]!.subnets[0]!;
  const { blockSize, nodeHomeSize } = cluster.topology;
  const base = Number(subnet.podPrefix.addr);
  const homeSpan = 2 ** (32 - nodeHomeSize);
  const homes = new Set(agentBlocks.map((p) => Math.floor(ipv4(p.split('/')[0]!) / homeSpan)));
  const blockSpan = 2 ** (32 - blockSize);
  const out: string[] = [];
  for (let a = base; out.length < count; a += blockSpan) {
    if (a >= base + 2 ** (32 - subnet.podPrefix.len)) throw new Error(`pod prefix of ${SUBNET} too small for ${count} peers`);
    if (!homes.has(Math.floor(a / homeSpan))) out.push(`${dotted(a)}/${blockSize}`);
  }
  return out;
}

function blockRecord(cluster: ClusterLab, p: Peer, claimedAt: string): [string, string] {
  return [
    cluster.keys.block(p.prefix),
    JSON.stringify({ schemaVersion: 1, prefix: p.prefix, subnet: SUBNET, node: p.node, claimedAt }),
  ];
}

function advertisement(cluster: ClusterLab, p: Peer): [string, string] {
  return [
    cluster.keys.route(SUBNET, p.node),
    JSON.stringify({ schemaVersion: 1, node: p.node, subnet: SUBNET, nextHop: p.nextHop, prefixes: [p.prefix] }),
  ];
}

/** Starts one monitor per host and waits until each has reported a route added by hand. */
async function startMonitors(cluster: ClusterLab): Promise<RouteMonitor[]> {
  const monitors = cluster.hosts.map(
    (h) => new RouteMonitor(h.name, cluster.lab.spawn(h.ns, 'ip', ['-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'inherit'] })),
  );
  const listening = new Set<RouteMonitor>();
  for (const m of monitors) {
    m.on('line', (dst: string, deleted: boolean) => {
      if (dst === MONITOR_PROBE && !deleted) listening.add(m);
    });
  }
  // Add and delete the probe until every monitor saw it added: a monitor may still be subscribing.
  const probe = (h: LabHost, verb: string): Promise<string> => cluster.lab.exec(h.ns, 'ip', ['route', verb, 'blackhole', MONITOR_PROBE]);
  for (let round = 0; listening.size < monitors.length; round++) {
    if (round === 100) throw new Error(`route monitors: ${monitors.length - listening.size} of ${monitors.length} report nothing`);
    await Promise.all(cluster.hosts.map((h) => probe(h, 'add')));
    await Promise.all(cluster.hosts.map((h) => probe(h, 'del')));
    await delay(50);
  }
  return monitors;
}

/** Waits until every agent routes to the blocks of the other agents (the route agent is active). */
async function agentsRoute(cluster: ClusterLab, timeoutMs: number): Promise<boolean> {
  const blocks = await cluster.blocksOf();
  const deadline = Date.now() + timeoutMs;
  const complete = async (h: LabHost): Promise<boolean> => {
    const dsts = new Set((await cluster.kernelRoutes(h, { protocol: 84 })).filter((r) => r.gateway !== undefined).map((r) => r.dst));
    return blocks.filter((b) => b.node !== h.name).every((b) => dsts.has(b.prefix));
  };
  while (Date.now() < deadline) {
    if ((await Promise.all(cluster.hosts.map(complete))).every(Boolean)) return true;
    await delay(200);
  }
  return false;
}

/** Number of `prefixes` in each host's kernel (protocol 84), via `ip -j route`. */
async function kernelCounts(cluster: ClusterLab, prefixes: ReadonlySet<string>): Promise<number[]> {
  return Promise.all(
    cluster.hosts.map(async (h) => (await cluster.kernelRoutes(h, { protocol: 84 })).filter((r) => prefixes.has(r.dst)).length),
  );
}

async function phase(cluster: ClusterLab, monitors: RouteMonitor[], writer: EtcdWriter, n: number, agentBlocks: string[]): Promise<void> {
  const prefixes = peerPrefixes(cluster, agentBlocks, n + SAMPLES);
  const peers: Peer[] = prefixes.map((prefix, k) => ({ node: `peer-${k}`, prefix, nextHop: `198.18.1.${100 + (k % 150)}` }));
  const initial = peers.slice(0, n);
  const probes = peers.slice(n);
  const tag = `N=${n.toLocaleString('en-US')}`;
  for (const m of monitors) m.track(prefixes);

  // Block records first: a block alone makes no route, an advertisement without its block is ignored.
  const claimedAt = new Date().toISOString();
  let t = performance.now();
  await writer.batch(peers.map((p) => blockRecord(cluster, p, claimedAt)));
  const blocksMs = performance.now() - t;

  const t0 = performance.now();
  const written = await writer.batch(initial.map((p) => advertisement(cluster, p)));
  const firstRoute = waitFor(monitors, () => monitors.some((m) => m.present.size > 0), INSTALL_TIMEOUT_MS, `${tag}: first route`);
  try {
    await firstRoute;
  } catch {
    throw new Error(`${tag}: no agent installed any of the ${n} routes within ${sec(INSTALL_TIMEOUT_MS)} of the write`);
  }
  const installed = new Map<RouteMonitor, number>();
  const noteDone = (): boolean => {
    for (const m of monitors) if (!installed.has(m) && m.present.size >= n) installed.set(m, m.lastAdd);
    return installed.size === monitors.length;
  };
  try {
    await waitFor(monitors, noteDone, INSTALL_TIMEOUT_MS + n * 20, `${tag}: all routes`);
  } catch (err) {
    const counts = await kernelCounts(cluster, new Set(initial.map((p) => p.prefix)));
    throw new Error(`${(err as Error).message}; routes in the kernels: ${counts.join(', ')} of ${n}`);
  }
  const counts = await kernelCounts(cluster, new Set(initial.map((p) => p.prefix)));
  const perAgent = monitors.map((m) => installed.get(m)! - t0);
  print(
    `${tag}: preload ${sec(blocksMs)} for ${peers.length} block records, ${sec(written - t0)} for ${n} advertisements; ` +
      `all ${n} routes in every agent ${sec(Math.max(...perAgent))} after the first advertisement write ` +
      `(per agent ${perAgent.map(sec).join(', ')}; ip route counts ${counts.join(', ')})`,
  );

  const latencies: number[] = [];
  for (const p of probes) {
    const [key, value] = advertisement(cluster, p);
    const acked = await writer.put(key, value);
    await waitFor(monitors, () => monitors.every((m) => m.present.has(p.prefix)), 10_000, `${tag}: route to ${p.prefix} in every agent`);
    latencies.push(Math.max(...monitors.map((m) => m.present.get(p.prefix)!)) - acked);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  print(
    `${tag}: new advertisement → route in every agent, M=${sorted.length}: p50 ${msText(percentile(sorted, 0.5))}, ` +
      `p99 ${msText(percentile(sorted, 0.99))} (min ${msText(sorted[0]!)}, max ${msText(sorted[sorted.length - 1]!)})`,
  );

  if (n === Math.max(...SIZES)) await resources(cluster, writer, initial, tag);

  // Remove the peers; the next size starts from the agents alone.
  t = performance.now();
  await writer.deletePrefix(cluster.keys.route(SUBNET, 'peer-'));
  await waitFor(monitors, () => monitors.every((m) => m.present.size === 0), INSTALL_TIMEOUT_MS + n * 20, `${tag}: withdrawal`);
  const withdrawMs = performance.now() - t;
  print(`${tag}: all ${peers.length} advertisements deleted → routes gone from every agent in ${sec(withdrawMs)}`);
  record({
    [`convergence_${n}`]: {
      advertisements: n,
      samples: sorted.length,
      p50_ms: round(percentile(sorted, 0.5)),
      p99_ms: round(percentile(sorted, 0.99)),
      initial_install_s: round(Math.max(...perAgent) / 1000, 2),
      withdraw_all_s: round(withdrawMs / 1000, 2),
    },
  });
  await writer.batch([], peers.map((p) => blockRecord(cluster, p, claimedAt)[0]));
}

/** trellisd's memory and CPU with the peers present: idle, then with advertisements changing. */
async function resources(cluster: ClusterLab, writer: EtcdWriter, peers: readonly Peer[], tag: string): Promise<void> {
  const pid = cluster.hosts[0]!.daemon.pid!;
  const idle = await measure(pid, RESOURCE_WINDOW_MS);
  let changes = 0;
  const churn = await measure(pid, RESOURCE_WINDOW_MS, async (signal) => {
    // Move one peer's next hop every 10 ms (100 changes/s): each agent replaces a route.
    for (let k = 0; !signal.stop; k++) {
      const p = peers[k % peers.length]!;
      const moved = { ...p, nextHop: `198.18.1.${100 + ((k + 1) % 150)}` };
      await writer.put(...advertisement(cluster, moved));
      changes++;
      await delay(10);
    }
  });
  const rate = changes / (RESOURCE_WINDOW_MS / 1000);
  print(
    `${tag}: trellisd idle: RSS ${idle.rssMiB.toFixed(0)} MiB, CPU ${idle.cpuPercent.toFixed(1)}% of a core; ` +
      `under churn (${rate.toFixed(0)} advertisement changes/s): RSS ${churn.rssMiB.toFixed(0)} MiB (peak ${churn.peakRssMiB.toFixed(0)}), CPU ${churn.cpuPercent.toFixed(1)}%`,
  );
  record({
    trellisd_resources: {
      advertisements: peers.length,
      idle_rss_mib: round(idle.rssMiB),
      idle_cpu_percent: round(idle.cpuPercent),
      churn_changes_per_s: round(rate),
      churn_rss_mib: round(churn.rssMiB),
      churn_peak_rss_mib: round(churn.peakRssMiB),
      churn_cpu_percent: round(churn.cpuPercent),
    },
  });
}

/** SIGKILL one agent; time until its block's route is gone from every other agent (hold time + reaction). */
async function nodeFailure(cluster: ClusterLab, monitors: RouteMonitor[]): Promise<void> {
  const times: number[] = [];
  const victim = cluster.hosts[cluster.hosts.length - 1]!;
  const others = monitors.filter((m) => m.name !== victim.name);
  for (let trial = 0; trial < FAILURE_TRIALS; trial++) {
    const blocks = (await cluster.blocksOf(victim)).map((b) => b.prefix);
    const routed = async (): Promise<boolean> =>
      (await Promise.all(cluster.hosts.filter((h) => h !== victim).map((h) => cluster.kernelRoutes(h, { protocol: 84 })))).every((rs) =>
        blocks.every((b) => rs.some((r) => r.dst === b)),
      );
    for (let i = 0; !(await routed()); i++) {
      if (i === 200) throw new Error('node failure: the victim is not routed by its peers');
      await delay(100);
    }
    for (const m of others) m.track(blocks);
    const killedAt = performance.now();
    victim.daemon.kill();
    await waitFor(others, () => others.every((m) => blocks.every((b) => m.removed.has(b))), 30_000, 'victim withdrawn');
    times.push(Math.max(...others.flatMap((m) => blocks.map((b) => m.removed.get(b)!))) - killedAt);
    await victim.daemon.start();
  }
  const p50 = percentile(times, 0.5);
  print(`node failure (SIGKILL) → its routes gone from every peer, ${times.length} trials: p50 ${sec(p50)} (hold time ${HOLD_TIME}; each: ${times.map(sec).join(', ')})`);
  record({ node_failure: { trials: times.length, hold_time: HOLD_TIME, p50_s: round(p50 / 1000, 2), max_s: round(Math.max(...times) / 1000, 2) } });
}

async function run(cluster: ClusterLab): Promise<number> {
  const monitors = await startMonitors(cluster);
  const t = performance.now();
  await cluster.startDaemons();
  const startMs = performance.now() - t;
  const agentBlocks = (await cluster.blocksOf()).map((b) => b.prefix);
  print(
    `bench/convergence: ${AGENTS} agents (trellisd) in one subnet, etcd on the router; ` +
      `lab built in ${sec(cluster.buildMs)}, agents started in ${sec(startMs)}`,
  );
  if (!(await agentsRoute(cluster, INSTALL_TIMEOUT_MS))) {
    process.stderr.write(
      `bench/convergence: the agents installed no routes to each other within ${sec(INSTALL_TIMEOUT_MS)}: ` +
        'trellisd does not program kernel routes (yet?); nothing to measure\n' +
        `last log lines of ${cluster.hosts[0]!.name}:\n${cluster.hosts[0]!.daemon.logs.trimEnd().split('\n').slice(-8).join('\n')}\n`,
    );
    return 2;
  }
  const writer = new EtcdWriter(cluster.lab.spawn(cluster.router, process.execPath, [WRITER, cluster.endpoint], { stdio: ['pipe', 'pipe', 'inherit'] }));
  try {
    for (const n of SIZES) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_PEERS: bad size ${n}`);
      await phase(cluster, monitors, writer, n, agentBlocks);
    }
    await nodeFailure(cluster, monitors);
  } finally {
    writer.close();
  }
  return 0;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'bench/convergence: needs root (it builds network namespaces and runs etcd and trellisd inside them); ' +
        'run as root: npm run build && node dist/bench/convergence.js\n',
    );
    return 1;
  }
  const missing = ['ip', 'etcd', 'etcdctl'].filter((c) => which(c) === undefined);
  if (missing.length > 0) {
    process.stderr.write(`bench/convergence: not installed: ${missing.join(', ')} (Debian iproute2, etcd-server, etcd-client)\n`);
    return 1;
  }
  const etcdVersion = spawnSync('etcd', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';
  const cluster = await buildClusterLab(undefined, {
    subnets: 1,
    hostsPerSubnet: AGENTS,
    network: NETWORK,
    subnetSize: SUBNET_SIZE,
    holdTime: HOLD_TIME,
  });
  try {
    if (etcdVersion !== '') print(`# ${etcdVersion}; latency = route line from ip monitor (any agent, the last one) − put acknowledgement, both timestamped on arrival here`);
    return await run(cluster);
  } finally {
    await cluster.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench/convergence: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
