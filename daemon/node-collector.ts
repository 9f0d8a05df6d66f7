// The cluster's node collector: gives back the block claims and pod address
// records of nodes gone for good, so their prefixes can be claimed again.
//
// One trellisd per cluster collects: every trellisd with gc.deadNodeAfter > 0
// is a candidate in an election under <prefix>/v1/collector/ (the machinery of
// the VPC advertisers, election.ts), keyed by its node lease.
// Rule (time): a node that block claims name and that has had no node record
// for gc.deadNodeAfter, as seen by the current collector, is collected. The
// time counts from when this collector first saw it absent (a new collector
// starts counting again: collection only ever comes later, never earlier).
// Invariants:
//  * Before each collection the collector confirms its leadership with a fresh
//    read, and reads the node's records again: a node with a node record or an
//    advertisement (under any lease) is never collected.
//  * Each block goes in one transaction guarded by its claim's revision
//    (src/etcd/node-removal.ts): a block claimed again meanwhile stays.
//  * One log line ("collected dead node") and one count in
//    trellis_nodes_collected_total{rule} per node collected.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { isPresent, readNodePresence, releaseNodeRecords } from '../src/etcd/node-removal.js';
import type { Keys } from '../src/state/keys.js';
import { AdvertiserElection, type LeaseSource } from './election.js';

/** What the collector reads of the cluster view (undefined until synced). */
export interface CollectorView {
  /** Names with a node record (valid or not). */
  readonly recorded: ReadonlySet<string>;
  /** Names that block claims give blocks to. */
  readonly claimOwners: ReadonlySet<string>;
}

export interface NodeCollectorOptions {
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly node: string;
  readonly lease: LeaseSource;
  readonly log: Logger;
  readonly deadNodeAfterMs: number;
  readonly view: () => CollectorView | undefined;
  /** trellis_nodes_collected_total, by rule. */
  readonly collected: Counter<'rule'>;
  readonly now?: () => number;
}

/** How often the collector looks: a quarter of the grace, within [250 ms, 10 s]. */
export function collectPeriodMs(deadNodeAfterMs: number): number {
  return Math.max(250, Math.min(10_000, deadNodeAfterMs / 4));
}

export class NodeCollector {
  readonly election: AdvertiserElection;
  /** When this collector first saw each node absent (ms). */
  private readonly absentSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly o: NodeCollectorOptions) {
    this.now = o.now ?? Date.now;
    this.election = new AdvertiserElection({
      client: o.client, keys: o.keys, subnet: '(cluster)', node: o.node, lease: o.lease,
      log: o.log.child({ component: 'collector-election' }), prefix: o.keys.collectorPrefix(), role: 'node collector of the cluster',
    });
  }

  async start(): Promise<void> {
    await this.election.start();
    this.timer = setInterval(() => void this.pass(), collectPeriodMs(this.o.deadNodeAfterMs));
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.election.resign();
  }

  /** One look at the cluster; collects what the rule allows. Never throws. */
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
      return;
    }
    const now = this.now();
    const absent = [...view.claimOwners].filter((n) => !view.recorded.has(n));
    for (const name of this.absentSince.keys()) if (!absent.includes(name)) this.absentSince.delete(name);
    for (const node of absent.sort()) {
      const since = this.absentSince.get(node) ?? now;
      this.absentSince.set(node, since);
      if (now - since < this.o.deadNodeAfterMs) continue;
      if (!(await this.election.confirm())) return;
      if (isPresent(await readNodePresence(this.o.client, this.o.keys, node))) {
        this.absentSince.delete(node);
        continue;
      }
      const released = await releaseNodeRecords(this.o.client, this.o.keys, node, this.o.log, true);
      this.absentSince.delete(node);
      this.o.collected.inc({ rule: 'dead-node-after' });
      this.o.log.info(
        { node, rule: 'dead-node-after', absentForMs: now - since, blocks: released.blocks, addresses: released.addresses, skipped: released.skipped },
        'collected dead node',
      );
    }
  }
}
