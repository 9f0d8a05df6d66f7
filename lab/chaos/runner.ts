// Runs chaos faults against one lab cluster (lab/cluster-lab.ts) and measures
// each: continuous pings between pods on every pair of hosts (a ring), every
// host's kernel routes watched with `ip monitor route`, CNI churn through the
// real plugin, and the time from the fault's end until every host routes
// every live peer's blocks again.
// In VPC mode (`vpc`) the daemons also keep moto's route tables through the
// lab's EC2 proxy (lab/vpc-lab.ts), one spare host is built but not started
// (a node that joins during a fault: ChaosWorld.joinSpare), the tables are
// sampled during each fault (entries wrongly removed: vpc-watch.ts) and
// recovery also waits for the tables to match the advertiser's plan.
// With `auth`, etcd authentication is on (lab/cluster-auth.ts): every trellisd
// runs as its own node user, as docs/trust.md tells an operator to run it.
//
// Invariants:
//  * Faults run one after another on the same cluster; before each, the
//    cluster is whole again (every advertisement back, every route in place).
//  * A row's verdict is "ok" only if nothing the docs promise was lost; a
//    fault that is not promised (fault.promised false) is reported as
//    "reported", never failed.
//  * Everything is torn down by the cluster lab (PIDs, namespaces) whatever happens.

import type { Teardown } from '../cleanup.js';
import { enableClusterAuth } from '../cluster-auth.js';
import { buildClusterLab, type ClusterLab, type LabHost, type LabPod } from '../cluster-lab.js';
import { cniPath } from '../cni-harness.js';
import { Daemon } from '../trellis.js';
import { AWS_ENV, buildVpcLab, type VpcLab } from '../vpc-lab.js';
import { blocksOfHosts, liveInstances, VpcCoverageWatch, vpcMissing } from './vpc-watch.js';
import { delay } from '../pids.js';
import { waitProgress } from '../progress.js';
import { RouteLog } from '../route-log.js';
import { CniChurn } from './cni-churn.js';
import type { ChaosFault, ChaosVpc, ChaosWorld } from './fault.js';
import { PingStream } from './ping-stream.js';

export interface ChaosOptions {
  faults: readonly ChaosFault[];
  /** Hosts in the one subnet; default 3. */
  hosts?: number;
  /** Hold time of the daemons; default 6s (the default of trellisd). */
  holdTime?: string;
  /** etcd members (1, 3 or 5); default 1. The etcd member faults need 3 or more. */
  etcdMembers?: number;
  /** VPC mode (see the file comment); default false. */
  vpc?: boolean;
  /** etcd authentication on, each trellisd as its own node user (see the file comment); default false. */
  auth?: boolean;
  log?: (line: string) => void;
}

export interface ChaosRow {
  fault: string;
  promised: boolean;
  sent: number;
  lost: number;
  routesRemoved: string[];
  routesInstalled: string[];
  /** In VPC mode: "table block (node)" some sample left unrouted; undefined otherwise. */
  vpcEntriesLost: string[] | undefined;
  addressesLost: string[];
  addressesDuplicated: string[];
  cniFailures: string[];
  cniRetried: number;
  cniUnreachable: number;
  recoverMs: number;
  verdict: 'ok' | 'FAILED' | 'reported';
  notes: string[];
}

/** Peer blocks each live host must route: host name → destinations. */
async function expectedRoutes(cluster: ClusterLab, hosts: readonly LabHost[]): Promise<Map<string, string[]>> {
  const blocks = await cluster.blocksOf();
  const names = new Set(hosts.map((h) => h.name));
  const out = new Map<string, string[]>();
  for (const h of hosts) out.set(h.name, blocks.filter((b) => b.node !== h.name && names.has(b.node) && b.subnet === h.subnet).map((b) => b.prefix).sort());
  return out;
}

/** What is still missing for the cluster (its live hosts) to be whole: advertisements, kernel routes, in VPC mode the tables. */
async function missing(cluster: ClusterLab, hosts: readonly LabHost[], vpc: ChaosVpc | undefined): Promise<string[]> {
  const out: string[] = [];
  const adverts = new Set((await cluster.getPrefix(cluster.keys.routesPrefix())).map((kv) => kv.key));
  for (const h of hosts) if (!adverts.has(cluster.keys.route(h.subnet, h.name))) out.push(`advertisement of ${h.name}`);
  const want = await expectedRoutes(cluster, hosts);
  for (const h of hosts) {
    const have = new Set((await cluster.kernelRoutes(h, { protocol: 84 })).map((r) => r.dst));
    for (const dst of want.get(h.name) ?? []) if (!have.has(dst)) out.push(`${h.name} route to ${dst}`);
  }
  if (vpc !== undefined && out.length === 0) out.push(...(await vpcMissing(vpc.lab, vpc.subnet, hosts)));
  return out;
}

/** Builds the cluster: plain, or in VPC mode with one spare host more. */
async function build(t: Teardown | undefined, o: ChaosOptions, holdTime: string): Promise<{ cluster: ClusterLab; vpc: ChaosVpc | undefined; spare: LabHost | undefined }> {
  const hosts = o.hosts ?? 3;
  const extraDaemonArgs = ['--restart-hold-time', '30s'];
  if (o.vpc !== true) {
    const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: hosts, holdTime, etcdMembers: o.etcdMembers ?? 1, extraDaemonArgs });
    return { cluster, vpc: undefined, spare: undefined };
  }
  const lab: VpcLab = await buildVpcLab(t, {
    subnets: 1,
    hostsPerSubnet: hosts + 1,
    etcdMembers: o.etcdMembers ?? 1,
    cluster: { holdTime, extraDaemonArgs, makeDaemon: (d) => new Daemon({ ...d, env: AWS_ENV }) },
  });
  // The hosts' own daemons (the faults restart them), in VPC mode; tables verified every 5 s.
  for (const h of lab.hosts) h.daemon.options.args?.push(...lab.vpcArgs(h), '--vpc-verify-interval', '5s');
  const vpc: ChaosVpc = { lab, subnet: lab.hosts[0]!.subnet, ec2Port: Number(new URL(lab.ec2Endpoint).port) };
  return { cluster: lab.lab, vpc, spare: lab.hosts.at(-1) };
}

export async function runChaos(t: Teardown | undefined, o: ChaosOptions): Promise<ChaosRow[]> {
  const say = o.log ?? ((): void => undefined);
  const holdTime = o.holdTime ?? '6s';
  const holdMs = Number.parseInt(holdTime, 10) * 1000;
  const { cluster, vpc, spare } = await build(t, o, holdTime);
  try {
    const initial = cluster.hosts.filter((h) => h !== spare);
    const joined = new Set(initial.map((h) => h.name));
    const live = (): LabHost[] => cluster.hosts.filter((h) => joined.has(h.name));
    if (o.auth === true) await enableClusterAuth(cluster);
    say(`cluster: ${initial.length} hosts${vpc === undefined ? '' : ' in VPC mode (and a spare to join)'}, hold time ${holdTime}${o.auth === true ? ', etcd authentication on (per-node users)' : ''}, built in ${cluster.buildMs} ms`);
    await cluster.startDaemons(initial);
    const pods: LabPod[] = [];
    for (const h of initial) pods.push(await cluster.addPod(h));
    const joinSpare = async (): Promise<LabHost | undefined> => {
      if (spare === undefined || joined.has(spare.name)) return undefined;
      joined.add(spare.name);
      await spare.daemon.start('cluster view synced', 60_000);
      return spare;
    };
    const path = cniPath(t ?? { teardown: () => undefined });
    const logs = new Map<string, RouteLog>(cluster.hosts.map((h) => [h.name, new RouteLog(cluster.lab, h.ns)]));
    await Promise.all([...logs.values()].map((l) => l.ready()));
    const rows: ChaosRow[] = [];
    for (const fault of o.faults) {
      if (fault.needsVpc === true && vpc === undefined) {
        say(`fault ${fault.name}: skipped, the cluster is not in VPC mode`);
        continue;
      }
      await waitProgress('the cluster whole before the next fault', () => missing(cluster, live(), vpc), { stallMs: 60_000, pollMs: 200 });
      const blocksBefore = await expectedRoutes(cluster, live());
      const notes: string[] = [];
      const world: ChaosWorld = { cluster, pods, holdMs, note: (m) => notes.push(m), ...(vpc === undefined ? {} : { vpc }), joinSpare };
      const n = initial.length;
      const streams = initial.map((h, i) => new PingStream(cluster.lab, pods[i]!.ns, pods[(i + 1) % n]!.address, `${h.name}→${initial[(i + 1) % n]!.name}`));
      const watch = vpc === undefined ? undefined : new VpcCoverageWatch(vpc.lab, await blocksOfHosts(cluster, live()), liveInstances(vpc.lab, live()));
      const churn = new CniChurn(cluster, path);
      await delay(1000);
      say(`fault ${fault.name}: ${fault.summary}`);
      const start = Date.now();
      const effects = await fault.run(world);
      const ended = Date.now();
      const recoverMs = await waitProgress(`recovery from ${fault.name}`, () => missing(cluster, live(), vpc), { stallMs: 60_000, pollMs: 100 });
      await delay(1000);
      const unrouted = await watch?.stop();
      const churned = await churn.stop();
      const pinged = await Promise.all(streams.map((s) => s.stop()));
      const cutOff = new Set((effects.cutOff ?? []).map((h: LabHost) => h.name));
      let sent = 0;
      let lost = 0;
      initial.forEach((h, i) => {
        const to = initial[(i + 1) % n]!;
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
      const vpcEntriesLost = unrouted?.filter((e) => ![...cutOff].some((name) => e.endsWith(`(${name})`)));
      const violations = effects.violations ?? [];
      const broken = lost > 0 || routesRemoved.length > 0 || routesInstalled.length > 0 || (vpcEntriesLost?.length ?? 0) > 0 || violations.length > 0 || churned.lost.length > 0 || churned.duplicated.length > 0 || churned.failed.length > 0;
      const row: ChaosRow = {
        fault: fault.name,
        promised: fault.promised,
        sent,
        lost,
        routesRemoved,
        routesInstalled,
        vpcEntriesLost,
        addressesLost: churned.lost,
        addressesDuplicated: churned.duplicated,
        cniFailures: churned.failed,
        cniRetried: churned.retried,
        cniUnreachable: churned.unreachable,
        recoverMs: Math.max(0, recoverMs),
        verdict: !broken ? 'ok' : fault.promised ? 'FAILED' : 'reported',
        notes: [...violations.map((v) => `VIOLATED: ${v}`), ...notes, `fault lasted ${ended - start} ms`, `CNI churn: ${churned.adds} ADD, ${churned.dels} DEL`],
      };
      rows.push(row);
      say(`  ${row.verdict}: lost ${lost}/${sent} packets, ${routesRemoved.length} routes wrongly removed, ${routesInstalled.length} wrongly installed${vpcEntriesLost === undefined ? '' : `, ${vpcEntriesLost.length} VPC entries wrongly removed`}, recovered in ${(recoverMs / 1000).toFixed(1)} s`);
    }
    for (const l of logs.values()) l.stop();
    return rows;
  } finally {
    await (vpc?.lab ?? cluster).destroy();
  }
}

/** The rows as a Markdown table. */
export function chaosTable(rows: readonly ChaosRow[]): string {
  const head = '| fault | packets lost | routes wrongly removed | routes wrongly installed | VPC entries wrongly removed | addresses lost / duplicated | CNI calls failed / answered 11 / answered 100 | recovered after | verdict |';
  const sep = '|---|---|---|---|---|---|---|---|---|';
  const lines = rows.map(
    (r) =>
      `| ${r.fault} | ${r.lost} of ${r.sent} | ${r.routesRemoved.length} | ${r.routesInstalled.length} | ${r.vpcEntriesLost === undefined ? '–' : r.vpcEntriesLost.length} | ${r.addressesLost.length} / ${r.addressesDuplicated.length} | ${r.cniFailures.length} / ${r.cniRetried} / ${r.cniUnreachable} | ${(r.recoverMs / 1000).toFixed(1)} s | ${r.verdict}${r.promised ? '' : ' (not promised)'} |`,
  );
  return [head, sep, ...lines].join('\n');
}
