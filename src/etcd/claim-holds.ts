// A node's holds of its blocks (blocks-held/<node>/<block>, see
// src/core/claim-trust.ts), and the repair of its claims.
//
//  * writeMissingHolds: a claim of this node that has no hold yet (claimed
//    before holds existed) gets one, written only while the claim still names
//    the node (compare on the claim's mod revision), so a hold is never
//    created for a claim someone else already rewrote.
//  * repairClaim: the claim of a block this node holds was rewritten or
//    deleted by someone else; it is written again from the hold, guarded by
//    both mod revisions (the hold unchanged, the claim as read), so a repair
//    never undoes a release or a concurrent repair.
// Both are idempotent and write nothing when nothing is wrong.

import type { Etcd3, IKeyValue } from 'etcd3';
import { BlockSchema } from '../gen/trellis/v1/records_pb.js';
import { Keys } from '../state/keys.js';
import { decodeRecord } from '../state/records.js';
import { rangePages } from './paged-range.js';

/** Writes a hold for each claim naming `node` that has none (of `claims`, blocks/ as already read, or a fresh read); returns the blocks (key form) given one. */
export async function writeMissingHolds(client: Etcd3, keys: Keys, node: string, claims?: readonly IKeyValue[]): Promise<string[]> {
  const held = new Set<string>();
  for await (const page of rangePages(client, keys.holdsPrefix(node))) for (const kv of page.kvs) held.add(kv.key.toString());
  const written: string[] = [];
  const pages = claims === undefined ? rangePages(client, keys.blocksPrefix(), { maxValueBytes: Number.POSITIVE_INFINITY }) : [{ kvs: claims }];
  for await (const page of pages) {
    for (const kv of page.kvs) {
      const key = kv.key.toString();
      const prefix = keys.blockFromKey(key);
      const decoded = decodeRecord(BlockSchema, kv.value.toString());
      if (prefix === undefined || !decoded.ok || decoded.value.node !== node) continue;
      const hold = keys.hold(node, prefix);
      if (held.has(hold)) continue;
      const res = await client.kv.txn({
        compare: [
          { key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: String(kv.mod_revision) },
          { key: Buffer.from(hold), target: 'Create', result: 'Equal', create_revision: 0 },
        ],
        success: [{ request_put: { key: Buffer.from(hold), value: kv.value } }],
        failure: [],
      });
      if (res.succeeded) written.push(Keys.leaf(key));
    }
  }
  return written;
}

export type RepairResult = 'ok' | 'repaired' | 'not-held' | 'lost';

/**
 * Writes the claim of `block` (prefix text) from this node's hold when the
 * claim does not name `node`: 'repaired'; 'ok' when it already does;
 * 'not-held' without a hold; 'lost' when a compare failed (read again later).
 */
export async function repairClaim(client: Etcd3, keys: Keys, node: string, block: string): Promise<RepairResult> {
  const holdKey = keys.hold(node, block);
  const claimKey = keys.block(block);
  const [hold, claim] = await Promise.all([client.get(holdKey).exec(), client.get(claimKey).exec()]);
  const h = hold.kvs[0];
  if (h === undefined) return 'not-held';
  const c = claim.kvs[0];
  if (c !== undefined) {
    const decoded = decodeRecord(BlockSchema, c.value.toString());
    if (decoded.ok && decoded.value.node === node) return 'ok';
  }
  const res = await client.kv.txn({
    compare: [
      { key: Buffer.from(holdKey), target: 'Mod', result: 'Equal', mod_revision: String(h.mod_revision) },
      c === undefined
        ? { key: Buffer.from(claimKey), target: 'Create', result: 'Equal', create_revision: 0 }
        : { key: Buffer.from(claimKey), target: 'Mod', result: 'Equal', mod_revision: String(c.mod_revision) },
    ],
    success: [{ request_put: { key: Buffer.from(claimKey), value: h.value } }],
    failure: [],
  });
  return res.succeeded ? 'repaired' : 'lost';
}
