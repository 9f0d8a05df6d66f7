// Builds trellisd's candidacy for the cluster's node collector
// (node-collector.ts) from its configuration: a candidate when vpc.enabled
// (the EC2 rule, through this node's EC2 adapter and its token buckets) or
// gc.deadNodeAfter > 0 (the time rule); otherwise none.
// The pass period: a quarter of gc.deadNodeAfter for the time rule, the hold
// time for the EC2 rule (a lease is gone one hold time after its node died),
// each within [250 ms, 10 s]; the shorter when both apply.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Ec2Routes } from '../src/aws/ec2-routes.js';
import type { TrellisConfig } from '../src/config/load.js';
import { readIdentities } from '../src/etcd/node-identities.js';
import type { PrefixMirror } from '../src/etcd/prefix-mirror.js';
import type { ClusterView } from '../src/state/cluster-view.js';
import { Keys } from '../src/state/keys.js';
import type { LeaseSource } from './election.js';
import { collectPeriodMs, NodeCollector, type Ec2Evidence } from './node-collector.js';

export interface CollectorDeps {
  readonly config: TrellisConfig;
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly lease: LeaseSource;
  readonly log: Logger;
  readonly view: ClusterView;
  /** The watched mirror of nodes/ (every record, valid or not). */
  readonly nodes: PrefixMirror | undefined;
  readonly synced: () => boolean;
  /** This node's EC2 adapter (VPC mode). */
  readonly ec2: Ec2Routes | undefined;
  readonly collected: Counter<'rule'>;
}

/** The collector's pass period for the rules on (see the module comment). */
export function collectorPeriodMs(deadNodeAfterMs: number, ec2: boolean, holdTimeMs: number): number {
  const periods = [...(deadNodeAfterMs > 0 ? [collectPeriodMs(deadNodeAfterMs)] : []), ...(ec2 ? [Math.max(250, Math.min(10_000, holdTimeMs))] : [])];
  return Math.min(...periods);
}

/** This node's collector candidacy, started; undefined when no rule is on. */
export async function startCollector(d: CollectorDeps): Promise<NodeCollector | undefined> {
  const { config } = d;
  const ec2Routes = config.vpc.enabled ? d.ec2 : undefined;
  if (config.gc.deadNodeAfter <= 0 && ec2Routes === undefined) return undefined;
  let collector: NodeCollector | undefined;
  // A throttled DescribeInstances waits (backing off) for as long as this node collects.
  const ec2: Ec2Evidence | undefined = ec2Routes === undefined ? undefined : {
    identities: (nodes) => readIdentities(d.client, d.keys, nodes),
    states: (ids) => ec2Routes.instanceStates(ids, () => collector?.active === true),
  };
  collector = new NodeCollector({
    client: d.client, keys: d.keys, node: config.nodeName, lease: d.lease, log: d.log.child({ component: 'collector' }),
    deadNodeAfterMs: config.gc.deadNodeAfter, ec2, collected: d.collected,
    periodMs: collectorPeriodMs(config.gc.deadNodeAfter, ec2 !== undefined, config.holdTime),
    view: () => (d.synced() ? { recorded: new Set([...(d.nodes?.entries().keys() ?? [])].map(Keys.leaf)), claimOwners: new Set(d.view.blocksByNode().keys()) } : undefined),
  });
  await collector.start();
  return collector;
}
