// Removing a node's records from etcd, from any host: what is left of a node
// (its leased node record and advertisements), and the release of its block
// claims with their holds and pod address records (<prefix>/v1/blocks/*,
// <prefix>/v1/blocks-held/<node>/, <prefix>/v1/ipam/<node>/), and of its
// identity record (<prefix>/v1/identities/<node>) once nothing holds it.
//
// Invariants:
//  * A claim is deleted only while it still names the node: each block goes in
//    one transaction that compares the claim's mod revision (read with its
//    owner just before) and that no address record of the block was written
//    since its read; a block claimed again meanwhile (by anybody) is left alone
//    and reported as skipped.
//  * Address records outside any claim of the node go one by one, each only if
//    unchanged since read and only while its block is not claimed by the node.
//  * Everything is idempotent: a second run finds nothing and removes nothing.
//  * Nothing here revokes a lease; callers decide (trellisctl node remove
//    --force, trellisd --withdraw on the node's own lease).

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Keys } from '../state/keys.js';
import { readClaims } from './claim-reader.js';
import { EtcdIpamStore } from './ipam-store.js';
import { readPrefix } from './paged-range.js';

/** A leased record of a node: its key and lease id ('0' when not leased). */
export interface LeasedKey {
  readonly key: string;
  readonly lease: string;
}

/** What etcd holds of a node's leased records: present only while it is alive. */
export interface NodePresence {
  readonly node: string;
  readonly nodeRecord: LeasedKey | undefined;
  /** Advertisements of the node, in whatever subnet. */
  readonly advertisements: readonly (LeasedKey & { readonly subnet: string })[];
}

/** Whether a node has a record or an advertisement (a lease keeps them). */
export function isPresent(p: NodePresence): boolean {
  return p.nodeRecord !== undefined || p.advertisements.length > 0;
}

/** The distinct leases holding a node's records. */
export function leasesOf(p: NodePresence): string[] {
  const all = [p.nodeRecord, ...p.advertisements].filter((k): k is LeasedKey => k !== undefined).map((k) => k.lease);
  return [...new Set(all.filter((l) => l !== '0'))];
}

export async function readNodePresence(client: Etcd3, keys: Keys, node: string): Promise<NodePresence> {
  const kv = (await client.get(keys.node(node)).exec()).kvs[0];
  const nodeRecord = kv === undefined ? undefined : { key: keys.node(node), lease: String(kv.lease) };
  const page = await readPrefix(client, keys.routesPrefix(), { maxValueBytes: Number.POSITIVE_INFINITY });
  const advertisements = page.kvs
    .map((r) => ({ key: r.key.toString(), lease: String(r.lease), where: keys.routeFromKey(r.key.toString()) }))
    .filter((r) => r.where?.node === node)
    .map((r) => ({ key: r.key, lease: r.lease, subnet: r.where?.subnet as string }));
  return { node, nodeRecord, advertisements };
}

export interface ReleasedRecords {
  /** Blocks whose claims were deleted, with their address records. */
  readonly blocks: string[];
  /** Address records deleted (in released blocks and outside any claim of the node). */
  readonly addresses: number;
  /** Blocks left in place: claimed by somebody else, or changed during every attempt. */
  readonly skipped: { block: string; reason: string }[];
}

/** Attempts per block before it is reported as skipped (a live node may be writing to it). */
const BLOCK_ATTEMPTS = 3;

/**
 * Deletes every claim of `node` with its address records, then its address
 * records outside any of its claims. `quiet`: the node's records can change no
 * more (no lease holds it), so whatever is left under ipam/<node>/ goes in one
 * delete (undecodable records too).
 */
export async function releaseNodeRecords(client: Etcd3, keys: Keys, node: string, log: Logger, quiet: boolean): Promise<ReleasedRecords> {
  const store = new EtcdIpamStore(client, keys, log);
  const blocks: string[] = [];
  const skipped: { block: string; reason: string }[] = [];
  let addresses = 0;
  const claims = (await readClaims(client, keys)).filter((c) => c.node === node).map((c) => c.prefix);
  for (const block of claims) {
    let done = false;
    let reason = `changed during ${BLOCK_ATTEMPTS} attempts`;
    for (let i = 0; i < BLOCK_ATTEMPTS && !done; i++) {
      const claim = await store.getClaim(block);
      if (claim === undefined || claim.claim.node !== node) {
        reason = claim === undefined ? 'already released' : `claimed by ${claim.claim.node} now`;
        break;
      }
      const records = await store.listBlockAddresses(node, block);
      if (await store.releaseBlock(node, block, claim.version, records.revision)) {
        done = true;
        addresses += records.addresses.length;
      }
    }
    if (done) blocks.push(block);
    else if (reason !== 'already released') skipped.push({ block, reason });
  }
  if (quiet) {
    const res = await client.delete().prefix(keys.ipamPrefix(node)).exec();
    addresses += Number(res.deleted);
    // Holds left without their claim (the claim rewritten to another node, or lost) go too: a gone node holds nothing.
    await client.delete().prefix(keys.holdsPrefix(node)).exec();
    // Its identity goes once no claim names it (a block left in place keeps it for the next run).
    if (!skipped.some((b) => b.reason.startsWith('changed'))) await client.delete().key(keys.identity(node)).exec();
  } else {
    const mine = new Set((await readClaims(client, keys)).filter((c) => c.node === node).map((c) => c.prefix));
    for (const a of (await store.listAddresses(node)).addresses) {
      if (mine.has(a.record.block)) continue;
      const key = keys.podAddress(node, a.record.block, a.record.address);
      const res = await client.if(key, 'Mod', '==', a.version).then(client.delete().key(key)).commit();
      if (res.succeeded) addresses++;
    }
  }
  return { blocks, addresses, skipped };
}
