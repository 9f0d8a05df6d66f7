// Carving: giving a pod prefix to every subnet that does not name one.
//
// Deterministic first-fit. Subnets are visited in file order; each one
// without an explicit pod prefix gets the lowest-addressed aligned
// /subnetSize prefix inside the network that overlaps no explicit pod prefix
// and no prefix carved before it.
// Invariants of a successful result:
//  * one prefix per request, in request order; explicit prefixes are returned
//    unchanged;
//  * every carved prefix is exactly /subnetSize, aligned, wholly inside the
//    network (no padding space is ever handed out) and disjoint from every
//    other prefix of the result;
//  * appending requests never changes the prefixes of earlier ones, as long as
//    an appended explicit prefix does not overlap one already carved.
// The walk never enumerates slots, so it is fast for IPv6 networks too.

import { ErrorCode, TrellisError } from '../errors.js';
import { comparePrefix, contains, formatPrefix, lastAddress, maxLen, overlaps, type Prefix } from './cidr.js';

export type CarveResult =
  | { readonly ok: true; readonly prefixes: readonly Prefix[] }
  | {
      readonly ok: false;
      /** Index of the first request that did not fit. */
      readonly failedIndex: number;
      /** How many requests without an explicit prefix were carved before space ran out. */
      readonly carved: number;
      /** How many requests needed a carved prefix in all. */
      readonly needed: number;
    };

function checkArguments(network: Prefix, subnetSize: number, requests: ReadonlyArray<Prefix | undefined>): void {
  const bad = (message: string): TrellisError => new TrellisError(ErrorCode.Topology, message);
  if (!Number.isInteger(subnetSize) || subnetSize < network.len || subnetSize > maxLen(network.family)) {
    throw bad(`cannot carve /${subnetSize} prefixes out of ${formatPrefix(network)}`);
  }
  const explicit = requests.filter((p): p is Prefix => p !== undefined).sort(comparePrefix);
  for (const [i, p] of explicit.entries()) {
    if (!contains(network, p)) throw bad(`explicit pod prefix ${formatPrefix(p)} is outside ${formatPrefix(network)}`);
    const next = explicit[i + 1];
    if (next !== undefined && overlaps(p, next)) {
      throw bad(`explicit pod prefixes ${formatPrefix(p)} and ${formatPrefix(next)} overlap`);
    }
  }
}

/**
 * Resolves one pod prefix per request: an explicit prefix is kept, `undefined`
 * is carved. Throws a TrellisError (E_TOPOLOGY) when the arguments break the
 * preconditions (subnetSize out of range, explicit prefixes outside the network
 * or overlapping); running out of space is a result, not an exception.
 */
export function carvePodPrefixes(
  network: Prefix,
  subnetSize: number,
  requests: ReadonlyArray<Prefix | undefined>,
): CarveResult {
  checkArguments(network, subnetSize, requests);
  const slot = 1n << BigInt(maxLen(network.family) - subnetSize);
  const end = lastAddress(network);
  // Everything already taken, sorted by address and pairwise disjoint.
  const taken = requests.filter((p): p is Prefix => p !== undefined).sort(comparePrefix);
  const needed = requests.filter((p) => p === undefined).length;
  // Carved prefixes come out in ascending order (the free set only shrinks),
  // so the search for the next one resumes where the previous one ended.
  let cursor = network.addr;
  let carved = 0;
  const prefixes: Prefix[] = [];
  for (const [index, request] of requests.entries()) {
    if (request !== undefined) {
      prefixes.push(request);
      continue;
    }
    const found = firstFree(network, subnetSize, slot, end, cursor, taken);
    if (found === undefined) return { ok: false, failedIndex: index, carved, needed };
    prefixes.push(found);
    insertSorted(taken, found);
    cursor = found.addr + slot;
    carved++;
  }
  return { ok: true, prefixes };
}

/** The lowest free aligned slot at or above `from` (which is slot-aligned). */
function firstFree(
  network: Prefix,
  subnetSize: number,
  slot: bigint,
  end: bigint,
  from: bigint,
  taken: readonly Prefix[],
): Prefix | undefined {
  let candidate = from;
  for (const t of taken) {
    if (candidate > end) return undefined;
    if (lastAddress(t) < candidate) continue;
    if (t.addr >= candidate + slot) break;
    // t overlaps the candidate slot: it either contains the slot (t is larger
    // and aligned, so its end + 1 is slot-aligned) or lies inside it.
    const after = lastAddress(t) + 1n;
    candidate = after > candidate + slot ? after : candidate + slot;
  }
  if (candidate > end) return undefined;
  return { family: network.family, addr: candidate, len: subnetSize };
}

function insertSorted(list: Prefix[], p: Prefix): void {
  let i = list.length;
  while (i > 0 && comparePrefix(list[i - 1] as Prefix, p) > 0) i--;
  list.splice(i, 0, p);
}

