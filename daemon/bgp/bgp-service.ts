// BGP mode of trellisd (bgp.enabled): the speaker (gobgpd), the subnet's
// exporter election (exporter mode), forwarder health and the exporter,
// wired together; started once the cluster view is synced. trellisd loads
// this module only with bgp.enabled, so gRPC is never loaded otherwise.
// Stop: end passes (so nothing is withdrawn), resign (a successor takes over
// at once and announces the same plan), then kill the speaker (see speaker.ts
// for why the peers keep our routes meanwhile).

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { formatAddress } from '../../src/core/cidr.js';
import type { TrellisConfig } from '../../src/config/load.js';
import { parseBgpPeers, parseCommunity } from '../../src/config/bgp-config.js';
import type { LeaseKeeper } from '../../src/etcd/lease-keeper.js';
import type { Keys } from '../../src/state/keys.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';
import { AdvertiserElection } from '../election.js';
import { ForwarderHealth } from '../vpc/health.js';
import type { ClusterState } from '../vpc/plan-input.js';
import { BgpExporter, type BgpStatus } from './exporter.js';
import { BgpMetrics } from './metrics.js';
import { Speaker } from './speaker.js';

export interface BgpServiceOptions {
  readonly config: TrellisConfig;
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly lease: LeaseKeeper;
  readonly subnet: string;
  readonly cluster: () => ClusterState | undefined;
  /** True while this node is drained: no candidate exporter (daemon/drain-watch.ts). */
  readonly standDown?: () => boolean;
  /** Registers a callback run on every cluster change. */
  readonly onChange: (markDirty: () => void) => void;
  readonly registry: Registry;
  readonly log: Logger;
}

export class BgpService {
  readonly speaker: Speaker;
  readonly exporter: BgpExporter;
  readonly election: AdvertiserElection | undefined;
  private readonly health: ForwarderHealth;

  constructor(private readonly options: BgpServiceOptions) {
    const { config, client, keys, lease, subnet } = options;
    const log = options.log.child({ component: 'bgp' });
    const problems: string[] = [];
    const peers = parseBgpPeers(config.bgp.peers, problems);
    if (problems.length > 0 || config.bgp.asn === undefined) throw new TrellisError(ErrorCode.Config, `invalid bgp settings: ${problems.join('; ')}`);
    const mode = config.bgp.mode === 'tor' ? 'tor' : 'exporter';
    this.speaker = new Speaker({
      gobgpd: config.bgp.gobgpd,
      apiListen: config.bgp.apiListen,
      asn: config.bgp.asn,
      routerId: config.bgp.routerId ?? config.hostIP,
      listenPort: config.bgp.listenPort,
      restartTime: config.bgp.restartTime / 1000,
      peers,
      log,
    });
    this.election =
      mode === 'exporter'
        ? new AdvertiserElection({ client, keys, subnet, node: config.nodeName, lease, prefix: keys.bgpExportersPrefix(subnet), role: 'BGP exporter', standDown: options.standDown, log: log.child({ component: 'bgp-election' }) })
        : undefined;
    this.health = new ForwarderHealth({
      intervalMs: config.vpc.probeInterval,
      misses: config.vpc.probeMisses,
      recoverAfterMs: config.vpc.recoverAfter,
      log: log.child({ component: 'forwarder-health' }),
    });
    const election = this.election;
    this.exporter = new BgpExporter({
      mode,
      node: config.nodeName,
      subnet,
      hostIP: config.hostIP,
      asn: config.bgp.asn,
      peers,
      communities: config.bgp.communities.map((c) => {
        const [asn, value] = parseCommunity(c) as [number, number];
        return asn * 65536 + value;
      }),
      speaker: {
        listOwnPaths: () => this.speaker.client.listOwnPaths(),
        addPath: (p, comms) => this.speaker.client.addPath(p, comms),
        deletePath: (p) => this.speaker.client.deletePath(p),
        peers: () => this.speaker.peers(),
      },
      cluster: () => {
        const cluster = options.cluster();
        if (cluster !== undefined) this.health.setCandidates(this.candidates(cluster));
        return cluster;
      },
      leader: () => election?.isLeader() ?? true,
      healthy: (n) => this.health.healthy(n),
      metrics: new BgpMetrics(options.registry),
      log,
    });
    election?.on('state', () => this.exporter.markDirty());
    this.health.on('change', () => this.exporter.markDirty());
    options.onChange(() => this.exporter.markDirty());
  }

  private candidates(cluster: ClusterState): Array<{ name: string; instanceId: string; endpoint: string }> {
    return [...cluster.nodes.values()]
      .filter((n) => n.subnet.id === this.options.subnet)
      .map((n) => ({ name: n.name, instanceId: formatAddress(n.hostIP), endpoint: n.healthEndpoint }));
  }

  async start(): Promise<void> {
    await this.speaker.start();
    const cluster = this.options.cluster();
    if (cluster !== undefined) this.health.setCandidates(this.candidates(cluster));
    if (this.election !== undefined) {
      await this.health.probeAll();
      this.health.start();
      await this.election.start();
    }
    this.exporter.start();
  }

  /** An etcd change: plan again. */
  markDirty(): void {
    this.exporter.markDirty();
  }

  /** /readyz details: sessions not established, failed passes. */
  problems(): string[] {
    return this.exporter.problems();
  }

  status(): BgpStatus {
    return this.exporter.status();
  }

  async stop(): Promise<void> {
    // Passes end before resigning: a follower's pass would withdraw our routes before the successor announces them.
    await this.exporter.stop();
    await this.election?.resign();
    this.health.stop();
    await this.speaker.stop();
  }
}

/** trellisd's one BGP step, once the cluster view is synced: the started service, or undefined when bgp.enabled is off. */
export async function startBgp(options: BgpServiceOptions): Promise<BgpService | undefined> {
  if (!options.config.bgp.enabled) return undefined;
  const service = new BgpService(options);
  await service.start();
  return service;
}
