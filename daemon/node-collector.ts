// The cluster's node collector: gives back the block claims and pod address
// records of nodes gone for good, so their prefixes can be claimed again.
//
// One trellisd per cluster collects: every trellisd with vpc.enabled or
// gc.deadNodeAfter > 0 is a candidate in an election under
// <prefix>/v1/collector/ (the machinery of the VPC advertisers, election.ts),
// keyed by its node lease. The leader applies the rules its configuration
// turns on, to every node that block claims name and that has no node record
// ("absent"):
//  * ec2-terminated (`ec2` given, i.e. vpc.enabled): the node's identity
//    record (src/state/node-identity.ts) names an instance that EC2 reports
//    terminated or does not know (InvalidInstanceID.NotFound): collected at
//    once, no grace. One DescribeInstances (100 ids a call, paged, through the
//    adapter's token bucket) per pass for all absent nodes with an instance
//    id; a throttled call waits while this node collects (`active`), and a
//    call that fails (or gives up) collects nothing by this rule in that
//    pass. A node without a valid identity is never collected by it.
//  * dead-node-after (deadNodeAfterMs > 0): absent for deadNodeAfterMs as seen
//    by this collector. The time counts from when this collector first saw it
//    absent (a new collector starts counting again: collection only ever
//    comes later, never earlier).
// Invariants:
//  * Before each collection the collector confirms its leadership with a fresh
//    read, and reads the node's records again: a node with a node record or an
//    advertisement (under any lease) is never collected; by the EC2 rule, only
//    while its identity still names the instance EC2 reported gone (a node
//    back on a new instance writes its identity before it registers).
//  * Each block goes in one transaction guarded by its claim's revision
//    (src/etcd/node-removal.ts): a block claimed again meanwhile stays.
//  * One log line ("collected dead node") and one count in
//    trellis_nodes_collected_total{rule} per node collected.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { describeError } from '../src/errors.js';
import { isPresent, readNodePresence, releaseNodeRecords } from '../src/etcd/node-removal.js';
import type { Keys } from '../src/state/keys.js';
import type { IdentityInfo } from '../src/state/node-identity.js';
import type { Checked } from '../src/state/validate.js';
import { AdvertiserElection, type LeaseSource } from './election.js';

/** What the collector reads of the cluster view (undefined until synced). */
export interface CollectorView {
  /** Names with a node record (valid or not). */
  readonly recorded: ReadonlySet<string>;
  /** Names that block claims give blocks to. */
  readonly claimOwners: ReadonlySet<string>;
}

/** What the ec2-terminated rule asks. */
export interface Ec2Evidence {
  /** Identity records of these nodes (those that have one). */
  identities(nodes: readonly string[]): Promise<Map<string, Checked<IdentityInfo>>>;
  /** EC2's state of each instance ("terminated", "not-found"…); throws when EC2 could not be asked. */
  states(instanceIds: readonly string[]): Promise<Map<string, string>>;
}

export interface NodeCollectorOptions {
  /** The node's own client: the election runs on it, under the node's lease. */
  readonly client: Etcd3;
  /** What reads and removes a dead node's records (gc.etcdUsername's client; closed by stop()); default `client`. */
  readonly remover?: Etcd3;
  readonly keys: Keys;
  readonly node: string;
  readonly lease: LeaseSource;
  readonly log: Logger;
  /** 0: the time rule is off. */
  readonly deadNodeAfterMs: number;
  /** The EC2 rule; undefined: off. */
  readonly ec2?: Ec2Evidence;
  /** Time between passes. */
  readonly periodMs: number;
  readonly view: () => CollectorView | undefined;
  /** trellis_nodes_collected_total, by rule. */
  readonly collected: Counter<'rule'>;
  readonly now?: () => number;
}

/** EC2 states that prove an instance gone for good. */
const GONE = new Set(['terminated', 'not-found']);

/** How often the time rule looks: a quarter of the grace, within [250 ms, 10 s]. */
export function collectPeriodMs(deadNodeAfterMs: number): number {
  return Math.max(250, Math.min(10_000, deadNodeAfterMs / 4));
}

export class NodeCollector {
  readonly election: AdvertiserElection;
  /** When this collector first saw each node absent (ms). */
  private readonly absentSince = new Map<string, number>();
  /** Identities read for absent nodes (null: none or invalid), kept while they stay absent. */
  private readonly identities = new Map<string, IdentityInfo | null>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly o: NodeCollectorOptions) {
    this.now = o.now ?? Date.now;
    this.election = new AdvertiserElection({
      client: o.client, keys: o.keys, subnet: '(cluster)', node: o.node, lease: o.lease,
      log: o.log.child({ component: 'collector-election' }), prefix: o.keys.collectorPrefix(), role: 'node collector of the cluster',
    });
  }

  async start(): Promise<void> {
    await this.election.start();
    this.timer = setInterval(() => void this.pass(), this.o.periodMs);
    this.timer.unref?.();
  }

  /** True while this node collects (leader, not stopping): a throttled EC2 call of a pass waits that long. */
  get active(): boolean {
    return !this.stopped && this.election.isLeader();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.election.resign();
    this.o.remover?.close();
  }

  /** One look at the cluster; collects what the rules allow. Never throws. */
  pass(): Promise<void> {
    this.running ??= this.pass0()
      .catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'node collection failed; retrying'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass0(): Promise<void> {
    const view = this.o.view();
    if (!this.election.isLeader() || view === undefined) {
      this.absentSince.clear();
      this.identities.clear();
      return;
    }
    const now = this.now();
    const absent = [...view.claimOwners].filter((n) => !view.recorded.has(n)).sort();
    const absentSet = new Set(absent);
    for (const name of this.absentSince.keys()) if (!absentSet.has(name)) this.absentSince.delete(name);
    for (const name of this.identities.keys()) if (!absentSet.has(name)) this.identities.delete(name);
    for (const node of absent) if (!this.absentSince.has(node)) this.absentSince.set(node, now);
    const gone = await this.terminated(absent);
    for (const node of absent) {
      const since = this.absentSince.get(node) ?? now;
      const evidence = gone.get(node);
      const rule = evidence !== undefined ? 'ec2-terminated' : this.o.deadNodeAfterMs > 0 && now - since >= this.o.deadNodeAfterMs ? 'dead-node-after' : undefined;
      if (rule === undefined) continue;
      if (!(await this.election.confirm())) return;
      if (isPresent(await readNodePresence(this.remover, this.o.keys, node)) || (evidence !== undefined && !(await this.sameInstance(node, evidence.instanceId)))) {
        this.absentSince.delete(node);
        this.identities.delete(node);
        continue;
      }
      const released = await releaseNodeRecords(this.remover, this.o.keys, node, this.o.log, true);
      this.absentSince.delete(node);
      this.identities.delete(node);
      this.o.collected.inc({ rule });
      this.o.log.info(
        { node, rule, absentForMs: now - since, ...(evidence ?? {}), blocks: released.blocks, addresses: released.addresses, skipped: released.skipped },
        'collected dead node',
      );
    }
  }

  private get remover(): Etcd3 {
    return this.o.remover ?? this.o.client;
  }

  /** Whether the node's identity still names `instanceId` (it may have come back on another instance since it was read). */
  private async sameInstance(node: string, instanceId: string): Promise<boolean> {
    const fresh = (await this.o.ec2?.identities([node]))?.get(node);
    return fresh?.ok === true && fresh.value.instanceId === instanceId;
  }

  /** Absent nodes whose instance EC2 reports gone, with what EC2 said; empty when the rule is off or EC2 could not be asked. */
  private async terminated(absent: readonly string[]): Promise<Map<string, { instanceId: string; ec2State: string }>> {
    const out = new Map<string, { instanceId: string; ec2State: string }>();
    const ec2 = this.o.ec2;
    if (ec2 === undefined || absent.length === 0) return out;
    const unread = absent.filter((n) => !this.identities.has(n));
    if (unread.length > 0) {
      const read = await ec2.identities(unread);
      for (const node of unread) {
        const checked = read.get(node);
        if (checked !== undefined && !checked.ok) this.o.log.warn({ node, reason: checked.reason }, 'ignoring identity record: the EC2 rule cannot collect this node');
        this.identities.set(node, checked?.ok === true && checked.value.instanceId !== '' ? checked.value : null);
      }
    }
    const asked = absent.flatMap((n) => {
      const id = this.identities.get(n);
      return id === null || id === undefined ? [] : [{ node: n, instanceId: id.instanceId }];
    });
    if (asked.length === 0) return out;
    let states: Map<string, string>;
    try {
      states = await ec2.states(asked.map((a) => a.instanceId));
    } catch (err) {
      this.o.log.warn({ err: describeError(err), nodes: asked.length }, 'cannot ask EC2 about absent nodes: none collected by the EC2 rule this pass');
      return out;
    }
    for (const { node, instanceId } of asked) {
      const state = states.get(instanceId);
      if (state !== undefined && GONE.has(state)) out.set(node, { instanceId, ec2State: state });
    }
    return out;
  }
}
