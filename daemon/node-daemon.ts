// trellisd's wiring: configuration → etcd adapters → controllers.
//
// Start-up order (each step waits for the one before):
//   etcd reachable → topology present and valid → node placed in its subnet →
//   lease granted or re-attached → node record published → at least one block
//   claimed → advertisement published → watches of nodes/, blocks/ and routes/
//   synced (the cluster view is then complete). The first (paged) lists of
//   those watches, and the kernel route watch, start once the node is placed
//   and run during registration; no route pass runs before both are done.
// The advertisement always equals the aggregate of the blocks the block
// records in etcd assign to this node, so a block claimed by any component
// is advertised as soon as its record is seen.
// A graceful stop leaves the lease to expire by itself (a restart within the
// hold time re-attaches to it); only `withdraw` removes the node at once.

import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { aggregate, formatPrefix, parsePrefix } from '../src/core/cidr.js';
import { Ipam } from '../src/core/ipam.js';
import { placeNode } from '../src/core/ipam-placement.js';
import type { Subnet, Topology } from '../src/core/topology.js';
import { connectEtcd, explainEtcdError, type EtcdSettings } from '../src/etcd/client.js';
import { EtcdIpamStore } from '../src/etcd/ipam-store.js';
import { LeaseKeeper } from '../src/etcd/lease-keeper.js';
import { PrefixMirror, type MirrorChange } from '../src/etcd/prefix-mirror.js';
import { Publisher } from './publisher.js';
import { AdvertisementSchema, NodeSchema } from '../src/gen/trellis/v1/records_pb.js';
import { ClusterView } from '../src/state/cluster-view.js';
import { compactBlockRecord } from '../src/state/block-claim.js';
import { Keys } from '../src/state/keys.js';
import { makeRecord, msToTimestamp } from '../src/state/records.js';
import { decodeStoredTopology } from '../src/state/topology-record.js';
import { probeEndpoint } from '../src/core/endpoints.js';
import type { TrellisConfig } from '../src/config/load.js';
import { VERSION } from '../src/version.js';
import { desiredRoutes, isPodRoute } from '../src/core/desired-routes.js';
import type { KernelRoute } from '../src/core/route.js';
import { Metrics } from './metrics.js';
import { RouteAgent } from './route-agent.js';
import { mergeDelta, RouteIndex, type RouteDelta } from '../src/core/route-index.js';
import { RouteProgrammer } from '../src/netlink/route-programmer.js';
import { parseAddress } from '../src/core/cidr.js';
import type { Server } from 'node:http';
import { startHttpServer } from './http-server.js';
import { OwnBlocks } from '../src/core/own-blocks.js';
import { IpamService, type IpamHost } from './ipam-service.js';
import type { VpcService } from './vpc/vpc-service.js';

export function etcdSettings(config: TrellisConfig): EtcdSettings {
  return {
    endpoints: config.etcd.endpoints,
    tls: config.etcd.tls,
    username: config.etcd.username,
    password: config.etcd.password,
    requestTimeoutMs: config.etcd.requestTimeout,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class NodeDaemon implements IpamHost {
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
  private readonly own = new OwnBlocks();
  private ipamService: IpamService | undefined;
  private reclaimTimer: NodeJS.Timeout | undefined;
  /** VPC mode (vpc.enabled): this subnet's advertiser election and advertiser. */
  vpc: VpcService | undefined;

  constructor(
    readonly config: TrellisConfig,
    readonly log: Logger,
  ) {
    this.keys = new Keys(config.etcd.prefix);
    this.client = connectEtcd(etcdSettings(config));
  }

  get leaseKeeper(): LeaseKeeper | undefined {
    return this.lease;
  }

  /** Retry the first etcd round trip with backoff until it works (or we are stopped). */
  private async waitForEtcd(): Promise<void> {
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.client.get(this.keys.topology()).exec();
        return;
      } catch (err) {
        if (this.stopping) throw err;
        this.log.warn({ err: explainEtcdError(err, etcdSettings(this.config)).message }, 'waiting for etcd');
        await sleep(delay);
      }
    }
  }

  private readTopology(mirror: PrefixMirror): Topology | undefined {
    const entry = mirror.get(this.keys.topology());
    if (entry === undefined) return undefined;
    const checked = decodeStoredTopology(entry.value);
    if (!checked.ok) {
      this.log.error({ reason: checked.reason }, 'stored topology is invalid; keeping the last valid one');
      return undefined;
    }
    return checked.value;
  }

  private async waitForTopology(): Promise<Topology> {
    const mirror = new PrefixMirror(this.client, this.keys.topology(), this.log.child({ component: 'topology' }));
    this.topologyMirror = mirror;
    await mirror.start();
    let warned = false;
    for (;;) {
      const topology = this.readTopology(mirror);
      if (topology !== undefined) return topology;
      if (!warned) {
        this.log.warn({ key: this.keys.topology() }, 'waiting for a topology: run "trellisctl topology apply FILE"');
        warned = true;
      }
      await new Promise<void>((resolve) => mirror.once('changes', () => resolve()));
      if (this.stopping) throw new Error('stopped while waiting for a topology');
    }
  }

  /** undefined when ready; otherwise what is missing (for /readyz). */
  notReadyReason(): string | undefined {
    if (!this.synced) return this.phase;
    if (this.agent !== undefined && !this.agent.ready) return 'first reconcile of kernel routes not done';
    return undefined;
  }

  private wireMetrics(): void {
    this.metrics.setSources({
      lastFullSyncAgeMs: () => (this.agent?.lastFullSync === undefined ? undefined : Date.now() - this.agent.lastFullSync),
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

  /** The routes this node wants, or undefined until the view from etcd is complete. */
  private computeRoutes(): KernelRoute[] | undefined {
    const view = this.view;
    const subnet = this.subnet;
    if (view === undefined || subnet === undefined || !this.synced) return undefined;
    const { config } = this;
    const own = view.blocksOf(config.nodeName).filter((b) => b.subnet.id === subnet.id).map((b) => b.prefix);
    return desiredRoutes({
      self: config.nodeName,
      selfIP: parseAddress(config.hostIP),
      subnet: subnet.id,
      iface: config.interface,
      table: config.routes.table,
      protocol: config.routes.protocol,
      ownBlocks: config.routes.ownBlocks,
      advertisements: [...view.advertisements().values()].map((a) => ({ ...a, subnet: a.subnet.id })),
      ownPrefixes: own,
    });
  }

  private async startRouting(): Promise<void> {
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
    this.agent = new RouteAgent({
      programmer: this.programmer,
      compute: () => this.computeRoutes(),
      keep: (r) => isPodRoute(r, config.routes.protocol, config.interface),
      table: config.routes.table,
      protocol: config.routes.protocol,
      resyncMs: config.routes.resyncInterval,
      log: log.child({ component: 'routes' }),
      metrics: this.metrics,
    });
    await this.agent.start();
  }

  private onViewChange(): void {
    this.agent?.markDirty('etcd change');
    this.vpc?.markDirty();
  }

  async start(): Promise<void> {
    const { config, log } = this;
    this.wireMetrics();
    if (config.http.listen !== '') {
      this.http = await startHttpServer(config.http.listen, this.metrics, this, log.child({ component: 'http' }));
    }
    this.phase = 'waiting for etcd';
    await this.waitForEtcd();
    this.phase = 'waiting for a topology in etcd';
    const topology = await this.waitForTopology();
    const subnet = placeNode(topology, { name: config.nodeName, hostIP: config.hostIP, subnet: config.subnet });
    this.subnet = subnet;
    log.info({ subnet: subnet.id, podPrefix: formatPrefix(subnet.podPrefix) }, 'placed in subnet');
    const vpc = config.vpc.enabled ? await (await import('./vpc/vpc-service.js')).prepareVpc(config, topology, probeEndpoint(config.http.listen, config.hostIP), log) : undefined;
    this.phase = 'registering';
    // The first lists of nodes/, blocks/ and routes/ run while this node registers.
    const syncing = this.startClusterView(topology);
    syncing.catch(() => undefined); // awaited below; a failure is reported there
    // The kernel route watch (a child process) starts while this node registers, too.
    const routing = config.routes.enabled ? this.startRouting() : Promise.resolve();
    routing.catch(() => undefined); // awaited below; a failure is reported there
    if (!config.routes.enabled) log.warn('routes.enabled is false: no kernel routes will be installed');

    const lease = new LeaseKeeper(this.client, {
      ttlSeconds: config.holdTime / 1000,
      stateFile: join(config.stateDir, 'lease.json'),
      log: log.child({ component: 'lease' }),
    });
    this.lease = lease;
    const publisher = new Publisher(this.client, lease, log.child({ component: 'publisher' }));
    this.publisher = publisher;
    const started = await lease.start();
    log.info({ reattached: started.reattached }, started.reattached ? 'kept the lease of the previous run' : 'new lease');
    publisher.setNode(
      this.keys.node(config.nodeName),
      makeRecord(NodeSchema, {
        name: config.nodeName,
        subnet: subnet.id,
        zone: subnet.zone,
        hostIp: config.hostIP,
        instanceId: config.instanceId,
        healthEndpoint: probeEndpoint(this.config.http.listen, this.config.hostIP),
        startedAt: msToTimestamp(Date.now()),
        agentVersion: VERSION,
      }),
    );

    this.ipam = new Ipam({
      topology,
      subnet,
      node: config.nodeName,
      store: new EtcdIpamStore(this.client, this.keys, log.child({ component: 'ipam' })),
      clock: Date.now,
      addressRestMs: config.ipam.addressRest,
      blockGraceMs: config.ipam.blockGrace,
      beforeRelease: async (block) => {
        this.own.release(block);
        this.advertiseOwn();
        await this.publisher?.flush();
      },
    });
    const blocks = await this.ipam.ensureBlock();
    log.info({ blocks }, 'holding blocks');
    this.own.setView(blocks);
    this.advertiseOwn();
    await publisher.flush();

    this.phase = 'syncing the cluster view from etcd';
    await Promise.all([syncing, routing]);
    const view = this.view as ClusterView;
    log.info({ nodes: view.nodes().size, blocks: view.blocks().size, advertisements: view.advertisementCount() }, 'cluster view synced');
    this.vpc = vpc?.({ client: this.client, keys: this.keys, lease, subnet: subnet.id, registry: this.metrics.registry,
      cluster: () => (this.synced ? { topology: view.getTopology(), nodes: view.nodes(), blocksByNode: view.blocksByNode() } : undefined) });
    await this.vpc?.start();
    this.onViewChange();
    const reclaimEvery = Math.max(1000, Math.min(60_000, config.ipam.blockGrace / 4));
    this.reclaimTimer = setInterval(() => void this.reclaim(), reclaimEvery);
    this.reclaimTimer.unref?.();
    if (config.ipam.socket !== '') {
      this.ipamService = new IpamService(this, log.child({ component: 'ipam-api' }));
      await this.ipamService.listen(config.ipam.socket);
    }
  }

  /** Create the cluster view and its mirrors; resolves when every mirror has listed once. */
  private startClusterView(topology: Topology): Promise<void> {
    const { log } = this;
    const view = new ClusterView(topology, this.keys, (r) => {
      log.warn(r, 'ignoring record');
      this.metrics.recordsIgnored.inc({ kind: r.kind, reason: r.cause });
    });
    this.view = view;
    this.topologyMirror?.on('changes', () => {
      const next = this.topologyMirror === undefined ? undefined : this.readTopology(this.topologyMirror);
      if (next !== undefined) {
        view.setTopology(next);
        this.updateRouteIndex(true);
        this.onViewChange();
      }
    });
    const kinds = [[this.keys.nodesPrefix(), 'node'], [this.keys.blocksPrefix(), 'block'], [this.keys.routesPrefix(), 'advertisement']] as const;
    for (const [prefix, kind] of kinds) {
      const mirror = new PrefixMirror(this.client, prefix, log.child({ component: 'watch', prefix }), {
        onOversize: () => this.metrics.recordsIgnored.inc({ kind, reason: 'oversized' }),
        // Peers need a block's claim, never its allocations (older records carry them).
        compact: kind === 'block' ? (_key, value) => compactBlockRecord(value) : undefined,
      });
      mirror.on('changes', (changes) => this.applyChanges(changes));
      this.mirrors.push(mirror);
    }
    return Promise.all(this.mirrors.map((m) => m.start())).then(() => undefined);
  }

  /** True once every watch has completed its first list. */
  get synced(): boolean {
    return this.mirrors.length > 0 && this.mirrors.every((m) => m.synced);
  }

  private applyChanges(changes: MirrorChange[]): void {
    const view = this.view;
    if (view === undefined) return;
    let ownBlocksChanged = false;
    const ownKeys = new Set([this.keys.node(this.config.nodeName), this.ownRouteKey()]);
    for (const c of changes) {
      view.apply(c.key, c.type === 'put' ? { value: c.value as string, modRevision: c.modRevision } : undefined);
      if (c.key.startsWith(this.keys.blocksPrefix())) ownBlocksChanged = true;
      if (ownKeys.has(c.key)) {
        const entry = this.mirrors.find((m) => c.key.startsWith(m.prefix))?.get(c.key);
        this.publisher?.verify(c.key, entry === undefined ? undefined : { value: entry.value, lease: entry.lease });
      }
    }
    if (ownBlocksChanged) {
      const mine = view.blocksOf(this.config.nodeName);
      if (this.own.setView(mine.filter((b) => b.subnet.id === this.subnet?.id).map((b) => formatPrefix(b.prefix)))) this.advertiseOwn();
    }
    // Once synced, check the changed records now, so a bad one is reported (log, metric) when it
    // arrives (before, an advertisement may simply precede its block records in the first lists).
    if (this.synced) {
      view.nodes();
      view.advertisements();
    }
    // Before the first sync the index is not fed (an advertisement may precede its blocks): it is filled once synced.
    const delta = this.synced ? this.updateRouteIndex(ownBlocksChanged) : undefined;
    if (delta !== undefined) this.agent?.applyChanges(delta);
    else this.agent?.markDirty('etcd change');
    this.vpc?.markDirty();
  }

  /** Feed the route index what changed in the view; the routes that changed, or undefined without an index. */
  private updateRouteIndex(ownBlocksChanged: boolean): RouteDelta | undefined {
    const index = this.routeIndex;
    const view = this.view;
    if (index === undefined || view === undefined) return undefined;
    const delta: RouteDelta = new Map();
    const adverts = view.advertisements();
    for (const node of view.takeChangedAdvertisers()) {
      const a = adverts.get(node);
      mergeDelta(delta, index.setAdvertisement(node, a === undefined ? undefined : { ...a, subnet: a.subnet.id }));
    }
    if (ownBlocksChanged) {
      const subnet = this.subnet?.id;
      mergeDelta(delta, index.setOwnPrefixes(view.blocksOf(this.config.nodeName).filter((b) => b.subnet.id === subnet).map((b) => b.prefix)));
    }
    return delta;
  }

  private ownRouteKey(): string {
    return this.keys.route(this.subnet?.id ?? '', this.config.nodeName);
  }

  /** IpamHost: resolves once `block` is in the published advertisement. */
  async ensureAdvertised(block: string): Promise<void> {
    this.own.claim(block);
    this.advertiseOwn();
    await this.publisher?.flush();
  }

  get nodeName(): string {
    return this.config.nodeName;
  }

  get subnetId(): string | undefined {
    return this.subnet?.id;
  }

  get routeProtocol(): number {
    return this.config.routes.protocol;
  }

  get routeTable(): number {
    return this.config.routes.table;
  }

  /** Give back blocks that stayed empty for the grace period (never the last one). */
  private async reclaim(): Promise<void> {
    const ipam = this.ipam;
    if (ipam === undefined) return;
    const before = new Set(this.own.current());
    try {
      const released = await ipam.releaseEmptyBlocks();
      if (released.length > 0) this.log.info({ released }, 'gave empty blocks back to the subnet');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'giving back empty blocks failed');
    }
    // A block withdrawn for release that is still ours (lost race, error) is advertised again.
    const records = new Set(await ipam.listBlocks().catch(() => [...before]));
    for (const b of before) if (records.has(b)) this.own.keep(b);
    this.advertiseOwn();
  }

  private advertiseOwn(): void {
    const blocks = this.own.current();
    if (blocks.length > 0) this.advertise(blocks);
  }

  private advertise(blocks: readonly string[]): void {
    const subnet = this.subnet as Subnet;
    this.publisher?.setAdvertisement(
      this.ownRouteKey(),
      makeRecord(AdvertisementSchema, {
        node: this.config.nodeName,
        subnet: subnet.id,
        nextHop: this.config.hostIP,
        prefixes: aggregate(blocks.map((b) => parsePrefix(b))).map(formatPrefix),
        instanceId: this.config.instanceId,
      }),
    );
  }

  /** Graceful stop: keepalives end, the lease expires by itself unless we come back in time. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reclaimTimer !== undefined) clearInterval(this.reclaimTimer);
    this.ipamService?.close();
    await this.vpc?.stop();
    this.agent?.stop();
    this.programmer?.close();
    this.http?.close();
    this.publisher?.stop();
    this.lease?.stop();
    await Promise.all([...this.mirrors, ...(this.topologyMirror ? [this.topologyMirror] : [])].map((m) => m.stop()));
    this.client.close();
  }
}
