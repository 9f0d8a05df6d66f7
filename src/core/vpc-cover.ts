// Cover of one subnet's claimed blocks by at most k disjoint VPC destinations
// with the least extra-hop traffic (docs/vpc.md, "Route planning", objective 3).
//
// The claimed blocks are the leaves of a path-compressed binary trie rooted in
// the subnet's pod prefix: only branches holding claims exist. An entry for a
// trie node covers every claim below it (plus free space up to the next branch)
// and goes to the healthy owner with the most claimed addresses there, so its
// cost is the claims of everyone else. A dynamic program gives, per trie node
// and entry count j, the least cost of covering its claims with exactly j
// disjoint entries. Among equal costs it keeps the most current destinations,
// then takes the cover that would cost least if every owner were healthy (so
// a failure or a recovery only moves targets), then uses the fewest entries.
// Subtrees owned by a single node are not split unless a current entry lies
// inside them, so the work is O(n·min(k, n)) for n claimed blocks and in
// practice far less.
// Disjoint on purpose: LPM is then trivially exact and order-free, and the
// extra-hop traffic of each region goes to that region's own forwarder instead
// of being funnelled through one catch-all supernet; nesting would save traffic
// only where owners interleave, which the IPAM (invariant 2) avoids.
// Invariants: chosen destinations are pairwise disjoint, inside the pod prefix,
// and together contain every claimed block; the result does not depend on the
// order of the blocks given.

import { comparePrefix, contains, maxLen, supernet, type Prefix } from './cidr.js';

export interface OwnedBlock {
  readonly prefix: Prefix;
  /** Index of the owning node in the caller's node list. */
  readonly owner: number;
}

export interface CoverTrieNode {
  readonly id: number;
  /** The smallest prefix holding every claim below. */
  readonly prefix: Prefix;
  /** Shortest length an entry for this node may have (the branch above is shorter). */
  readonly topLen: number;
  readonly children: readonly [CoverTrieNode, CoverTrieNode] | undefined;
  /** The claims below are `blocks[first..end)` of the trie. */
  readonly first: number;
  readonly end: number;
  /** Claimed space below, in units of the subnet's smallest block. */
  readonly claims: number;
  /** Claimed units of the healthy owner with the most below (0 when none). */
  readonly best: number;
  /** Claimed units of the owner with the most below, healthy or not. */
  readonly top: number;
  /** True when every claim below belongs to one owner. */
  readonly pure: boolean;
}

export interface CoverTrie {
  /** Claimed blocks, disjoint, in address order. */
  readonly blocks: readonly OwnedBlock[];
  readonly root: CoverTrieNode;
  readonly size: number;
  /** Fewest disjoint entries giving zero extra hop (maximal single-owner subtrees). */
  readonly zeroHopEntries: number;
}

export interface CoverChoice {
  readonly destination: Prefix;
  /** The trie node whose claims the entry covers. */
  readonly node: CoverTrieNode;
}

/** A map key for a prefix (cheaper than formatting it). */
export function prefixId(p: Prefix): string {
  return `${p.family}:${p.addr.toString(16)}/${p.len}`;
}

/** Length of the smallest prefix holding both (disjoint, so their addresses differ). */
function commonLength(a: Prefix, b: Prefix): number {
  const differing = (a.addr ^ b.addr).toString(2).length;
  return Math.min(a.len, b.len, maxLen(a.family) - differing);
}

/**
 * Build the trie of `blocks` (disjoint, inside `podPrefix`, at least one);
 * `healthy[owner]` says whether an owner may be a forwarder.
 */
export function buildCoverTrie(podPrefix: Prefix, blocks: readonly OwnedBlock[], healthy: readonly boolean[]): CoverTrie {
  const sorted = [...blocks].sort((a, b) => comparePrefix(a.prefix, b.prefix));
  const unitLen = sorted.reduce((len, b) => Math.max(len, b.prefix.len), 0);
  const bits = maxLen(podPrefix.family);
  let ids = 0;
  const build = (first: number, end: number, topLen: number): { node: CoverTrieNode; owners: Map<number, number> } => {
    const lo = sorted[first] as OwnedBlock;
    if (end - first === 1) {
      const claims = 2 ** (unitLen - lo.prefix.len);
      const node: CoverTrieNode = {
        id: ids++,
        prefix: lo.prefix,
        topLen,
        children: undefined,
        first,
        end,
        claims,
        best: healthy[lo.owner] === true ? claims : 0,
        top: claims,
        pure: true,
      };
      return { node, owners: new Map([[lo.owner, claims]]) };
    }
    const hi = sorted[end - 1] as OwnedBlock;
    const len = commonLength(lo.prefix, hi.prefix);
    const prefix = supernet(lo.prefix, len);
    const bit = 1n << BigInt(bits - len - 1);
    let mid = first + 1;
    while (((sorted[mid] as OwnedBlock).prefix.addr & bit) === 0n) mid++;
    const id = ids++;
    const left = build(first, mid, len + 1);
    const right = build(mid, end, len + 1);
    const [big, small] = left.owners.size >= right.owners.size ? [left.owners, right.owners] : [right.owners, left.owners];
    for (const [owner, units] of small) big.set(owner, (big.get(owner) ?? 0) + units);
    let best = 0;
    let top = 0;
    for (const [owner, units] of big) {
      if (healthy[owner] === true && units > best) best = units;
      if (units > top) top = units;
    }
    const node: CoverTrieNode = {
      id,
      prefix,
      topLen,
      children: [left.node, right.node],
      first,
      end,
      claims: left.node.claims + right.node.claims,
      best,
      top,
      pure: big.size === 1,
    };
    return { node, owners: big };
  };
  const { node: root } = build(0, sorted.length, podPrefix.len);
  const countPure = (n: CoverTrieNode): number =>
    n.pure || n.children === undefined ? 1 : countPure(n.children[0]) + countPure(n.children[1]);
  return { blocks: sorted, root, size: ids, zeroHopEntries: countPure(root) };
}

/** Per entry count j (index j − 1): extra hop, kept destinations, extra hop if all were healthy. */
interface Score {
  readonly hop: Float64Array;
  readonly kept: Int32Array;
  readonly potential: Float64Array;
}

/** True when (hop, kept, potential) #i of `a` is better than #j of `b`. */
function better(a: Score, i: number, b: Score, j: number): boolean {
  const [ha, hb] = [a.hop[i] as number, b.hop[j] as number];
  if (ha !== hb) return ha < hb;
  const [ka, kb] = [a.kept[i] as number, b.kept[j] as number];
  if (ka !== kb) return ka > kb;
  return (a.potential[i] as number) < (b.potential[j] as number);
}

/**
 * The least-extra-hop cover of the trie's claims with at most `k` (≥ 1)
 * disjoint entries, in address order. `current` holds the destinations that
 * exist now inside the pod prefix: ties between equally good covers go to the
 * one keeping the most of them.
 */
export function chooseCover(trie: CoverTrie, k: number, current: readonly Prefix[]): CoverChoice[] {
  const keep = new Set(current.map(prefixId));
  const splits: Array<Int32Array | undefined> = new Array<Int32Array | undefined>(trie.size);
  const kept: Array<Prefix | undefined> = new Array<Prefix | undefined>(trie.size);

  const keptAt = (node: CoverTrieNode): Prefix | undefined => {
    if (keep.size === 0) return undefined;
    for (let len = node.prefix.len; len >= node.topLen; len--) {
      const p = supernet(node.prefix, len);
      if (keep.has(prefixId(p))) return p;
    }
    return undefined;
  };
  const keptBelow = (node: CoverTrieNode): boolean =>
    current.some((p) => p.len > node.prefix.len && contains(node.prefix, p));

  const solve = (node: CoverTrieNode): Score => {
    const splittable = k > 1 && node.children !== undefined && (!node.pure || keptBelow(node));
    const [left, right] = splittable && node.children !== undefined ? node.children.map(solve) : [];
    const n = left === undefined || right === undefined ? 1 : Math.min(k, left.hop.length + right.hop.length);
    const score: Score = { hop: new Float64Array(n), kept: new Int32Array(n), potential: new Float64Array(n) };
    const at = keptAt(node);
    kept[node.id] = at;
    score.hop[0] = node.claims - node.best;
    score.kept[0] = at === undefined ? 0 : 1;
    score.potential[0] = node.claims - node.top;
    if (left !== undefined && right !== undefined) {
      const split = new Int32Array(n);
      const pair: Score = { hop: new Float64Array(1), kept: new Int32Array(1), potential: new Float64Array(1) };
      for (let j = 2; j <= n; j++) {
        const from = Math.max(1, j - right.hop.length);
        const to = Math.min(left.hop.length, j - 1);
        for (let a = from; a <= to; a++) {
          pair.hop[0] = (left.hop[a - 1] as number) + (right.hop[j - a - 1] as number);
          pair.kept[0] = (left.kept[a - 1] as number) + (right.kept[j - a - 1] as number);
          pair.potential[0] = (left.potential[a - 1] as number) + (right.potential[j - a - 1] as number);
          if (a === from || better(pair, 0, score, j - 1)) {
            score.hop[j - 1] = pair.hop[0];
            score.kept[j - 1] = pair.kept[0];
            score.potential[j - 1] = pair.potential[0];
            split[j - 1] = a;
          }
        }
      }
      splits[node.id] = split;
    }
    return score;
  };

  const score = solve(trie.root);
  let count = 1;
  for (let j = 2; j <= score.hop.length; j++) if (better(score, j - 1, score, count - 1)) count = j;
  const out: CoverChoice[] = [];
  const collect = (node: CoverTrieNode, j: number): void => {
    if (j === 1) {
      out.push({ destination: kept[node.id] ?? node.prefix, node });
      return;
    }
    // j > 1 only where solve() split the node: it has children and a split.
    const [left, right] = node.children as [CoverTrieNode, CoverTrieNode];
    const a = (splits[node.id] as Int32Array)[j - 1] as number;
    collect(left, a);
    collect(right, j - a);
  };
  collect(trie.root, count);
  return out;
}
