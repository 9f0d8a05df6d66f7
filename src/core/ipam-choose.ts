// Block choice: which free block of its subnet a node claims next.
//
// Blocks are aligned prefixes of length `topology.blockSize` inside the
// subnet's pod prefix, never outside it and never overlapping a claimed block
// (of any node or subnet). The goal is invariant 2: a node's blocks aggregate
// into as few prefixes as possible, buddy-style. Each node grows inside a
// "home", an aligned region of length homeSizeIn(topology, subnet):
//
//  1. in the homes that already hold its blocks, it takes a free block that
//     leaves its aggregate count lowest, then the lowest address: a home fills
//     from its start in address order (n blocks aggregate into popcount(n)
//     prefixes, the minimum) and holes left by released blocks fill first;
//  2. when its homes are full, it grows into the buddy (sibling) of one of its
//     aggregate prefixes when that buddy is entirely free;
//  3. otherwise (and for a node without blocks) it starts a new home at the
//     first home-sized region holding no claimed block at all, so new homes
//     never land where another node already has blocks;
//  4. only when no entirely free home exists (a crowded subnet) it falls back to
//     any free block, the one that leaves its aggregate count lowest, then the
//     lowest address.
//
// Every step picks by (aggregate count after the claim, address), and every
// block that would merge with the node's blocks lies in step 1 or 2, so each
// claim leaves the node's aggregate count at the minimum any free block of the
// subnet could give. The function is pure and deterministic and never
// enumerates a whole region: it works on the free pieces left by subtracting
// the claimed blocks, which keeps it cheap for IPv6-sized pod prefixes.

import { aggregate, comparePrefix, contains, formatPrefix, maxLen, overlaps, sibling, subtract, supernet, type Prefix } from './cidr.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { homeSizeIn, type Subnet, type Topology } from './topology.js';

/** A claimed block and its owner, as block choice sees it. */
export interface ClaimedBlock {
  readonly prefix: Prefix;
  readonly node: string;
}

/** Why a block was chosen (which step of the policy chose it). */
export type BlockReason = 'home' | 'buddy' | 'new-home' | 'crowded';

export interface BlockChoice {
  readonly block: Prefix;
  readonly reason: BlockReason;
}

const key = (p: Prefix): string => `${p.family}|${p.addr}|${p.len}`;

/** Counts the aggregate prefixes of a block set, and what adding one block would do to it. */
export class AggregateCounter {
  readonly count: number;
  private readonly keys: Set<string>;

  constructor(blocks: readonly Prefix[]) {
    const agg = aggregate(blocks);
    this.count = agg.length;
    this.keys = new Set(agg.map(key));
  }

  /**
   * The aggregate count after adding `block`, which must not overlap the set.
   * Each sibling that is fully in the set is exactly one of its aggregate
   * prefixes (its parent is not fully in the set), so walking up the buddy
   * chain counts the merges.
   */
  after(block: Prefix): number {
    let merged = 0;
    let cur = block;
    while (cur.len > 0 && this.keys.has(key(sibling(cur)))) {
      merged++;
      cur = supernet(cur);
    }
    return this.count + 1 - merged;
  }
}

/** The first block of each free piece that can hold a block, in address order. */
function firstBlocks(pieces: readonly Prefix[], blockLen: number): Prefix[] {
  return pieces.filter((p) => p.len <= blockLen).map((p) => ({ family: p.family, addr: p.addr, len: blockLen }));
}

function best(candidates: readonly Prefix[], counter: AggregateCounter): Prefix | undefined {
  let chosen: Prefix | undefined;
  let chosenCount = Infinity;
  for (const c of candidates) {
    const n = counter.after(c);
    if (n < chosenCount || (n === chosenCount && comparePrefix(c, chosen as Prefix) < 0)) {
      chosen = c;
      chosenCount = n;
    }
  }
  return chosen;
}

/** Checks that blocks of the topology's size fit in the subnet's pod prefix. */
export function checkBlockSize(topology: Topology, subnet: Subnet): void {
  const pod = subnet.podPrefix;
  if (!Number.isInteger(topology.blockSize) || topology.blockSize < pod.len || topology.blockSize > maxLen(pod.family)) {
    throw new TrellisError(
      ErrorCode.Topology,
      `block size /${topology.blockSize} does not fit in pod prefix ${formatPrefix(pod)} of subnet ${subnet.id}`,
      { details: { subnet: subnet.id, blockSize: topology.blockSize } },
    );
  }
}

/**
 * The block `node` should claim next in `subnet`, and which policy step chose
 * it, or undefined when the subnet has no free block left. `claimed` may hold
 * the blocks of every subnet; only those overlapping the pod prefix matter.
 */
export function chooseBlockWithReason(
  topology: Topology,
  subnet: Subnet,
  claimed: readonly ClaimedBlock[],
  node: string,
): BlockChoice | undefined {
  checkBlockSize(topology, subnet);
  const pod = subnet.podPrefix;
  const blockLen = topology.blockSize;
  const homeLen = Math.min(homeSizeIn(topology, subnet), blockLen);
  const taken = claimed.filter((c) => overlaps(pod, c.prefix));
  const takenPrefixes = taken.map((c) => c.prefix);
  const mine = taken.filter((c) => c.node === node && contains(pod, c.prefix)).map((c) => c.prefix);
  const counter = new AggregateCounter(mine);
  const freeIn = (region: Prefix): Prefix[] =>
    subtract(
      region,
      takenPrefixes.filter((t) => overlaps(region, t)),
    );

  // 1. Free blocks in the homes that already hold this node's blocks.
  const homes = new Map<string, Prefix>();
  for (const b of mine) {
    const home = supernet(b, Math.min(homeLen, b.len));
    homes.set(key(home), home);
  }
  const inHomes = [...homes.values()].flatMap((home) => firstBlocks(freeIn(home), blockLen));
  const home = best(inHomes, counter);
  if (home !== undefined) return { block: home, reason: 'home' };

  // 2. The first block of an entirely free buddy of one of its aggregate prefixes.
  const buddies: Prefix[] = [];
  for (const q of aggregate(mine)) {
    if (q.len === 0 || q.len > blockLen) continue;
    const buddy = sibling(q);
    if (contains(pod, buddy) && !takenPrefixes.some((t) => overlaps(buddy, t))) {
      buddies.push({ family: buddy.family, addr: buddy.addr, len: blockLen });
    }
  }
  const buddy = best(buddies, counter);
  if (buddy !== undefined) return { block: buddy, reason: 'buddy' };

  // 3. The first block of the first home-sized region with no claimed block at all.
  const free = freeIn(pod);
  const freeHome = free.find((p) => p.len <= homeLen);
  if (freeHome !== undefined) return { block: { family: freeHome.family, addr: freeHome.addr, len: blockLen }, reason: 'new-home' };

  // 4. Crowded: any free block.
  const crowded = best(firstBlocks(free, blockLen), counter);
  return crowded === undefined ? undefined : { block: crowded, reason: 'crowded' };
}

/** The block `node` should claim next in `subnet`, or undefined when the subnet is full. */
export function chooseBlock(
  topology: Topology,
  subnet: Subnet,
  claimed: readonly ClaimedBlock[],
  node: string,
): Prefix | undefined {
  return chooseBlockWithReason(topology, subnet, claimed, node)?.block;
}
