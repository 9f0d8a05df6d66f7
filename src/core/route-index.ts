// The desired routes of a node, kept incrementally (pure).
//
// desiredRoutes() (desired-routes.ts) computes every route from the whole
// state; with thousands of peers that is work proportional to the cluster on
// every change. The index holds the same result and is told what changed
// (one peer's advertisement, or this node's own blocks); it answers with the
// route keys whose route changed, so a change costs work proportional to
// the routes it touches.
// Invariants:
//  * After any sequence of changes, routes() equals desiredRoutes() of the
//    current state with routes sharing a key (routeKey) resolved as
//    diffRoutes does: the first in compareRoutes order wins.
//  * Each change returns exactly the keys whose winning route differs from
//    before (new route, or undefined when the key is no longer wanted).

import { aggregate, type Prefix } from './cidr.js';
import { desiredRoutes, type DesiredRoutesInput, type PeerAdvertisement } from './desired-routes.js';
import { compareRoutes, routeKey, sameRoute, type KernelRoute } from './route.js';

/** Everything desiredRoutes takes except the changing parts. */
export type RouteIndexConfig = Omit<DesiredRoutesInput, 'advertisements' | 'ownPrefixes'>;

/** Route keys whose desired route changed: the new route, or undefined when none is wanted any more. */
export type RouteDelta = Map<string, KernelRoute | undefined>;

/** Source id of the own-blocks routes (node names never contain a NUL). */
const OWN = '\u0000own';

export class RouteIndex {
  /** Routes contributed by each source (peer node name, or OWN). */
  private readonly bySource = new Map<string, KernelRoute[]>();
  /** Candidates at each key, by source. */
  private readonly candidates = new Map<string, Map<string, KernelRoute>>();
  /** The winning route at each key. */
  private readonly winners = new Map<string, KernelRoute>();

  constructor(private readonly config: RouteIndexConfig) {}

  /** The desired routes now (one per key). */
  routes(): KernelRoute[] {
    return [...this.winners.values()];
  }

  get size(): number {
    return this.winners.size;
  }

  /** A peer's advertisement was set, replaced, or (undefined) removed. */
  setAdvertisement(node: string, advertisement: PeerAdvertisement | undefined): RouteDelta {
    const routes = advertisement === undefined || advertisement.node !== node ? [] : this.peerRoutes(advertisement);
    return this.setSource(node, routes);
  }

  /** This node's own blocks (in its subnet) changed. */
  setOwnPrefixes(prefixes: readonly Prefix[]): RouteDelta {
    const { ownBlocks } = this.config;
    const base = { table: this.config.table, protocol: this.config.protocol };
    const routes = ownBlocks === 'none' ? [] : aggregate(prefixes).map((dst): KernelRoute => ({ ...base, dst, type: ownBlocks }));
    return this.setSource(OWN, routes);
  }

  private peerRoutes(a: PeerAdvertisement): KernelRoute[] {
    // desiredRoutes' rules, applied to one advertisement.
    return desiredRoutes({ ...this.config, ownBlocks: 'none', advertisements: [a], ownPrefixes: [] });
  }

  private setSource(source: string, routes: KernelRoute[]): RouteDelta {
    const touched = new Set<string>();
    for (const r of this.bySource.get(source) ?? []) {
      const key = routeKey(r);
      const at = this.candidates.get(key);
      at?.delete(source);
      if (at?.size === 0) this.candidates.delete(key);
      touched.add(key);
    }
    // Within one source, the first route (compareRoutes order) at a key stands for it.
    const mine = new Map<string, KernelRoute>();
    for (const r of routes) {
      const key = routeKey(r);
      const had = mine.get(key);
      if (had === undefined || compareRoutes(r, had) < 0) mine.set(key, r);
    }
    for (const [key, r] of mine) {
      let at = this.candidates.get(key);
      if (at === undefined) this.candidates.set(key, (at = new Map()));
      at.set(source, r);
      touched.add(key);
    }
    if (mine.size === 0) this.bySource.delete(source);
    else this.bySource.set(source, [...mine.values()]);
    const delta: RouteDelta = new Map();
    for (const key of touched) {
      let best: KernelRoute | undefined;
      for (const r of this.candidates.get(key)?.values() ?? []) if (best === undefined || compareRoutes(r, best) < 0) best = r;
      const before = this.winners.get(key);
      if (best === undefined) this.winners.delete(key);
      else this.winners.set(key, best);
      if (before === undefined ? best !== undefined : best === undefined || !sameRoute(before, best) || before.protocol !== best.protocol) {
        delta.set(key, best);
      }
    }
    return delta;
  }
}

/** Merge `next` into `into` (later changes of a key win). */
export function mergeDelta(into: RouteDelta, next: RouteDelta): RouteDelta {
  for (const [key, r] of next) into.set(key, r);
  return into;
}
