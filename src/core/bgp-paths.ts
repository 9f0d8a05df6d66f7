// The speaker's paths from per-peer plans (docs/bgp.md, "Per-peer plans" and
// "Several next hops"): every peer has its own plan (its own maxPrefixes and
// multipath); the speaker holds one path per (prefix, next hop) of all plans
// together, each tagged with the peers that take it, and the speaker's export
// filter sends a peer only the paths carrying its tag. The first next hop of
// a prefix gets the higher LOCAL_PREF, so that a peer without ADD-PATH, which
// is sent the best path only, gets that one.
//
// A prefix planned for several peers has one first next hop: that of the
// first peer (in bgp.peers order) planning it; a later peer whose plan names
// another first hop takes that one instead (both are healthy forwarders of
// the prefix's subnet, so either carries its traffic), keeping its own
// number of next hops.
//
// diffPaths turns the wanted paths and the speaker's own paths into adds and
// deletes, make-before-break: a changed path (other tags, other preference)
// is added under a fresh path identifier, and the old one deleted after it,
// so that no peer keeping the prefix ever sees it withdrawn.
// Invariants: a peer's tag is on at most `multipath` paths of a prefix and
// on prefixes of its own plan only; identifiers of one prefix are distinct
// and ≥ 1; the result depends on its input only.

import { comparePrefix, formatPrefix, type Prefix } from './cidr.js';

export const FIRST_HOP_PREF = 200;
export const OTHER_HOP_PREF = 100;

export interface PeerPlan {
  /** Position of the peer in bgp.peers (its tag). */
  readonly peer: number;
  readonly multipath: number;
  readonly routes: ReadonlyArray<{ readonly prefix: Prefix; readonly nextHops: readonly string[] }>;
}

export interface WantedPath {
  readonly prefix: Prefix;
  readonly nextHop: string;
  readonly localPref: number;
  /** Peers (positions) that take this path, ascending. */
  readonly peers: readonly number[];
}

export interface OwnPath extends WantedPath {
  readonly identifier: number;
}

export interface PathChanges {
  readonly add: readonly OwnPath[];
  readonly remove: readonly OwnPath[];
  /** What each peer is sent after the changes: prefix → next hops, by peer position. */
  readonly perPeer: ReadonlyMap<number, ReadonlyArray<{ prefix: string; nextHops: string[] }>>;
}

/** The paths of all peer plans together (see the module comment). */
export function mergePeerPlans(plans: readonly PeerPlan[]): WantedPath[] {
  const byPrefix = new Map<string, { prefix: Prefix; hops: string[]; peers: Map<string, Set<number>> }>();
  for (const plan of [...plans].sort((a, b) => a.peer - b.peer)) {
    for (const route of plan.routes) {
      const key = formatPrefix(route.prefix);
      let entry = byPrefix.get(key);
      if (entry === undefined) {
        entry = { prefix: route.prefix, hops: [], peers: new Map() };
        byPrefix.set(key, entry);
      }
      const first = entry.hops[0];
      const hops = (first === undefined ? [...route.nextHops] : [first, ...route.nextHops.filter((h) => h !== first)]).slice(0, Math.max(1, plan.multipath));
      for (const hop of hops) {
        if (!entry.hops.includes(hop)) entry.hops.push(hop);
        const peers = entry.peers.get(hop) ?? new Set<number>();
        peers.add(plan.peer);
        entry.peers.set(hop, peers);
      }
    }
  }
  const out: WantedPath[] = [];
  for (const entry of [...byPrefix.values()].sort((a, b) => comparePrefix(a.prefix, b.prefix))) {
    for (const [i, hop] of entry.hops.entries()) {
      out.push({ prefix: entry.prefix, nextHop: hop, localPref: i === 0 ? FIRST_HOP_PREF : OTHER_HOP_PREF, peers: [...(entry.peers.get(hop) ?? [])].sort((a, b) => a - b) });
    }
  }
  return out;
}

function same(a: WantedPath, b: WantedPath): boolean {
  return comparePrefix(a.prefix, b.prefix) === 0 && a.nextHop === b.nextHop && a.localPref === b.localPref && a.peers.join(',') === b.peers.join(',');
}

/** Adds (fresh identifiers) and deletes that turn `have` into `want`; see the module comment. */
export function diffPaths(have: readonly OwnPath[], want: readonly WantedPath[]): PathChanges {
  const kept = new Set<OwnPath>();
  const add: OwnPath[] = [];
  const used = new Map<string, Set<number>>();
  for (const h of have) {
    const key = formatPrefix(h.prefix);
    used.set(key, (used.get(key) ?? new Set()).add(h.identifier));
  }
  for (const w of want) {
    const match = have.find((h) => !kept.has(h) && same(h, w));
    if (match !== undefined) {
      kept.add(match);
      continue;
    }
    const ids = used.get(formatPrefix(w.prefix)) ?? new Set<number>();
    let id = 1;
    while (ids.has(id)) id++;
    ids.add(id);
    used.set(formatPrefix(w.prefix), ids);
    add.push({ ...w, identifier: id });
  }
  const remove = have.filter((h) => !kept.has(h));
  const perPeer = new Map<number, Map<string, string[]>>();
  for (const w of want) {
    for (const p of w.peers) {
      const routes = perPeer.get(p) ?? new Map<string, string[]>();
      const key = formatPrefix(w.prefix);
      routes.set(key, [...(routes.get(key) ?? []), w.nextHop]);
      perPeer.set(p, routes);
    }
  }
  return {
    add,
    remove,
    perPeer: new Map([...perPeer].map(([p, routes]) => [p, [...routes].map(([prefix, nextHops]) => ({ prefix, nextHops }))])),
  };
}
