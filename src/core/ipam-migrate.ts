// Migration of a node's block claims from the old layout (addresses kept
// inside the Block claim record) to the current one (one address record per
// pod address under the node's own key range).
//
// Order, which is what makes it crash-safe: every address of the old claim is
// first written as an address record (create-if-absent, guarded by the claim
// version, so a re-run skips what is there and writes what is missing), and
// only then is the claim rewritten without its addresses (compare-and-swap on
// the version read). A crash before the rewrite leaves the old claim intact and
// the records written so far, which the next run finds; a crash after it
// leaves nothing to do. No address is lost (the claim keeps it until its record
// exists) and none is given twice (the allocator runs this for every claim of
// its node before it reads its addresses or hands one out). The function is
// pure over the IpamStore contract.

import { ErrorCode, TrellisError } from '../errors.js';
import type { AddressRecord, IpamStore, StoredClaim } from './ipam-store.js';

/** How often a claim that moved under a migration is read again before giving up. */
const MAX_ROUNDS = 8;

export interface MigrationResult {
  /** The claim as stored afterwards (current layout), or undefined when it is not the node's. */
  readonly claim: StoredClaim | undefined;
  /** Address records written by this run. */
  readonly written: number;
}

/**
 * Brings the claim of `prefix` to the current layout if it is the node's and
 * still carries addresses. Idempotent; safe to re-run after a crash at any point.
 */
export async function migrateBlock(store: IpamStore, node: string, prefix: string): Promise<MigrationResult> {
  let written = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stored = await store.getClaim(prefix);
    if (stored === undefined || stored.claim.node !== node) return { claim: undefined, written };
    const legacy = stored.legacy;
    if (legacy === undefined) return { claim: stored, written };
    const have = new Set((await store.listBlockAddresses(node, prefix)).addresses.map((a) => a.record.address));
    const wanted: AddressRecord[] = [];
    for (const [address, allocation] of Object.entries(legacy.allocations)) {
      wanted.push({ address, block: prefix, node, allocation: { ...allocation } });
    }
    for (const [address, releasedAt] of Object.entries(legacy.released)) {
      if (!(address in legacy.allocations)) wanted.push({ address, block: prefix, node, releasedAt });
    }
    let moved = false;
    for (const record of wanted) {
      if (have.has(record.address)) continue;
      // Undefined: the claim moved (read it again), or the record appeared meanwhile (kept as is).
      if ((await store.createAddress(record, stored.version)) !== undefined) written++;
      else if ((await store.getClaim(prefix))?.version !== stored.version) {
        moved = true;
        break;
      }
    }
    if (moved) continue;
    const version = await store.rewriteClaim(stored.claim, stored.version);
    if (version !== undefined) return { claim: { claim: stored.claim, version }, written };
  }
  throw new TrellisError(ErrorCode.Conflict, `node ${node}: could not migrate block ${prefix}: its claim kept changing`, {
    details: { node, block: prefix },
  });
}
