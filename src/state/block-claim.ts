// The part of a block record that routing reads: its claim (prefix, subnet,
// owner node, when claimed). Peers mirror blocks/ only to know who owns
// which block, so the mirror keeps each record compacted to its claim:
// memory follows the number of blocks, not the number of pods, even for
// records of the older layout that carry every allocation of the block.
// Invariant: compaction never turns an invalid record into a valid one. A
// record that does not decode stays undecodable (cut to a short prefix of
// its text), and an allocation outside the block (which makes checkBlock
// refuse the record) is kept, so the verdict on the compacted value equals
// the verdict on the original. A cut text ends in a NUL character, which no
// JSON text may hold outside an escape: a prefix of a hostile value (a valid
// claim followed by padding and garbage) never becomes a valid claim.

import { create } from '@bufbuild/protobuf';
import { contains, parseAddress, tryParsePrefix } from '../core/cidr.js';
import { BlockSchema } from '../gen/trellis/v1/records_pb.js';
import { decodeRecord, encodeRecord } from './records.js';

/** Values up to this length are kept as they are; longer undecodable ones are cut to it (and marked). */
const KEEP_UNDECODABLE = 512;

function inBlock(prefixText: string, address: string): boolean {
  const prefix = tryParsePrefix(prefixText);
  if (typeof prefix === 'string') return true; // the prefix itself fails the check
  try {
    return contains(prefix, parseAddress(address));
  } catch {
    return false;
  }
}

/** The block record `text` reduced to its claim. */
export function compactBlockRecord(text: string): string {
  if (text.length <= KEEP_UNDECODABLE) return text; // a claim alone is this short: nothing to gain
  const decoded = decodeRecord(BlockSchema, text);
  if (!decoded.ok) return `${text.slice(0, KEEP_UNDECODABLE)}\u0000`;
  const b = decoded.value;
  if (Object.keys(b.allocations).length === 0 && Object.keys(b.released).length === 0) return text;
  const stray = Object.entries(b.allocations).find(([address]) => !inBlock(b.prefix, address));
  const claim = create(BlockSchema, {
    schemaVersion: b.schemaVersion,
    prefix: b.prefix,
    subnet: b.subnet,
    node: b.node,
    claimedAt: b.claimedAt,
    allocations: stray === undefined ? {} : { [stray[0]]: stray[1] },
  });
  return encodeRecord(BlockSchema, claim);
}
