// The BGP exporter: keeps the speaker's announcements equal to the plan.
//
// Each pass: one plan per peer (exporter mode: the elected exporter of the
// subnet announces the subnet's routes planned by src/core/bgp-plan.ts under
// that peer's maxPrefixes and multipath; tor mode: this node's own blocks
// under that peer's limit), merged into tagged paths (src/core/bgp-paths.ts),
// compared with the speaker's own paths: changed paths are added under a
// fresh identifier before the old ones are deleted, so a move never
// withdraws first. The speaker's export filter (speaker.ts) sends each peer
// the paths carrying its tag only. Passes run on cluster, health and election
// changes (coalesced) and every resync interval; peer sessions are polled for
// the metrics, the status and /readyz details.
// Invariants: nothing is announced before the cluster view is synced; a
// follower (exporter mode) announces nothing; at most a peer's limit of
// prefixes leaves the cluster for that peer (the planner's guarantee; checked
// again here); a peer's password never appears in a status or a message.

import type { Logger } from 'pino';
import { formatAddress, formatPrefix } from '../../src/core/cidr.js';
import { planBgpRoutes, planTorRoutes, type BgpPlan, type BgpPlanNode } from '../../src/core/bgp-plan.js';
import { diffPaths, FIRST_HOP_PREF, mergePeerPlans, type OwnPath, type PeerPlan } from '../../src/core/bgp-paths.js';
import type { AnnouncedPath, LargeCommunity, PeerStatus } from '../../src/bgp/gobgp-client.js';
import type { BgpPeer } from '../../src/config/bgp-config.js';
import { describeError } from '../../src/errors.js';
import { planNodes, type ClusterState } from '../vpc/plan-input.js';
import type { BgpMetrics } from './metrics.js';

/** What the exporter needs of the speaker. */
export interface PathSink {
  listOwnPaths(): Promise<AnnouncedPath[]>;
  addPath(path: AnnouncedPath, communities: readonly number[]): Promise<void>;
  deletePath(path: AnnouncedPath): Promise<void>;
  peers(): Promise<PeerStatus[]>;
}

export interface ExporterOptions {
  readonly mode: 'exporter' | 'tor';
  readonly node: string;
  readonly subnet: string;
  readonly hostIP: string;
  /** Our AS: the global administrator of the peer tags. */
  readonly asn: number;
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

/** Marks a large community as a peer tag of ours: [our AS, TAG_MARK, peer position + 1]. */
export const TAG_MARK = 0x7472;

export function peerTag(asn: number, peer: number): LargeCommunity {
  return [asn, TAG_MARK, peer + 1];
}

export interface PeerView extends PeerStatus {
  readonly maxPrefixes: number;
  readonly multipath: number;
  /** Prefixes the whole cluster announces to this peer (exporter mode), or this node (tor mode). */
  readonly used: number;
  /** What this node sends the peer: prefix → next hops. */
  readonly routes: ReadonlyArray<{ prefix: string; nextHops: string[] }>;
}

export interface BgpStatus {
  readonly node: string;
  readonly subnet: string;
  readonly mode: string;
  readonly announcing: boolean;
  readonly peers: readonly PeerView[];
  /** Every path this node announces (to one peer or more). */
  readonly announced: ReadonlyArray<{ prefix: string; nextHop: string }>;
  /** The strictest peer: prefixes it is sent by the whole cluster (exporter mode) and its limit. */
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
  /** Last plan per peer position (exporter mode). */
  private lastPlans = new Map<number, BgpPlan>();
  private announced: OwnPath[] = [];
  /** What each peer is sent now, by peer position. */
  private perPeer: ReadonlyMap<number, ReadonlyArray<{ prefix: string; nextHops: string[] }>> = new Map();
  private peerState: PeerStatus[] = [];
  private lastError = '';
  /** The strictest peer limit. */
  readonly maxPrefixes: number;

  constructor(private readonly options: ExporterOptions) {
    this.maxPrefixes = Math.min(...options.peers.map((p) => p.maxPrefixes));
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

  /** The routes this node should send each peer now (by peer position). */
  desired(): PeerPlan[] | undefined {
    const { options } = this;
    const cluster = options.cluster();
    if (cluster === undefined) return undefined;
    if (options.mode === 'tor') {
      const own = bgpPlanNodes(cluster, options.subnet, () => true).find((n) => n.name === options.node);
      if (own === undefined) return [];
      const errors: string[] = [];
      const plans = options.peers.map((peer, i) => {
        const tor = planTorRoutes(own, cluster.topology, peer.maxPrefixes);
        if (tor.dropped.length > 0) errors.push(`${tor.dropped.length} own prefixes over the limit ${peer.maxPrefixes} of peer ${peer.address}: ${tor.dropped.map(formatPrefix).join(', ')}`);
        return { peer: i, multipath: 1, routes: tor.routes };
      });
      this.lastError = errors.join('; ');
      return plans;
    }
    if (!options.leader()) {
      this.lastPlans = new Map();
      return [];
    }
    const nodes = bgpPlanNodes(cluster, options.subnet, options.healthy);
    const plans: PeerPlan[] = [];
    const byBudget = new Map<string, BgpPlan>();
    for (const [i, peer] of options.peers.entries()) {
      // Peers with the same limits get the same plan (ties kept by the first one's announcements).
      const key = `${peer.maxPrefixes}/${peer.multipath}`;
      let plan = byBudget.get(key);
      if (plan === undefined) {
        const current = this.announced.filter((a) => a.peers.includes(i) && a.localPref === FIRST_HOP_PREF).map((a) => ({ prefix: a.prefix, nextHop: a.nextHop }));
        plan = planBgpRoutes({ topology: cluster.topology, nodes, maxPrefixes: peer.maxPrefixes, subnets: [options.subnet], multipath: peer.multipath, current });
        if (plan.clusterRoutes > peer.maxPrefixes) throw new Error(`plan for ${peer.address}: ${plan.clusterRoutes} prefixes over its limit ${peer.maxPrefixes}`);
        byBudget.set(key, plan);
      }
      this.lastPlans.set(i, plan);
      plans.push({ peer: i, multipath: peer.multipath, routes: plan.routes });
    }
    return plans;
  }

  private toSpeaker(p: OwnPath): AnnouncedPath {
    return { prefix: p.prefix, nextHop: p.nextHop, identifier: p.identifier, localPref: p.localPref, largeCommunities: p.peers.map((i) => peerTag(this.options.asn, i)) };
  }

  private fromSpeaker(p: AnnouncedPath): OwnPath {
    const peers = p.largeCommunities.filter(([g, mark]) => g === this.options.asn && mark === TAG_MARK).map(([, , i]) => i - 1).sort((a, b) => a - b);
    return { prefix: p.prefix, nextHop: p.nextHop, identifier: p.identifier, localPref: p.localPref, peers };
  }

  private async pass(): Promise<void> {
    const { speaker, log, metrics, communities } = this.options;
    try {
      metrics.leader.set(this.options.mode === 'tor' || this.options.leader() ? 1 : 0);
      const plans = this.desired();
      if (plans === undefined) return;
      const want = mergePeerPlans(plans);
      const have = (await speaker.listOwnPaths()).map((p) => this.fromSpeaker(p));
      const changes = diffPaths(have, want);
      for (const path of changes.add) {
        await speaker.addPath(this.toSpeaker(path), communities);
        metrics.pathChanges.inc({ action: 'add' });
        log.info({ prefix: formatPrefix(path.prefix), nextHop: path.nextHop, id: path.identifier, peers: path.peers.map((i) => this.options.peers[i]?.address) }, 'announcing');
      }
      for (const path of changes.remove) {
        await speaker.deletePath(this.toSpeaker(path));
        metrics.pathChanges.inc({ action: 'withdraw' });
        log.info({ prefix: formatPrefix(path.prefix), nextHop: path.nextHop, id: path.identifier }, 'withdrawing');
      }
      this.announced = [...have.filter((h) => !changes.remove.includes(h)), ...changes.add];
      this.perPeer = changes.perPeer;
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
    const { options } = this;
    const order = (a: PeerStatus): number => options.peers.findIndex((q) => q.address === a.address);
    // In bgp.peers order.
    const views: PeerView[] = [...this.peerState].sort((a, b) => order(a) - order(b)).map((p) => {
      const i = options.peers.findIndex((q) => q.address === p.address);
      const peer = options.peers[i];
      const routes = this.perPeer.get(i) ?? [];
      const plan = this.lastPlans.get(i);
      return {
        ...p,
        maxPrefixes: peer?.maxPrefixes ?? 0,
        multipath: peer?.multipath ?? 1,
        used: options.mode === 'tor' ? routes.length : (plan?.clusterRoutes ?? 0),
        routes: routes.map((r) => ({ prefix: r.prefix, nextHops: [...r.nextHops] })),
      };
    });
    const strictest = options.peers.findIndex((p) => p.maxPrefixes === this.maxPrefixes);
    const used = options.mode === 'tor' ? (this.perPeer.get(strictest)?.length ?? 0) : (this.lastPlans.get(strictest)?.clusterRoutes ?? 0);
    const uncovered = new Set([...this.lastPlans.values()].flatMap((plan) => plan.uncovered.map((u) => u.message)));
    return {
      node: options.node,
      subnet: options.subnet,
      mode: options.mode,
      announcing: options.mode === 'tor' || options.leader(),
      peers: views,
      announced: this.announced.map((a) => ({ prefix: formatPrefix(a.prefix), nextHop: a.nextHop })),
      budget: { used, maxPrefixes: this.maxPrefixes },
      uncovered: [...uncovered],
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
