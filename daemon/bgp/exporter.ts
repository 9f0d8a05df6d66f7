// The BGP exporter: keeps the speaker's announcements equal to the plan.
//
// Each pass: desired = the plan (exporter mode: the elected exporter of the
// subnet announces the subnet's routes planned by src/core/bgp-plan.ts under
// the strictest peer limit; tor mode: this node's own blocks), observed = the
// speaker's own paths, then add what is missing or has another next hop (an
// add replaces the path of that prefix, so a move never withdraws first) and
// withdraw prefixes no longer planned. Passes run on cluster, health and
// election changes (coalesced) and every resync interval; peer sessions are
// polled for the metrics, the status and /readyz details.
// Invariants: nothing is announced before the cluster view is synced; a
// follower (exporter mode) announces nothing; at most the peer's limit of
// prefixes leaves the cluster (the planner's guarantee; checked again here).

import type { Logger } from 'pino';
import { formatAddress, formatPrefix, type Prefix } from '../../src/core/cidr.js';
import { planBgpRoutes, planTorRoutes, type BgpPlan, type BgpPlanNode, type BgpRoute } from '../../src/core/bgp-plan.js';
import type { AnnouncedPath, PeerStatus } from '../../src/bgp/gobgp-client.js';
import type { BgpPeer } from '../../src/config/bgp-config.js';
import { describeError } from '../../src/errors.js';
import { planNodes, type ClusterState } from '../vpc/plan-input.js';
import type { BgpMetrics } from './metrics.js';

/** What the exporter needs of the speaker. */
export interface PathSink {
  listOwnPaths(): Promise<AnnouncedPath[]>;
  addPath(prefix: Prefix, nextHop: string, communities: readonly number[]): Promise<void>;
  deletePath(path: AnnouncedPath): Promise<void>;
  peers(): Promise<PeerStatus[]>;
}

export interface ExporterOptions {
  readonly mode: 'exporter' | 'tor';
  readonly node: string;
  readonly subnet: string;
  readonly hostIP: string;
  readonly peers: readonly BgpPeer[];
  /** ASN << 16 | value. */
  readonly communities: readonly number[];
  readonly speaker: PathSink;
  readonly cluster: () => ClusterState | undefined;
  /** Exporter mode: is this node the subnet's elected exporter now. */
  readonly leader: () => boolean;
  /** Health of a forwarder of this subnet. */
  readonly healthy: (node: string) => boolean;
  readonly metrics: BgpMetrics;
  readonly log: Logger;
  readonly resyncMs?: number;
  readonly pollMs?: number;
}

export interface BgpStatus {
  readonly node: string;
  readonly subnet: string;
  readonly mode: string;
  readonly announcing: boolean;
  readonly peers: ReadonlyArray<PeerStatus & { maxPrefixes: number }>;
  readonly announced: ReadonlyArray<{ prefix: string; nextHop: string }>;
  /** Prefixes the whole cluster announces (exporter mode) and the limit they fit. */
  readonly budget: { readonly used: number; readonly maxPrefixes: number };
  readonly uncovered: readonly string[];
  readonly lastError: string;
}

/** Nodes for the BGP planner: planNodes with the host IP as the forwarder's id. */
export function bgpPlanNodes(cluster: ClusterState, subnet: string, healthy: (n: string) => boolean): BgpPlanNode[] {
  const nodes = new Map([...cluster.nodes].map(([name, n]) => [name, { ...n, instanceId: formatAddress(n.hostIP) }]));
  return planNodes({ ...cluster, nodes }, subnet, healthy).map((n) => ({ name: n.name, subnet: n.subnet, hostIP: n.instanceId, blocks: n.blocks, healthy: n.healthy, draining: n.draining }));
}

export class BgpExporter {
  private dirty = true;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastPlan: BgpPlan | undefined;
  private announced: AnnouncedPath[] = [];
  private peerState: PeerStatus[] = [];
  private lastError = '';
  readonly maxPrefixes: number;
  private readonly multipath: number;

  constructor(private readonly options: ExporterOptions) {
    this.maxPrefixes = Math.min(...options.peers.map((p) => p.maxPrefixes));
    this.multipath = Math.min(...options.peers.map((p) => p.multipath));
  }

  start(): void {
    this.timer = setInterval(() => this.markDirty(), this.options.resyncMs ?? 30_000);
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? 2_000);
    this.markDirty();
    void this.poll();
  }

  markDirty(): void {
    this.dirty = true;
    if (this.running !== undefined || this.stopped) return;
    this.running = (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.pass();
      }
    })().finally(() => (this.running = undefined));
  }

  /** The routes this node should announce now. */
  desired(): BgpRoute[] | undefined {
    const { options } = this;
    const cluster = options.cluster();
    if (cluster === undefined) return undefined;
    if (options.mode === 'tor') {
      const own = bgpPlanNodes(cluster, options.subnet, () => true).find((n) => n.name === options.node);
      if (own === undefined) return [];
      const tor = planTorRoutes(own, cluster.topology, this.maxPrefixes);
      if (tor.dropped.length > 0) this.lastError = `${tor.dropped.length} own prefixes over the peer limit ${this.maxPrefixes}: ${tor.dropped.map(formatPrefix).join(', ')}`;
      return tor.routes;
    }
    if (!options.leader()) return [];
    const nodes = bgpPlanNodes(cluster, options.subnet, options.healthy);
    const current = this.announced.map((a) => ({ prefix: a.prefix, nextHop: a.nextHop }));
    const plan = planBgpRoutes({ topology: cluster.topology, nodes, maxPrefixes: this.maxPrefixes, subnets: [options.subnet], multipath: this.multipath, current });
    this.lastPlan = plan;
    return [...plan.routes];
  }

  private async pass(): Promise<void> {
    const { speaker, log, metrics, communities } = this.options;
    try {
      metrics.leader.set(this.options.mode === 'tor' || this.options.leader() ? 1 : 0);
      const desired = this.desired();
      if (desired === undefined) return;
      const observed = await speaker.listOwnPaths();
      const have = new Map(observed.map((p) => [formatPrefix(p.prefix), p]));
      const want = new Map(desired.map((r) => [formatPrefix(r.prefix), r]));
      for (const [key, route] of want) {
        const hop = route.nextHops[0] as string;
        if (have.get(key)?.nextHop === hop) continue;
        await speaker.addPath(route.prefix, hop, communities);
        metrics.pathChanges.inc({ action: 'add' });
        log.info({ prefix: key, nextHop: hop, was: have.get(key)?.nextHop }, 'announcing');
      }
      for (const [key, path] of have) {
        if (want.has(key)) continue;
        await speaker.deletePath(path);
        metrics.pathChanges.inc({ action: 'withdraw' });
        log.info({ prefix: key, nextHop: path.nextHop }, 'withdrawing');
      }
      this.announced = desired.map((r) => ({ prefix: r.prefix, nextHop: r.nextHops[0] as string }));
      metrics.passes.inc({ result: 'ok' });
      if (this.options.mode === 'exporter') this.lastError = '';
    } catch (err) {
      this.lastError = describeError(err);
      metrics.passes.inc({ result: 'error' });
      log.warn({ err: this.lastError }, 'BGP pass failed; retrying');
      setTimeout(() => this.markDirty(), 2000).unref();
    }
  }

  private async poll(): Promise<void> {
    try {
      const peers = await this.options.speaker.peers();
      const { metrics, log } = this.options;
      for (const p of peers) {
        const was = this.peerState.find((q) => q.address === p.address);
        if (was !== undefined && was.state !== p.state) log.info({ peer: p.address, from: was.state, to: p.state }, 'BGP session state');
        metrics.peerUp.set({ peer: p.address }, p.state === 'established' ? 1 : 0);
        metrics.announced.set({ peer: p.address }, p.advertised);
        metrics.flaps.set({ peer: p.address }, p.flops);
        metrics.budget.set({ peer: p.address }, this.options.peers.find((q) => q.address === p.address)?.maxPrefixes ?? 0);
      }
      this.peerState = peers;
    } catch (err) {
      this.options.log.warn({ err: describeError(err) }, 'cannot read BGP sessions from the speaker');
      this.peerState = [];
    }
  }

  /** Peers whose session is not established, for /readyz (which stays ready: pods still route inside the cluster). */
  problems(): string[] {
    const out: string[] = [];
    for (const p of this.options.peers) {
      const s = this.peerState.find((q) => q.address === p.address);
      if (s?.state !== 'established') out.push(`bgp peer ${p.address} (AS ${p.asn}): session ${s?.state ?? 'unknown'}${s?.adminState === 'pfx_ct' ? ', prefix limit reached' : ''}`);
    }
    if (this.lastError !== '') out.push(`bgp: ${this.lastError}`);
    return out;
  }

  status(): BgpStatus {
    const plan = this.lastPlan;
    return {
      node: this.options.node,
      subnet: this.options.subnet,
      mode: this.options.mode,
      announcing: this.options.mode === 'tor' || this.options.leader(),
      peers: this.peerState.map((p) => ({ ...p, maxPrefixes: this.options.peers.find((q) => q.address === p.address)?.maxPrefixes ?? 0 })),
      announced: this.announced.map((a) => ({ prefix: formatPrefix(a.prefix), nextHop: a.nextHop })),
      budget: { used: this.options.mode === 'tor' ? this.announced.length : (plan?.clusterRoutes ?? 0), maxPrefixes: this.maxPrefixes },
      uncovered: (plan?.uncovered ?? []).map((u) => u.message),
      lastError: this.lastError,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.pollTimer);
    await this.running;
  }
}
