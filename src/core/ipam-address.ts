// Address choice inside a node's blocks.
//
// Every address of a block is usable, the first and the last included: a block
// is never an on-link subnet. Each pod gets a host address (/32 or /128) behind
// its own veth and is reached by a route, so a block has no network or
// broadcast address to protect, and skipping them would waste two addresses per
// block for nothing.
//
// Order of preference, which the allocator follows:
//  1. never-used addresses (neither allocated nor released), in address order,
//     blocks in address order;
//  2. released addresses that have rested at least the rest period, least
//     recently freed first (so a just-deleted pod's address is not handed to a
//     new pod while peers may still hold state for the old one);
//  3. (the allocator claims a new block here);
//  4. released addresses still resting, least recently freed first.
// Ties on the freeing time go to the lower address. The functions are pure.

import { comparePrefix, contains, formatAddress, lastAddress, parseAddress, parsePrefix, type Address, type Prefix } from './cidr.js';
import type { BlockRecord } from './ipam-store.js';

export type AddressSource = 'fresh' | 'rested' | 'resting';

export interface AddressChoice {
  /** Canonical text of the block holding the address. */
  readonly block: string;
  /** The address as keyed in the block record (canonical text). */
  readonly address: string;
  readonly source: AddressSource;
}

function tryAddress(text: string): Address | undefined {
  try {
    return parseAddress(text);
  } catch {
    return undefined;
  }
}

function byAddress(blocks: readonly BlockRecord[]): Array<{ record: BlockRecord; prefix: Prefix }> {
  return blocks.map((record) => ({ record, prefix: parsePrefix(record.prefix) })).sort((a, b) => comparePrefix(a.prefix, b.prefix));
}

/**
 * The lowest address of the block that was never allocated nor released.
 * Record keys are canonical address text, so candidates are formatted and
 * looked up rather than every key parsed.
 */
export function firstUnusedAddress(record: BlockRecord): string | undefined {
  const prefix = parsePrefix(record.prefix);
  for (let addr = prefix.addr; addr <= lastAddress(prefix); addr++) {
    const text = formatAddress({ family: prefix.family, addr });
    if (!(text in record.allocations) && !(text in record.released)) return text;
  }
  return undefined;
}

/**
 * Released, not re-allocated addresses of the blocks (as keyed in the records),
 * least recently freed first.
 */
export function releasedAddresses(blocks: readonly BlockRecord[]): Array<{ block: string; address: string; freedAt: number }> {
  const out: Array<{ block: string; address: string; freedAt: number; addr: Address }> = [];
  for (const { record, prefix } of byAddress(blocks)) {
    for (const [address, freedAt] of Object.entries(record.released)) {
      const a = tryAddress(address);
      if (a === undefined || !contains(prefix, a) || address in record.allocations) continue;
      out.push({ block: record.prefix, address, freedAt, addr: a });
    }
  }
  // Keys are unique within a block and blocks do not overlap: no two entries tie completely.
  out.sort((x, y) => x.freedAt - y.freedAt || x.addr.family - y.addr.family || (x.addr.addr < y.addr.addr ? -1 : 1));
  return out.map(({ block, address, freedAt }) => ({ block, address, freedAt }));
}

/**
 * The address to allocate now without claiming a block: a never-used one, else
 * one that has rested at least `restMs` at time `now`; undefined when neither
 * exists (the allocator then claims a block, or falls back to chooseRestingAddress).
 */
export function chooseAddress(blocks: readonly BlockRecord[], now: number, restMs: number): AddressChoice | undefined {
  for (const { record } of byAddress(blocks)) {
    const address = firstUnusedAddress(record);
    if (address !== undefined) return { block: record.prefix, address, source: 'fresh' };
  }
  const rested = releasedAddresses(blocks).find((r) => now - r.freedAt >= restMs);
  return rested === undefined ? undefined : { block: rested.block, address: rested.address, source: 'rested' };
}

/** The least recently freed released address, rested or not: the last resort. */
export function chooseRestingAddress(blocks: readonly BlockRecord[]): AddressChoice | undefined {
  const first = releasedAddresses(blocks)[0];
  return first === undefined ? undefined : { block: first.block, address: first.address, source: 'resting' };
}
