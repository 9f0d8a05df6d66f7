// The throttled-EC2 world of the pacing tests and bench/vpc-throttle: moto
// behind the lab's EC2 proxy, which enforces EC2's bucket of the mutating
// route actions (burst 50, 5 per second; a call finding it empty is answered
// RequestLimitExceeded in EC2's XML error shape), one VPC subnet with N
// instances and a few route tables; and the two scenarios of docs/vpc.md
// "AWS quotas":
//  * joins: `existing` nodes have their entries, `joining` nodes join at
//    once: every table needs one new entry per new node;
//  * failover: a forwarder carries `carried` entries (other nodes' blocks,
//    spread over the tables and over the address order), `rebalance` more
//    entries wait to move back to their owners, and the forwarder fails.
// `runPass` applies a scenario's delta through the EC2 adapter (client-side
// buckets as given) in the naive per-table order (vpc-apply-order.ts) or
// reachability first (vpc-reach-order.ts), timing every write, and says
// when each pod block became reachable for good: in every table, its
// longest-prefix match targets a live forwarder.

import { CreateRouteCommand, CreateRouteTableCommand, DescribeRouteTablesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { formatPrefix, parsePrefix, supernet, type Prefix } from '../src/core/cidr.js';
import { orderSteps } from '../src/core/vpc-apply-order.js';
import { diffVpcEntries, type VpcEntry, type VpcStep } from '../src/core/vpc-diff.js';
import { orderForReach } from '../src/core/vpc-reach-order.js';
import { EC2_MUTATE_BUCKET, type BucketSettings } from '../src/core/token-bucket.js';
import { Ec2Routes } from '../src/aws/ec2-routes.js';
import type { Teardown } from './cleanup.js';
import type { Ec2Proxy } from './ec2-proxy.js';
import { startEc2Sandbox } from './ec2-sandbox.js';
import type { MotoServer } from './moto.js';

export const POD = parsePrefix('100.64.0.0/14');
const log = pino({ level: 'silent' });

export interface ThrottleWorld {
  readonly moto: MotoServer;
  readonly proxy: Ec2Proxy;
  /** Straight to moto (setup and checks: never throttled, not counted). */
  readonly setup: EC2Client;
  /** Through the proxy. */
  readonly client: EC2Client;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly instances: readonly string[];
  /** The bucket the proxy enforces on route writes. */
  readonly bucket: BucketSettings;
}

/** Moto, the proxy enforcing `bucket` (default EC2's 50 + 5/s) on route writes, a VPC with `instances` instances. */
export async function buildThrottleWorld(t: Teardown | undefined, instances: number, bucket: BucketSettings = EC2_MUTATE_BUCKET): Promise<ThrottleWorld> {
  const { moto, proxy, setup, client, vpcId, subnetId } = await startEc2Sandbox(t, '198.18.0.0/20');
  const ids: string[] = [];
  while (ids.length < instances) {
    const n = Math.min(100, instances - ids.length);
    const run = await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: n, MaxCount: n, SubnetId: subnetId }));
    ids.push(...(run.Instances ?? []).map((i) => i.InstanceId as string));
  }
  proxy.bucket(bucket);
  return { moto, proxy, setup, client, vpcId, subnetId, instances: ids, bucket };
}

/** Stops what buildThrottleWorld started without a `t`. */
export async function closeThrottleWorld(w: ThrottleWorld): Promise<void> {
  w.setup.destroy();
  w.client.destroy();
  await w.proxy.close();
  await w.moto.stop();
}

export interface Scenario {
  readonly name: string;
  /** Table names (placeholders until `seed` maps them to route table ids). */
  readonly tables: readonly string[];
  readonly present: readonly VpcEntry[];
  readonly planned: readonly VpcEntry[];
  readonly live: ReadonlySet<string>;
  /** Every pod block that must end reachable. */
  readonly blocks: readonly Prefix[];
}

/** Node i's block: the i-th /26 of POD. */
export function blockOf(i: number): Prefix {
  return { family: 4, addr: POD.addr + BigInt(i) * 64n, len: 26 };
}

const tableNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `t${i}`);

/** `existing` nodes routed, `joining` more join at once (instances[0..existing+joining)). */
export function joinScenario(instances: readonly string[], existing: number, joining: number, tables: number): Scenario {
  const names = tableNames(tables);
  const all = existing + joining;
  const entry = (table: string, i: number): VpcEntry => ({ table, destination: blockOf(i), target: instances[i] as string });
  return {
    name: 'joins',
    tables: names,
    present: names.flatMap((t) => Array.from({ length: existing }, (_, i) => entry(t, i))),
    planned: names.flatMap((t) => Array.from({ length: all }, (_, i) => entry(t, i))),
    live: new Set(instances.slice(0, all)),
    blocks: Array.from({ length: all }, (_, i) => blockOf(i)),
  };
}

/**
 * `nodes` nodes; instances[0] forwards `carried` entries of other nodes'
 * blocks (spread over tables and addresses), `rebalance` entries per table
 * sit on instances[1] instead of their owner; instances[0] fails.
 */
export function failoverScenario(instances: readonly string[], nodes: number, carried: number, rebalance: number, tables: number): Scenario {
  const names = tableNames(tables);
  const x = instances[0] as string;
  const spare = instances[1] as string;
  const owner = (i: number): string => (i === 0 ? spare : (instances[i] as string));
  const present: VpcEntry[] = [];
  const planned: VpcEntry[] = [];
  const stride = Math.max(1, Math.floor((nodes - 2) / Math.ceil(carried / tables)));
  names.forEach((table, k) => {
    let onX = 0;
    let moved = 0;
    const share = Math.floor(carried / tables) + (k < carried % tables ? 1 : 0);
    for (let i = 0; i < nodes; i++) {
      let target = instances[i] as string;
      if (i === 0) target = x;
      else if (i >= 2 && (i - 2) % stride === 0 && onX < share) {
        target = x;
        onX++;
      } else if (i >= 2 && moved < rebalance) {
        target = spare;
        moved++;
      }
      present.push({ table, destination: blockOf(i), target });
      planned.push({ table, destination: blockOf(i), target: owner(i) });
    }
  });
  return { name: 'failover', tables: names, present, planned, live: new Set(instances.slice(1, nodes)), blocks: Array.from({ length: nodes }, (_, i) => blockOf(i)) };
}

/** Fresh route tables holding the scenario's present entries (written straight to moto); returns the scenario on them. */
export async function seed(w: ThrottleWorld, s: Scenario): Promise<Scenario> {
  const ids = new Map<string, string>();
  for (const name of s.tables) ids.set(name, (await w.setup.send(new CreateRouteTableCommand({ VpcId: w.vpcId }))).RouteTable?.RouteTableId as string);
  const on = (e: VpcEntry): VpcEntry => ({ ...e, table: ids.get(e.table) as string });
  const present = s.present.map(on);
  for (const e of present) await w.setup.send(new CreateRouteCommand({ RouteTableId: e.table, DestinationCidrBlock: formatPrefix(e.destination), InstanceId: e.target }));
  return { ...s, tables: [...ids.values()], present, planned: s.planned.map(on) };
}

export type Order = 'naive' | 'reach';

export interface PassResult {
  readonly order: Order;
  readonly writes: number;
  /** Throttled answers the proxy gave during the pass. */
  readonly throttled: number;
  readonly durationMs: number;
  /** Per block: ms from the start until it was reachable for good. */
  readonly reachMs: readonly number[];
  /** Per block: writes made until it was reachable for good. */
  readonly reachWrites: readonly number[];
}

/** Replays `steps` on `present`: when each block became reachable for good (index into steps + 1; 0 = from the start). */
export function reachIndex(s: Scenario, steps: readonly VpcStep[]): number[] {
  const state = new Map(s.present.map((e) => [`${e.table} ${formatPrefix(e.destination)}`, e.target]));
  const ok = (b: Prefix): boolean =>
    s.tables.every((table) => {
      for (let len = b.len; len >= 0; len--) {
        const target = state.get(`${table} ${formatPrefix(len === b.len ? b : supernet(b, len))}`);
        if (target !== undefined) return s.live.has(target);
      }
      return false;
    });
  const since: number[] = s.blocks.map((b) => (ok(b) ? 0 : -1));
  steps.forEach((step, i) => {
    const k = `${step.entry.table} ${formatPrefix(step.entry.destination)}`;
    if (step.kind === 'delete') state.delete(k);
    else state.set(k, step.entry.target);
    s.blocks.forEach((b, j) => {
      const now = ok(b);
      if (!now) since[j] = -1;
      else if (since[j] === -1) since[j] = i + 1;
    });
  });
  return since.map((x) => (x === -1 ? Infinity : x));
}

/** The steps of `s` in `order` (the scaffold pair included for "reach"). */
export function stepsOf(s: Scenario, order: Order, limit = 500): VpcStep[] {
  const delta = diffVpcEntries({ entries: s.planned }, s.present);
  const room = new Map(s.tables.map((t) => [t, { limit, total: s.present.filter((e) => e.table === t).length + 1 }]));
  if (order === 'naive') return orderSteps(delta, room, s.present);
  return orderForReach({ delta, room, present: s.present, live: s.live, podPrefixOf: () => POD });
}

/** Applies `s` (seeded) in `order` through the adapter; `buckets` false sends unpaced. */
export async function runPass(w: ThrottleWorld, s: Scenario, order: Order, buckets?: false): Promise<PassResult> {
  const routes = new Ec2Routes({ client: w.client, vpcId: w.vpcId, log, retry: { baseDelayMs: 200, maxDelayMs: 2000 }, ...(buckets === false ? { buckets: false as const } : {}) });
  await routes.learnInterfaces([...s.live]);
  const steps = stepsOf(s, order);
  // Every pass starts with EC2's bucket full, as the client's is.
  w.proxy.bucket(w.bucket);
  const before = Object.values(w.proxy.throttledCounts()).reduce((a, b) => a + b, 0);
  const at: number[] = [];
  const start = performance.now();
  for (const step of steps) {
    await routes.apply(step, step.entry.table, POD);
    at.push(performance.now() - start);
  }
  const durationMs = performance.now() - start;
  const index = reachIndex(s, steps);
  const throttled = Object.values(w.proxy.throttledCounts()).reduce((a, b) => a + b, 0) - before;
  return { order, writes: steps.length, throttled, durationMs, reachWrites: index, reachMs: index.map((i) => (i === 0 ? 0 : i === Infinity ? Infinity : (at[i - 1] as number))) };
}

/** The scenario's entries as the tables hold them (instance ids; interface routes mapped back), sorted. */
export async function tableEntries(w: ThrottleWorld, s: Scenario): Promise<string[]> {
  const routes = new Ec2Routes({ client: w.setup, vpcId: w.vpcId, log, buckets: false });
  const read = await routes.describe(s.tables, w.instances);
  return read.tables.flatMap((t) => t.routes.filter((r) => r.instanceId !== undefined).map((r) => `${t.name} ${r.destination} ${r.instanceId}`)).sort();
}

export const plannedEntries = (s: Scenario): string[] => s.planned.map((e) => `${e.table} ${formatPrefix(e.destination)} ${e.target}`).sort();

/** Raw DescribeRouteTables of the scenario's tables straight from moto (for route counts). */
export async function routeCount(w: ThrottleWorld, s: Scenario): Promise<number> {
  const out = await w.setup.send(new DescribeRouteTablesCommand({ RouteTableIds: [...s.tables] }));
  return (out.RouteTables ?? []).reduce((n, t) => n + (t.Routes ?? []).length, 0);
}
