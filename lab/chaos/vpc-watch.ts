// The VPC side of the chaos run, when its cluster runs in VPC mode (moto in
// the router namespace, every trellisd's EC2 endpoint the lab's proxy:
// lab/vpc-lab.ts). Tables are read straight from moto, never through the
// proxy (never throttled, never counted).
//  * vpcMissing: what keeps the VPC side from being whole: a live host's
//    block that some table does not route to a live host (longest-prefix
//    match), a subnet status with an error, a live host not a healthy
//    forwarder in it, or tables that differ from the plan it records.
//  * VpcCoverageWatch: samples the tables every 250 ms during a fault and
//    keeps every (table, block) of a live host that some sample left
//    unrouted: entries wrongly removed.
//  * electedAdvertiser: the subnet's candidate leading now (lowest create
//    revision of the candidacy keys), read from etcd.
// Invariants: reads only (moto and etcd); never throws from the sampling loop.

import { contains, parsePrefix } from '../../src/core/cidr.js';
import type { ClusterLab, LabHost } from '../cluster-lab.js';
import { delay } from '../pids.js';
import type { TableRoute, VpcLab } from '../vpc-lab.js';

interface StatusEntry {
  table?: string;
  destination?: string;
  target?: string;
}

interface StatusJson {
  leader?: string;
  lastError?: string;
  plan?: StatusEntry[];
  forwarders?: Array<{ node?: string; healthy?: boolean }>;
}

/** Blocks of `hosts` as prefix → node name. */
export async function blocksOfHosts(cluster: ClusterLab, hosts: readonly LabHost[]): Promise<Map<string, string>> {
  const names = new Set(hosts.map((h) => h.name));
  return new Map((await cluster.blocksOf()).filter((b) => names.has(b.node)).map((b) => [b.prefix, b.node]));
}

/** Blocks (of `blocks`) that `routes` (one table's instance entries) do not route to an instance of `live`. */
function unrouted(routes: readonly TableRoute[], blocks: Iterable<string>, live: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const block of blocks) {
    const b = parsePrefix(block);
    let best: { len: number; target: string } | undefined;
    for (const r of routes) {
      const p = parsePrefix(r.destination);
      if (contains(p, b) && (best === undefined || p.len > best.len)) best = { len: p.len, target: r.target };
    }
    if (best === undefined || !live.has(best.target)) out.push(block);
  }
  return out;
}

const instancesOf = (v: VpcLab, hosts: readonly LabHost[]): Set<string> => new Set(hosts.map((h) => v.instances.get(h.name) ?? ''));

/** What is still missing for the VPC side to be whole with `active` the live hosts of `subnet`. */
export async function vpcMissing(v: VpcLab, subnet: string, active: readonly LabHost[]): Promise<string[]> {
  const out: string[] = [];
  const blocks = await blocksOfHosts(v.lab, active);
  const tables = await v.entries();
  const live = instancesOf(v, active);
  for (const [table, routes] of tables) for (const b of unrouted(routes, blocks.keys(), live)) out.push(`VPC ${table}: ${b} (${blocks.get(b)}) not routed to a live host`);
  const status = (await v.statusOf(subnet)) as StatusJson | undefined;
  if (status === undefined) return [...out, `VPC status of ${subnet} missing`];
  if ((status.lastError ?? '') !== '') out.push(`VPC status of ${subnet}: error ${status.lastError}`);
  for (const h of active) if (!(status.forwarders ?? []).some((f) => f.node === h.name && f.healthy === true)) out.push(`VPC forwarder ${h.name} not healthy in the status`);
  const plan = new Set((status.plan ?? []).map((e) => `${e.table} ${e.destination} ${e.target}`));
  const have = new Set([...tables].flatMap(([table, routes]) => routes.map((r) => `${table} ${r.destination} ${r.target}`)));
  for (const e of plan) if (!have.has(e)) out.push(`VPC entry ${e} planned, not in the table`);
  for (const e of have) if (!plan.has(e)) out.push(`VPC entry ${e} in the table, not planned`);
  return out;
}

/** Samples the tables until stop(); answers every "table block (node)" some sample did not route to a live host. */
export class VpcCoverageWatch {
  private running = true;
  private readonly seen = new Set<string>();
  private readonly loop: Promise<void>;
  /** Samples taken (for the notes). */
  samples = 0;

  constructor(
    private readonly v: VpcLab,
    /** Blocks of the hosts that must stay routed: prefix → node. */
    private readonly blocks: ReadonlyMap<string, string>,
    /** Instances that count as live targets. */
    private readonly live: ReadonlySet<string>,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        for (const [table, routes] of await this.v.entries()) for (const b of unrouted(routes, this.blocks.keys(), this.live)) this.seen.add(`${table} ${b} (${this.blocks.get(b)})`);
        this.samples++;
      } catch {
        // moto busy: the next sample
      }
      await delay(250);
    }
  }

  async stop(): Promise<string[]> {
    this.running = false;
    await this.loop;
    return [...this.seen].sort();
  }
}

/** The live instances of `hosts` (for VpcCoverageWatch). */
export const liveInstances = instancesOf;

/** Node name of the subnet's leading candidate (lowest create revision), or undefined when none. */
export async function electedAdvertiser(cluster: ClusterLab, subnet: string): Promise<string | undefined> {
  const out = await cluster.etcdctl(['get', '--prefix', cluster.keys.advertisersPrefix(subnet), '-w', 'json']);
  const kvs = (JSON.parse(out) as { kvs?: Array<{ value: string; create_revision: number }> }).kvs ?? [];
  kvs.sort((a, b) => a.create_revision - b.create_revision);
  return kvs[0] === undefined ? undefined : Buffer.from(kvs[0].value, 'base64').toString('utf8');
}

/** Node names of the subnet's candidates now. */
export async function advertiserCandidates(cluster: ClusterLab, subnet: string): Promise<string[]> {
  return (await cluster.getPrefix(cluster.keys.advertisersPrefix(subnet))).map((kv) => kv.value).sort();
}
