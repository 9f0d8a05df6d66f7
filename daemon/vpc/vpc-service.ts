// VPC mode of trellisd (vpc.enabled): the instance identity, the EC2
// client, this subnet's advertiser election, forwarder health and the
// advertiser, wired together. trellisd loads this module only in VPC mode, so
// the AWS SDK is never loaded otherwise.
//
// Start: resolve what the configuration leaves out from the instance metadata
// (before the node record is published, since it carries the instance id);
// once the cluster view is synced, campaign, and turn off this instance's
// source/destination check (once, in the background). Stop: resign first, so the successor takes over
// at once, then stop passes and probes.
// EC2 unreachable (ec2-reach.ts): when this node's EC2 calls have gone
// unanswered for vpc.unreachableAfter, it stands down from the subnet's
// election (another node of the subnet takes over) and probes EC2 (one
// DescribeInstances of its own instance every 5 s) until it answers; then it
// is a candidate again, at the back of the queue.
// The AWS SDK finds credentials by its default chain (environment, profile,
// instance role); its instance-metadata lookups go to vpc.metadataEndpoint.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { TrellisConfig } from '../../src/config/load.js';
import { routeTables, type Topology } from '../../src/core/topology.js';
import { describeError, ErrorCode, TrellisError } from '../../src/errors.js';
import { formatPrefix } from '../../src/core/cidr.js';
import type { LeaseKeeper } from '../../src/etcd/lease-keeper.js';
import type { Keys } from '../../src/state/keys.js';
import { VpcAdvertiser } from './advertiser.js';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ec2Answered, ec2Client, Ec2Routes, type Ec2CallObserver } from '../../src/aws/ec2-routes.js';
import { Ec2Reach } from './ec2-reach.js';
import { AdvertiserElection } from '../election.js';
import { ForwarderHealth } from './health.js';
import { resolveIdentity, type InstanceIdentity } from '../../src/aws/metadata.js';
import { VpcMetrics } from './metrics.js';
import type { ClusterState } from './plan-input.js';
import { readEntryHistory, readFailedForwarders, writeStatus } from '../../src/state/vpc-status.js';

/** Fills instanceId, region and (when a subnet uses the main table) the VPC id from IMDS when not configured. */
export async function resolveVpcIdentity(config: TrellisConfig, topology: Topology): Promise<InstanceIdentity> {
  // The SDK's own instance-metadata credential lookups must go where the configuration says.
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ??= config.vpc.metadataEndpoint;
  return resolveIdentity(
    { instanceId: config.instanceId, region: config.vpc.region, vpcId: config.vpc.vpcId, needVpcId: routeTables(topology).includes('main') },
    { endpoint: config.vpc.metadataEndpoint },
  );
}

export type VpcServiceFactory = (deps: Omit<VpcServiceOptions, 'config' | 'identity' | 'log'>) => VpcService;

/**
 * trellisd's first VPC step, before its node record is published: resolve the
 * identity (config.instanceId is filled in from it) and say when peers
 * cannot probe this node. Returns how to build the service once the cluster
 * view is synced.
 */
export async function prepareVpc(config: TrellisConfig, topology: Topology, healthEndpoint: string, log: Logger): Promise<VpcServiceFactory> {
  if (topology.network.family !== 4) {
    throw new TrellisError(ErrorCode.Config, `vpc.enabled: VPC route tables are kept for IPv4 pod networks only; the topology's network is ${formatPrefix(topology.network)}`);
  }
  const identity = await resolveVpcIdentity(config, topology);
  config.instanceId = identity.instanceId;
  if (healthEndpoint === '') log.warn('vpc.enabled but http.listen is loopback or off: the subnet advertiser cannot probe this node');
  return (deps) => new VpcService({ ...deps, config, identity, log: log.child({ component: 'vpc' }) });
}

export interface VpcServiceOptions {
  readonly config: TrellisConfig;
  readonly identity: InstanceIdentity;
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly lease: LeaseKeeper;
  readonly subnet: string;
  readonly cluster: () => ClusterState | undefined;
  /** True while this node is drained: no candidate advertiser (daemon/drain-watch.ts). */
  readonly standDown?: () => boolean;
  readonly registry: Registry;
  readonly log: Logger;
}

export class VpcService {
  readonly election: AdvertiserElection;
  readonly advertiser: VpcAdvertiser;
  readonly routes: Ec2Routes;
  readonly reach: Ec2Reach;
  private readonly ec2: ReturnType<typeof ec2Client>;
  private stopping = false;

  constructor(private readonly options: VpcServiceOptions) {
    const { config, identity, client, keys, lease, subnet, log } = options;
    const metrics = new VpcMetrics(options.registry);
    this.ec2 = ec2Client({ endpoint: config.vpc.endpoint, region: identity.region });
    this.election = new AdvertiserElection({ client, keys, subnet, node: config.nodeName, lease, standDown: options.standDown, log: log.child({ component: 'election' }) });
    this.reach = new Ec2Reach({ unreachableAfterMs: config.vpc.unreachableAfter, probeIntervalMs: 5000, probe: () => this.probeEc2(), log: log.child({ component: 'ec2-reach' }) });
    this.reach.on('change', (reachable) => {
      if (this.stopping) return;
      if (reachable) void this.election.standUp();
      else void this.election.standDown(`EC2 did not answer for ${config.vpc.unreachableAfter} ms`);
    });
    metrics.setReachable(() => this.reach.reachable);
    const observer: Ec2CallObserver = {
      call: (action, result) => metrics.call(action, result),
      retry: (action) => metrics.retry(action),
      exhausted: (action) => metrics.exhausted(action),
      answered: (answered) => this.reach.answered(answered),
    };
    this.routes = new Ec2Routes({
      client: this.ec2,
      vpcId: identity.vpcId,
      log: log.child({ component: 'ec2' }),
      observer,
      buckets: {
        mutate: { burst: config.vpc.writeBurst, refillPerSecond: config.vpc.writesPerSecond },
        describe: { burst: config.vpc.readBurst, refillPerSecond: config.vpc.readsPerSecond },
      },
      // A throttled route call waits for as long as this node leads (a write is made only by the leader); the
      // source/destination check until the service stops.
      keepTrying: (action) => !this.stopping && (action === 'ModifyInstanceAttribute' || this.election.isLeader()),
    });
    const health = new ForwarderHealth({
      intervalMs: config.vpc.probeInterval,
      misses: config.vpc.probeMisses,
      recoverAfterMs: config.vpc.recoverAfter,
      log: log.child({ component: 'forwarder-health' }),
    });
    this.advertiser = new VpcAdvertiser({
      subnet,
      node: config.nodeName,
      election: this.election,
      tables: this.routes,
      health,
      cluster: options.cluster,
      routeLimit: config.vpc.routeLimit,
      verifyIntervalMs: config.vpc.verifyInterval,
      writeStatus: (status) => writeStatus(client, keys, status),
      history: () => readEntryHistory(client, keys),
      previousFailures: () => readFailedForwarders(client, keys, subnet),
      metrics,
      log: log.child({ component: 'vpc-advertiser' }),
    });
  }

  /** Campaigns; turns off the source/destination check in the background (EC2 may be slow or throttling). */
  async start(): Promise<void> {
    const { config, identity, log } = this.options;
    if (config.vpc.disableSourceDestCheck) {
      this.routes.disableSourceDestCheck(identity.instanceId).then(
        () => log.info({ instanceId: identity.instanceId }, 'source/destination check turned off'),
        (err: unknown) => log.warn({ instanceId: identity.instanceId, err: describeError(err) }, 'cannot turn off the source/destination check: this host cannot forward for its subnet'),
      );
    }
    this.reach.start();
    await this.election.start();
  }

  /** One DescribeInstances of this instance, bounded: true when EC2 answered (any answer). */
  private async probeEc2(): Promise<boolean> {
    try {
      await this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [this.options.identity.instanceId] }), { abortSignal: AbortSignal.timeout(5000) });
      return true;
    } catch (err) {
      return ec2Answered(err);
    }
  }

  /** An etcd change or a topology change: plan again. */
  markDirty(): void {
    this.advertiser.markDirty();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.reach.stop();
    await this.election.resign();
    await this.advertiser.stop();
    this.ec2.destroy();
  }
}
