// Runs chaos faults against one lab cluster (lab/cluster-lab.ts) and measures
// each: continuous pings between pods on every pair of hosts (a ring), every
// host's kernel routes watched with `ip monitor route`, CNI churn through the
// real plugin, and the time from the fault's end until every host routes
// every live peer's blocks again.
//
// Invariants:
//  * Faults run one after another on the same cluster; before each, the
//    cluster is whole again (every advertisement back, every route in place).
//  * A row's verdict is "ok" only if nothing the docs promise was lost; a
//    fault that is not promised (fault.promised false) is reported as
//    "reported", never failed.
//  * Everything is torn down by the cluster lab (PIDs, namespaces) whatever happens.

import type { Teardown } from '../cleanup.js';
import { buildClusterLab, type ClusterLab, type LabHost, type LabPod } from '../cluster-lab.js';
import { cniPath } from '../cni-harness.js';
import { delay } from '../pids.js';
import { waitProgress } from '../progress.js';
import { RouteLog } from '../route-log.js';
import { CniChurn } from './cni-churn.js';
import type { ChaosFault, ChaosWorld } from './fault.js';
import { PingStream } from './ping-stream.js';

export interface ChaosOptions {
  faults: readonly ChaosFault[];
  /** Hosts in the one subnet; default 3. */
  hosts?: number;
  /** Hold time of the daemons; default 6s (the default of trellisd). */
  holdTime?: string;
  /** etcd members (1, 3 or 5); default 1. The etcd member faults need 3 or more. */
  etcdMembers?: number;
  log?: (line: string) => void;
}

export interface ChaosRow {
  fault: string;
  promised: boolean;
  sent: number;
  lost: number;
  routesRemoved: string[];
  routesInstalled: string[];
  addressesLost: string[];
  addressesDuplicated: string[];
  cniFailures: string[];
  cniRetried: number;
  cniUnreachable: number;
  recoverMs: number;
  verdict: 'ok' | 'FAILED' | 'reported';
  notes: string[];
}

/** Peer blocks each host must route: host name → destinations. */
async function expectedRoutes(cluster: ClusterLab): Promise<Map<string, string[]>> {
  const blocks = await cluster.blocksOf();
  const out = new Map<string, string[]>();
  for (const h of cluster.hosts) out.set(h.name, blocks.filter((b) => b.node !== h.name && b.subnet === h.subnet).map((b) => b.prefix).sort());
  return out;
}

/** What is still missing for the cluster to be whole: advertisements and kernel routes. */
async function missing(cluster: ClusterLab): Promise<string[]> {
  const out: string[] = [];
  const adverts = new Set((await cluster.getPrefix(cluster.keys.routesPrefix())).map((kv) => kv.key));
  for (const h of cluster.hosts) if (!adverts.has(cluster.keys.route(h.subnet, h.name))) out.push(`advertisement of ${h.name}`);
  const want = await expectedRoutes(cluster);
  for (const h of cluster.hosts) {
    const have = new Set((await cluster.kernelRoutes(h, { protocol: 84 })).map((r) => r.dst));
    for (const dst of want.get(h.name) ?? []) if (!have.has(dst)) out.push(`${h.name} route to ${dst}`);
  }
  return out;
}

export async function runChaos(t: Teardown | undefined, o: ChaosOptions): Promise<ChaosRow[]> {
  const say = o.log ?? ((): void => undefined);
  const holdTime = o.holdTime ?? '6s';
  const holdMs = Number.parseInt(holdTime, 10) * 1000;
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: o.hosts ?? 3, holdTime, etcdMembers: o.etcdMembers ?? 1, extraDaemonArgs: ['--restart-hold-time', '30s'] });
  try {
    say(`cluster: ${cluster.hosts.length} hosts, hold time ${holdTime}, built in ${cluster.buildMs} ms`);
    await cluster.startDaemons();
    const pods: LabPod[] = [];
    for (const h of cluster.hosts) pods.push(await cluster.addPod(h));
    const path = cniPath(t ?? { teardown: () => undefined });
    const logs = new Map<string, RouteLog>(cluster.hosts.map((h) => [h.name, new RouteLog(cluster.lab, h.ns)]));
    await Promise.all([...logs.values()].map((l) => l.ready()));
    const rows: ChaosRow[] = [];
    for (const fault of o.faults) {
      await waitProgress('the cluster whole before the next fault', () => missing(cluster), { stallMs: 60_000, pollMs: 200 });
      const blocksBefore = await expectedRoutes(cluster);
      const notes: string[] = [];
      const world: ChaosWorld = { cluster, pods, holdMs, note: (m) => notes.push(m) };
      const n = cluster.hosts.length;
      const streams = cluster.hosts.map((h, i) => new PingStream(cluster.lab, pods[i]!.ns, pods[(i + 1) % n]!.address, `${h.name}→${cluster.hosts[(i + 1) % n]!.name}`));
      const churn = new CniChurn(cluster, path);
      await delay(1000);
      say(`fault ${fault.name}: ${fault.summary}`);
      const start = Date.now();
      const effects = await fault.run(world);
      const ended = Date.now();
      const recoverMs = await waitProgress(`recovery from ${fault.name}`, () => missing(cluster), { stallMs: 60_000, pollMs: 100 });
      await delay(1000);
      const churned = await churn.stop();
      const pinged = await Promise.all(streams.map((s) => s.stop()));
      const cutOff = new Set((effects.cutOff ?? []).map((h: LabHost) => h.name));
      let sent = 0;
      let lost = 0;
      cluster.hosts.forEach((h, i) => {
        const to = cluster.hosts[(i + 1) % n]!;
        if (cutOff.has(h.name) || cutOff.has(to.name)) return;
        sent += pinged[i]!.sent;
        lost += pinged[i]!.sent - pinged[i]!.received;
      });
      const routesRemoved: string[] = [];
      const routesInstalled: string[] = [];
      const forbidden = new Set(effects.forbidden ?? []);
      const cutBlocks = new Set((await cluster.blocksOf()).filter((b) => cutOff.has(b.node)).map((b) => b.prefix));
      for (const h of cluster.hosts) {
        const log = logs.get(h.name)!;
        const peers = new Set(blocksBefore.get(h.name) ?? []);
        for (const e of log.deletions(start)) if (peers.has(e.dst) && !cutBlocks.has(e.dst) && !cutOff.has(h.name)) routesRemoved.push(`${h.name}: ${e.dst}`);
        for (const e of log.additions(start)) if (forbidden.has(e.dst)) routesInstalled.push(`${h.name}: ${e.dst}`);
      }
      const broken = lost > 0 || routesRemoved.length > 0 || routesInstalled.length > 0 || churned.lost.length > 0 || churned.duplicated.length > 0 || churned.failed.length > 0;
      const row: ChaosRow = {
        fault: fault.name,
        promised: fault.promised,
        sent,
        lost,
        routesRemoved,
        routesInstalled,
        addressesLost: churned.lost,
        addressesDuplicated: churned.duplicated,
        cniFailures: churned.failed,
        cniRetried: churned.retried,
        cniUnreachable: churned.unreachable,
        recoverMs: Math.max(0, recoverMs),
        verdict: !broken ? 'ok' : fault.promised ? 'FAILED' : 'reported',
        notes: [...notes, `fault lasted ${ended - start} ms`, `CNI churn: ${churned.adds} ADD, ${churned.dels} DEL`],
      };
      rows.push(row);
      say(`  ${row.verdict}: lost ${lost}/${sent} packets, ${routesRemoved.length} routes wrongly removed, ${routesInstalled.length} wrongly installed, recovered in ${(recoverMs / 1000).toFixed(1)} s`);
    }
    for (const l of logs.values()) l.stop();
    return rows;
  } finally {
    await cluster.destroy();
  }
}

/** The rows as a Markdown table. */
export function chaosTable(rows: readonly ChaosRow[]): string {
  const head = '| fault | packets lost | routes wrongly removed | routes wrongly installed | addresses lost / duplicated | CNI calls failed / answered 11 / answered 100 | recovered after | verdict |';
  const sep = '|---|---|---|---|---|---|---|---|';
  const lines = rows.map(
    (r) =>
      `| ${r.fault} | ${r.lost} of ${r.sent} | ${r.routesRemoved.length} | ${r.routesInstalled.length} | ${r.addressesLost.length} / ${r.addressesDuplicated.length} | ${r.cniFailures.length} / ${r.cniRetried} / ${r.cniUnreachable} | ${(r.recoverMs / 1000).toFixed(1)} s | ${r.verdict}${r.promised ? '' : ' (not promised)'} |`,
  );
  return [head, sep, ...lines].join('\n');
}
