// The inputs of route programming: the cluster view plus this node's routing
// settings, turned into the kernel routes this node wants, and the
// notifications that tell the consumers (route agent, VPC advertiser) the
// view changed.
//
// This is the seam for desired-route computation: today desired() recomputes
// the whole list from the view on every call, and onChanges() only marks the
// consumers dirty; an incremental computation keeps the same surface and
// uses the changed keys onChanges() receives.
// Invariants:
//  * desired() is undefined until the view is synced (every watch has
//    completed its first list), so nothing is removed from the kernel on an
//    incomplete view.
//  * A peer whose withdrawal is held (mass-withdrawal damping) is routed as
//    if its last advertisement were still in the view.
//  * Every change applied to the view, and every topology change, is followed
//    by onChanges(), which marks every consumer dirty once.

import { parseAddress } from '../src/core/cidr.js';
import { desiredRoutes, isPodRoute, type OwnBlocksRoute } from '../src/core/desired-routes.js';
import type { KernelRoute } from '../src/core/route.js';
import type { AdvertisementInfo, BlockInfo } from '../src/state/validate.js';

/** What the route inputs read of the cluster view (ClusterView fits). */
export interface RouteView {
  blocksByNode(): ReadonlyMap<string, readonly BlockInfo[]>;
  advertisements(): ReadonlyMap<string, AdvertisementInfo>;
}

export interface RouteSettings {
  readonly node: string;
  readonly hostIP: string;
  readonly subnet: string;
  /** Interface the routes leave by. */
  readonly iface: string;
  readonly table: number;
  readonly protocol: number;
  /** routes.ownBlocks: how this node's own blocks are routed locally. */
  readonly ownBlocks: OwnBlocksRoute;
}

/** One changed record key (a mirror change), or a topology change. */
export type RouteInputChange = { readonly key: string } | { readonly topology: true };

export class RouteInputs {
  private readonly consumers: Array<(reason: string) => void> = [];

  constructor(
    private readonly view: RouteView,
    private readonly settings: RouteSettings,
    /** Whether the view is complete (every watch synced). */
    private readonly synced: () => boolean,
    /** Advertisements gone from the view whose withdrawal is held (daemon/withdraw-hold.ts): still routed. */
    private readonly held: () => ReadonlyMap<string, AdvertisementInfo> = () => new Map(),
  ) {}

  /** Adds a consumer, marked dirty after every change. */
  subscribe(markDirty: (reason: string) => void): void {
    this.consumers.push(markDirty);
  }

  /** The view changed (records applied, or the topology replaced): consumers run again. */
  onChanges(changes: readonly RouteInputChange[], reason = 'etcd change'): void {
    void changes; // a full recompute needs no keys; an incremental one will
    for (const markDirty of this.consumers) markDirty(reason);
  }

  /** The routes this node wants, or undefined until the view from etcd is complete. */
  desired(): KernelRoute[] | undefined {
    if (!this.synced()) return undefined;
    const s = this.settings;
    const own = (this.view.blocksByNode().get(s.node) ?? []).filter((b) => b.subnet.id === s.subnet).map((b) => b.prefix);
    return desiredRoutes({
      self: s.node,
      selfIP: parseAddress(s.hostIP),
      subnet: s.subnet,
      iface: s.iface,
      table: s.table,
      protocol: s.protocol,
      ownBlocks: s.ownBlocks,
      advertisements: this.advertisements().map((a) => ({ ...a, subnet: a.subnet.id })),
      ownPrefixes: own,
    });
  }

  /** The view's advertisements, and the held ones of peers not in it. */
  private advertisements(): AdvertisementInfo[] {
    const current = this.view.advertisements();
    const out = [...current.values()];
    for (const [node, a] of this.held()) if (!current.has(node)) out.push(a);
    return out;
  }

  /** Routes the agent owns but must never remove (pod routes). */
  keep(route: KernelRoute): boolean {
    return isPodRoute(route, this.settings.protocol, this.settings.iface);
  }
}
