// Builds trellisd's candidacy for the cluster's node collector
// (node-collector.ts) from its configuration: a candidate when vpc.enabled
// (the EC2 rule, through this node's EC2 adapter and its token buckets) or
// gc.deadNodeAfter > 0 (the time rule); otherwise none.
// The pass period: a quarter of gc.deadNodeAfter for the time rule, the hold
// time for the EC2 rule (a lease is gone one hold time after its node died),
// each within [250 ms, 10 s]; the shorter when both apply.
// Credentials: removing a dead node's records takes rights a per-node etcd
// user does not have (docs/trust.md). A node that connects as its own
// per-node user is a candidate only with gc.etcdUsername/gc.etcdPassword
// (the trellis-collector user); the collector then removes as that user,
// while its election stays on the node's own client and lease.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Ec2Routes } from '../src/aws/ec2-routes.js';
import type { TrellisConfig } from '../src/config/load.js';
import { readIdentities } from '../src/etcd/node-identities.js';
import type { PrefixMirror } from '../src/etcd/prefix-mirror.js';
import type { ClusterView } from '../src/state/cluster-view.js';
import { Keys } from '../src/state/keys.js';
import { nodeRole } from '../src/state/rbac-plan.js';
import { connectEtcd } from '../src/etcd/client.js';
import { etcdSettings } from './cluster-wait.js';
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

/** Why this node's etcd credential cannot collect (see the module comment), or undefined when it can. */
export function collectorCredentialProblem(config: Pick<TrellisConfig, 'nodeName' | 'etcd' | 'gc'>): string | undefined {
  if (config.gc.etcdUsername !== undefined || config.etcd.username !== nodeRole(config.nodeName)) return undefined;
  return `it connects to etcd as its own per-node user ${config.etcd.username}, which may not remove another node's records; ` +
    'give the nodes that should collect gc.etcdUsername and gc.etcdPassword (the trellis-collector user of trellisctl rbac apply)';
}

/** This node's collector candidacy, started; undefined when no rule is on or its credential cannot collect. */
export async function startCollector(d: CollectorDeps): Promise<NodeCollector | undefined> {
  const { config } = d;
  const ec2Routes = config.vpc.enabled ? d.ec2 : undefined;
  if (config.gc.deadNodeAfter <= 0 && ec2Routes === undefined) return undefined;
  const problem = collectorCredentialProblem(config);
  if (problem !== undefined) {
    d.log.info({ component: 'collector', reason: problem }, 'not a candidate for the node collector');
    return undefined;
  }
  const remover = config.gc.etcdUsername === undefined ? undefined
    : connectEtcd({ ...etcdSettings(config), username: config.gc.etcdUsername, password: config.gc.etcdPassword });
  let collector: NodeCollector | undefined;
  // A throttled DescribeInstances waits (backing off) for as long as this node collects.
  const ec2: Ec2Evidence | undefined = ec2Routes === undefined ? undefined : {
    identities: (nodes) => readIdentities(d.client, d.keys, nodes),
    states: (ids) => ec2Routes.instanceStates(ids, () => collector?.active === true),
  };
  collector = new NodeCollector({
    client: d.client, remover, keys: d.keys, node: config.nodeName, lease: d.lease, log: d.log.child({ component: 'collector' }),
    deadNodeAfterMs: config.gc.deadNodeAfter, ec2, collected: d.collected,
    periodMs: collectorPeriodMs(config.gc.deadNodeAfter, ec2 !== undefined, config.holdTime),
    view: () => (d.synced() ? { recorded: new Set([...(d.nodes?.entries().keys() ?? [])].map(Keys.leaf)), claimOwners: new Set(d.view.blocksByNode().keys()) } : undefined),
  });
  await collector.start();
  return collector;
}
