// trellisd's wiring: configuration → etcd adapters → controllers.
//
// Start-up order (each step waits for the one before):
//   etcd reachable → lease re-attached (or granted: nothing is written under
//   a new lease yet) → topology present and valid → node placed in its subnet
//   → at least one block held (retried until one is, first-block.ts) → node
//   record and advertisement published together (one transaction) → watches
//   of nodes/, blocks/ and routes/ (and drain/ in VPC or BGP mode,
//   drain-watch.ts) synced (the cluster view is then complete).
// This file only builds the parts and sequences them: the advertisement
// policy is in node-advertisement.ts, the desired routes in route-inputs.ts,
// retries in src/retry.ts.
// A graceful stop leaves the lease to expire by itself (a restart within the
// hold time re-attaches to it); only `withdraw` removes the node at once.

import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { TrellisConfig } from '../src/config/load.js';
import { formatPrefix } from '../src/core/cidr.js';
import { probeEndpoint } from '../src/core/endpoints.js';
import { Ipam } from '../src/core/ipam.js';
import { placeNode } from '../src/core/ipam-placement.js';
import type { Subnet } from '../src/core/topology.js';
import { connectEtcd } from '../src/etcd/client.js';
import { mirrorClaims, StartupClaims } from '../src/etcd/claim-reader.js';
import { writeMissingHolds } from '../src/etcd/claim-holds.js';
import { guardLocalPods } from './local-pods.js';
import { LogBudget } from '../src/core/log-budget.js';
import { EtcdIpamStore } from '../src/etcd/ipam-store.js';
import { LeaseKeeper } from '../src/etcd/lease-keeper.js';
import { PrefixMirror, type MirrorChange } from '../src/etcd/prefix-mirror.js';
import { RouteProgrammer } from '../src/netlink/route-programmer.js';
import { ClusterView } from '../src/state/cluster-view.js';
import { compactBlockRecord } from '../src/state/block-claim.js';
import { Keys } from '../src/state/keys.js';
import { VERSION } from '../src/version.js';
import { etcdSettings, readTopology, waitForEtcd, waitForTopology } from './cluster-wait.js';
import { parseAddress } from '../src/core/cidr.js';
import { mergeDelta, RouteIndex, type RouteDelta } from '../src/core/route-index.js';
import { EgressController } from './egress.js';
import { startHttpServer } from './http-server.js';
import { IpamService, type IpamHost } from './ipam-service.js';
import { Metrics } from './metrics.js';
import { NodeAdvertisement } from './node-advertisement.js';
import { holdFirstBlock } from './first-block.js';
import { LostBlocks } from './lost-blocks.js';
import type { NodeCollector } from './node-collector.js';
import { startCollector } from './collector-wiring.js';
import { writeOwnIdentity } from './node-identity.js';
import { Publisher } from './publisher.js';
import { RouteAgent } from './route-agent.js';
import { RouteInputs } from './route-inputs.js';
import { WithdrawHold } from './withdraw-hold.js';
import { ClaimRepair } from './claim-repair.js';
import type { VpcService } from './vpc/vpc-service.js';
import { leaseOwner } from './withdraw.js';
import type { BgpService } from './bgp/bgp-service.js';
import type { ClusterState } from './vpc/plan-input.js';
import { drainWatchFor, type DrainWatch } from './drain-watch.js';

/** How often the IPAM usage gauges are refreshed from this node's own records. */
const IPAM_USAGE_REFRESH_MS = 10_000;

/** How long an advertisement may wait for its node record before it is reported as ignored. */
const UNBOUND_GRACE_MS = 2000;

export class NodeDaemon {
  readonly keys: Keys;
  readonly client: Etcd3;
  private lease: LeaseKeeper | undefined;
  private publisher: Publisher | undefined;
  private mirrors: PrefixMirror[] = [];
  private topologyMirror: PrefixMirror | undefined;
  view: ClusterView | undefined;
  ipam: Ipam | undefined;
  subnet: Subnet | undefined;
  private stopping = false;
  readonly metrics = new Metrics();
  private programmer: RouteProgrammer | undefined;
  agent: RouteAgent | undefined;
  /** Desired routes kept incrementally: an etcd change reaches the agent as the routes it changed. */
  private routeIndex: RouteIndex | undefined;
  private http: Server | undefined;
  /** What start() is waiting for, shown by /readyz. */
  private phase = 'starting';
  private ipamService: IpamService | undefined;
  private advertisement: NodeAdvertisement | undefined;
  /** Peers' withdrawals held by the mass-withdrawal damping. */
  private withdrawals: WithdrawHold | undefined;
  /** VPC mode (vpc.enabled): this subnet's advertiser election and advertiser. */
  vpc: VpcService | undefined;
  /** Log lines about bad records and conflicts: 100 at once, then 10 a second (metrics count all). */
  private readonly recordLogBudget = new LogBudget({ burst: 100, perSecond: 10, now: Date.now });
  /** Claim conflicts: alarmed, and this node's own claims written again. */
  private readonly claimRepair: ClaimRepair;

  /** Pod egress masquerade (nftables table ip trellis). */
  egress: EgressController | undefined;
  private lostBlocks: LostBlocks | undefined;
  private unboundTimer: NodeJS.Timeout | undefined;
  /** vpc.enabled or gc.deadNodeAfter > 0: candidate for the cluster's node collector. */
  collector: NodeCollector | undefined;
  /** BGP mode (bgp.enabled): the speaker and this node's exporter. */
  bgp: BgpService | undefined;
  /** Drained nodes (VPC or BGP mode): planners move their duties; this node stands down while drained. */
  private drains: DrainWatch | undefined;

  constructor(
    readonly config: TrellisConfig,
    readonly log: Logger,
  ) {
    this.keys = new Keys(config.etcd.prefix);
    this.client = connectEtcd(etcdSettings(config));
    this.claimRepair = new ClaimRepair({
      client: this.client, keys: this.keys, node: this.config.nodeName, log: this.log, logBudget: this.recordLogBudget,
      conflicts: this.metrics.claimConflicts, repairs: this.metrics.claimRepairs,
      stillInConflict: (block) => this.view?.conflicts().has(block) === true, stopping: () => this.stopping,
    });
  }

  get leaseKeeper(): LeaseKeeper | undefined {
    return this.lease;
  }

  /** undefined when ready; otherwise what is missing (for /readyz). */
  notReadyReason(): string | undefined {
    if (!this.synced) return this.phase;
    if (this.lease?.state === 'lost') return this.lease.trouble;
    const lost = this.lostBlocks?.notReadyReason();
    if (lost !== undefined) return lost;
    if (this.agent !== undefined && !this.agent.ready) return 'first reconcile of kernel routes not done';
    return this.egress?.notReadyReason;
  }


  private wireMetrics(): void {
    this.metrics.setSources({
      lastFullSyncAt: () => this.agent?.lastFullSync,
      advertisements: () => ({ valid: this.view?.advertisements().size ?? 0, records: this.view?.advertisementCount() ?? 0 }),
      leaseState: () => this.lease?.state ?? 'pending',
      ready: () => this.notReadyReason() === undefined,
      etcdErrors: () => ({
        publish: this.publisher?.failures ?? 0,
        watch: this.mirrors.reduce((n, m) => n + m.watchErrors, 0),
        lease: this.lease?.keepaliveFailures ?? 0,
      }),
    });
  }

  private async startRouting(routes: RouteInputs): Promise<void> {
    const { config, log } = this;
    this.routeIndex = new RouteIndex({
      self: config.nodeName,
      selfIP: parseAddress(config.hostIP),
      subnet: (this.subnet as Subnet).id,
      iface: config.interface,
      table: config.routes.table,
      protocol: config.routes.protocol,
      ownBlocks: config.routes.ownBlocks,
    });
    this.programmer = new RouteProgrammer({ protocol: config.routes.protocol });
    const agent = new RouteAgent({
      programmer: this.programmer,
      compute: () => routes.desired(),
      keep: (r) => routes.keep(r),
      table: config.routes.table,
      protocol: config.routes.protocol,
      resyncMs: config.routes.resyncInterval,
      log: log.child({ component: 'routes' }),
      metrics: this.metrics,
    });
    this.agent = agent;
    routes.subscribe((reason) => agent.markDirty(reason));
    await agent.start();
  }

  async start(): Promise<void> {
    const { config, log } = this;
    this.wireMetrics();
    if (config.http.listen !== '') {
      this.http = await startHttpServer(config.http.listen, this.metrics, this, log.child({ component: 'http' }));
    }
    this.phase = 'waiting for etcd';
    const stopping = (): boolean => this.stopping;
    await waitForEtcd(this.client, this.keys, etcdSettings(config), log, stopping);
    // The lease first: a restart re-attaches before anything slower (topology, kernel routes),
    // so the previous run's node record and advertisement never expire in between.
    const lease = new LeaseKeeper(this.client, {
      ttlSeconds: config.holdTime / 1000,
      stateFile: join(config.stateDir, 'lease.json'),
      log: log.child({ component: 'lease' }),
      owner: leaseOwner(config),
    });
    this.lease = lease;
    const client = this.client;
    const publisher = new Publisher(
      {
        put: (key) => client.put(key),
        // Node record and advertisement under a new lease together (peers require one lease for both).
        putAll: (writes) =>
          client.kv.txn({ compare: [], success: writes.map((w) => ({ request_put: { key: Buffer.from(w.key), value: Buffer.from(w.value), lease: w.lease } })), failure: [] }),
      },
      lease,
      log.child({ component: 'publisher' }),
    );
    this.publisher = publisher;
    // A lease stored by this node's previous run is re-attached now; a node without one is granted its
    // lease only once it holds a block (a node that cannot claim one leaves nothing leased behind).
    const stored = lease.stored();
    let started = stored !== undefined && (stored.node === undefined || stored.node === config.nodeName) ? await lease.start() : undefined;
    const logStarted = (s: { reattached: boolean }): void => log.info({ reattached: s.reattached }, s.reattached ? 'kept the lease of the previous run' : 'new lease');
    if (started !== undefined) logStarted(started);
    this.phase = 'waiting for a topology in etcd';
    const topologyMirror = new PrefixMirror(this.client, this.keys.topology(), log.child({ component: 'topology' }));
    this.topologyMirror = topologyMirror;
    const topology = await waitForTopology(topologyMirror, this.keys, log, stopping, (reason) => (this.phase = reason));
    const subnet = placeNode(topology, { name: config.nodeName, hostIP: config.hostIP, subnet: config.subnet });
    this.subnet = subnet;
    log.info({ subnet: subnet.id, podPrefix: formatPrefix(subnet.podPrefix) }, 'placed in subnet');
    const view = new ClusterView(
      topology,
      this.keys,
      (r) => {
        this.metrics.recordsIgnored.inc({ kind: r.kind, reason: r.cause });
        const suppressed = this.recordLogBudget.take();
        if (suppressed !== undefined) log.warn({ ...r, ...(suppressed > 0 ? { suppressed } : {}) }, 'ignoring record');
      },
      (c) => this.claimRepair.onConflict(c),
      // A node's record and advertisement arrive on two watches: report an unbound advertisement only if it stays so.
      { unboundGraceMs: UNBOUND_GRACE_MS, now: Date.now },
    );
    this.view = view;
    this.unboundTimer = setInterval(() => {
      if (this.synced) view.reportUnbound();
    }, UNBOUND_GRACE_MS / 2);
    this.unboundTimer.unref();
    const withdrawals = new WithdrawHold(config.routes.massWithdrawGrace, log.child({ component: 'damping' }), (nodes) => this.applyDueWithdrawals(view, routes, nodes));
    this.withdrawals = withdrawals;
    const routes = new RouteInputs(view, {
      node: config.nodeName, hostIP: config.hostIP, subnet: subnet.id, iface: config.interface,
      table: config.routes.table, protocol: config.routes.protocol, ownBlocks: config.routes.ownBlocks,
    }, () => this.synced, () => withdrawals.held());
    const healthEndpoint = probeEndpoint(config.http.listen, config.hostIP);
    const vpc = config.vpc.enabled ? await (await import('./vpc/vpc-service.js')).prepareVpc(config, topology, healthEndpoint, log) : undefined;
    this.egress = new EgressController(config, log.child({ component: 'egress' }), this.metrics.registry);
    await this.egress.start(topology);
    this.phase = 'registering';
    if (config.routes.enabled) await this.startRouting(routes);
    else log.warn('routes.enabled is false: no kernel routes will be installed');

    const advertisement = new NodeAdvertisement({
      node: config.nodeName, hostIP: config.hostIP, instanceId: config.instanceId, subnet, healthEndpoint,
      agentVersion: VERSION, keys: this.keys, sink: publisher, log, blockGraceMs: config.ipam.blockGrace,
      onLost: (blocks) => this.lostBlocks?.onLost(blocks),
    });
    this.advertisement = advertisement;
    const startupClaims = new StartupClaims(this.client, this.keys);
    this.ipam = new Ipam({
      topology,
      subnet,
      node: config.nodeName,
      store: new EtcdIpamStore(this.client, this.keys, log.child({ component: 'ipam' })),
      // Block choice reads the watched blocks/ once synced; before, one paged read of it serves start-up's readers.
      claims: { claims: async () => (this.view !== undefined && this.synced ? mirrorClaims(this.view, this.mirrors, this.keys) : (await startupClaims.snapshot()).claims) },
      clock: Date.now,
      addressRestMs: config.ipam.addressRest,
      blockGraceMs: config.ipam.blockGrace,
      beforeRelease: advertisement.beforeRelease,
    });
    this.lostBlocks = new LostBlocks({
      ipam: this.ipam, log, counter: this.metrics.blocksLost, stopping,
      reclaimed: async (blocks) => {
        for (const b of blocks) await advertisement.ensureAdvertised(b);
      },
    });
    // Reads the node's own address records (migrating claims of the old layout first).
    await this.ipam.load();
    // Pods still running on addresses of blocks taken while the node was away: those blocks are not claimed again.
    const programmer = this.programmer;
    if (programmer !== undefined) {
      await guardLocalPods({
        routes: () => programmer.list({ table: config.routes.table, protocol: config.routes.protocol }),
        ipam: this.ipam, log, counter: this.metrics.blocksLost,
      });
    }
    // Claims from before holds existed get their hold, so a rewrite of them is seen from now on.
    const newHolds = await writeMissingHolds(this.client, this.keys, config.nodeName, (await startupClaims.snapshot()).records);
    if (newHolds.length > 0) log.info({ blocks: newHolds }, 'wrote holds for claims that had none');
    // Nothing leased is written before the node holds a block (first-block.ts).
    this.phase = 'claiming a block';
    await holdFirstBlock(this.ipam, {
      log, failures: this.metrics.blockClaimFailures, stopping, setPhase: (reason) => (this.phase = reason),
    });
    // Its identity once it holds a block and before it registers: what it holds can be traced to its instance once its lease is gone.
    this.phase = 'writing the identity record';
    await writeOwnIdentity(this.client, this.keys, { name: config.nodeName, subnet: subnet.id, hostIP: config.hostIP, instanceId: config.instanceId }, log, stopping);
    this.phase = 'registering';
    if (started === undefined) {
      started = await lease.start();
      logStarted(started);
    }
    advertisement.publishNode();
    await advertisement.claim(this.ipam);

    topologyMirror.on('changes', () => {
      const next = readTopology(topologyMirror, this.keys, log);
      if (next === undefined) return;
      view.setTopology(next);
      void this.egress?.setTopology(next);
      this.updateRouteIndex(view, true);
      routes.onChanges([{ topology: true }]);
    });
    // Claims and holds in one watch: a claim and its hold change in one batch.
    const kinds = [[this.keys.nodesPrefix(), 'node'], [this.keys.claimsPrefix(), 'block'], [this.keys.routesPrefix(), 'advertisement']] as const;
    for (const [prefix, kind] of kinds) {
      const mirror = new PrefixMirror(this.client, prefix, log.child({ component: 'watch', prefix }), {
        onOversize: () => this.metrics.recordsIgnored.inc({ kind, reason: 'oversized' }),
        // Peers need a block's claim, never its allocations (older records carry them).
        compact: kind === 'block' ? (_key, value) => compactBlockRecord(value) : undefined,
      });
      mirror.on('changes', (changes) => this.applyChanges(view, routes, advertisement, changes));
      this.mirrors.push(mirror);
    }
    const drains = drainWatchFor(config.vpc.enabled || config.bgp.enabled, {
      client: this.client, keys: this.keys, node: config.nodeName, log: log.child({ component: 'drain' }),
      onIgnored: (reason) => this.metrics.recordsIgnored.inc({ kind: 'drain', reason }),
    }, { markDirty: () => (this.vpc?.markDirty(), this.bgp?.markDirty()), elections: () => [this.vpc?.election, this.bgp?.election] });
    this.drains = drains;
    const standDown = (): boolean => drains?.selfDrained() === true;
    this.phase = 'syncing the cluster view from etcd';
    await Promise.all([...this.mirrors.map((m) => m.start()), drains?.start()]);
    startupClaims.drop();
    this.updateRouteIndex(view, true);
    log.info({ nodes: view.nodes().size, blocks: view.blocks().size, advertisements: view.advertisementCount() }, 'cluster view synced');
    this.vpc = vpc?.({ client: this.client, keys: this.keys, lease, subnet: subnet.id, standDown, registry: this.metrics.registry, cluster: () => this.vpcCluster(view) });
    const vpcService = this.vpc;
    if (vpcService !== undefined) routes.subscribe(() => vpcService.markDirty());
    await vpcService?.start();
    this.collector = await startCollector({
      config, client: this.client, keys: this.keys, lease, log, view, nodes: this.mirrors.find((m) => m.prefix === this.keys.nodesPrefix()),
      synced: () => this.synced, ec2: vpcService?.routes, collected: this.metrics.nodesCollected,
    });
    this.bgp = config.bgp.enabled ? await (await import('./bgp/bgp-service.js')).startBgp({ config, client: this.client, keys: this.keys, lease, subnet: subnet.id, standDown,
      registry: this.metrics.registry, log, onChange: (f) => routes.subscribe(f), cluster: () => this.vpcCluster(view) }) : undefined;
    routes.onChanges([]);
    advertisement.startReclaim();
    if (config.ipam.socket !== '') {
      const host: IpamHost = {
        ipam: this.ipam, nodeName: config.nodeName, subnetId: subnet.id, routeProtocol: config.routes.protocol, routeTable: config.routes.table,
        notReadyReason: () => this.notReadyReason(),
        etcdTrouble: () => this.lease?.trouble,
        etcdTimeoutMs: config.ipam.etcdTimeout,
        ensureAdvertised: (block) => advertisement.ensureAdvertised(block),
      };
      this.ipamService = new IpamService(host, log.child({ component: 'ipam-api' }), this.metrics.ipam);
      await this.ipamService.listen(config.ipam.socket);
      this.ipamService.startUsageRefresh(IPAM_USAGE_REFRESH_MS);
    }
  }

  /** The cluster as the VPC and BGP planners see it; undefined until synced. */
  private vpcCluster(view: ClusterView): ClusterState | undefined {
    return this.synced ? { topology: view.getTopology(), nodes: view.nodes(), blocksByNode: view.blocksByNode(), draining: this.drains?.draining() } : undefined;
  }

  /** Problems that leave the node ready but need attention (shown by /readyz). */
  readyDetails(): string[] {
    const egress = this.egress?.describe();
    return [...(egress === undefined ? [] : [egress]), ...(this.bgp?.problems() ?? [])];
  }

  /** GET /bgp. */
  bgpStatus(): unknown {
    return this.bgp?.status();
  }

  /** True once every watch has completed its first list. */
  get synced(): boolean {
    return this.mirrors.length > 0 && this.mirrors.every((m) => m.synced) && this.drains?.synced !== false;
  }

  private applyChanges(view: ClusterView, routes: RouteInputs, advertisement: NodeAdvertisement, changes: MirrorChange[]): void {
    let blocksChanged = false;
    for (const c of changes) {
      view.apply(c.key, c.type === 'put' ? { value: c.value as string, modRevision: c.modRevision, createRevision: c.createRevision, lease: c.lease } : undefined);
      if (c.key.startsWith(this.keys.claimsPrefix())) blocksChanged = true;
      if (advertisement.owns(c.key)) {
        const entry = this.mirrors.find((m) => c.key.startsWith(m.prefix))?.get(c.key);
        advertisement.verify(c.key, entry === undefined ? undefined : { value: entry.value, lease: entry.lease });
      }
    }
    if (blocksChanged) advertisement.followBlocks(view.blocksOf(this.config.nodeName));
    // Once synced, check the changed records now, so a bad one is reported (log, metric) when it arrives.
    if (this.synced) {
      view.nodes();
      view.advertisements();
    }
    // Before the first sync the index is not fed (an advertisement may precede its blocks): it is filled once synced.
    const delta = this.synced ? this.updateRouteIndex(view, blocksChanged) : undefined;
    if (delta !== undefined && this.agent !== undefined) {
      this.agent.applyChanges(delta);
      this.vpc?.markDirty();
      this.bgp?.markDirty();
    } else {
      routes.onChanges(changes);
    }
  }

  /** Feed the route index what changed in the view; the routes that changed, or undefined without an index. */
  private updateRouteIndex(view: ClusterView, ownBlocksChanged: boolean): RouteDelta | undefined {
    const index = this.routeIndex;
    if (index === undefined) return undefined;
    const delta: RouteDelta = new Map();
    const adverts = view.advertisements();
    for (const node of view.takeChangedAdvertisers()) {
      const a = adverts.get(node);
      if (this.withdrawals?.change(node, a) === false) continue; // held: the index keeps the last advertisement
      mergeDelta(delta, index.setAdvertisement(node, a === undefined ? undefined : { ...a, subnet: a.subnet.id }));
    }
    if (ownBlocksChanged) {
      const subnet = this.subnet?.id;
      mergeDelta(delta, index.setOwnPrefixes(view.blocksOf(this.config.nodeName).filter((b) => b.subnet.id === subnet).map((b) => b.prefix)));
    }
    return delta;
  }

  /** Held withdrawals whose time came: the peers did not come back, their routes go. */
  private applyDueWithdrawals(view: ClusterView, routes: RouteInputs, nodes: readonly string[]): void {
    const index = this.routeIndex;
    const adverts = view.advertisements();
    const delta: RouteDelta = new Map();
    if (index !== undefined) for (const node of nodes) if (!adverts.has(node)) mergeDelta(delta, index.setAdvertisement(node, undefined));
    if (delta.size > 0 && this.agent !== undefined) {
      this.agent.applyChanges(delta);
      this.vpc?.markDirty();
    } else {
      routes.onChanges([], 'held withdrawal applied');
    }
  }

  /**
   * Graceful stop: keepalives end and the node's records are handed to a
   * restart lease (restartHoldTime): peers keep its routes that long while it
   * restarts; a node stopped for good is withdrawn when it ends.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.unboundTimer);
    this.advertisement?.stop();
    this.withdrawals?.stop();
    this.ipamService?.close();
    // The collector before the VPC service: its EC2 calls go through the VPC service's client.
    await this.collector?.stop();
    await this.vpc?.stop();
    this.egress?.stop();
    await this.bgp?.stop();
    this.agent?.stop();
    this.programmer?.close();
    this.http?.close();
    this.publisher?.stop();
    await Promise.all([...this.mirrors, ...(this.topologyMirror ? [this.topologyMirror] : [])].map((m) => m.stop()));
    await this.drains?.stop();
    // Last: the records go to a restart lease, so the next run has restartHoldTime to take them over.
    await this.lease?.handOver(this.publisher?.records() ?? [], this.config.restartHoldTime / 1000);
    this.client.close();
  }
}
