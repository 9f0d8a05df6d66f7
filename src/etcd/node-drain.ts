// Drain records in etcd (src/state/drain-record.ts), from trellisctl: put one
// for a node unless one is there (the first drain's time and reason stay),
// delete one, read them all.
// Invariants: a drain never overwrites an existing record (one transaction
// comparing the key's create revision with 0); uncordon deletes only the
// record it read (compared by mod revision), so a drain made meanwhile stays;
// reads are paged and skip values above MAX_DRAIN_BYTES (reported).

import type { Etcd3 } from 'etcd3';
import type { NodeDrain } from '../gen/trellis/v1/records_pb.js';
import { checkDrain, encodeDrain, MAX_DRAIN_BYTES, type CheckedDrain, type DrainInfo } from '../state/drain-record.js';
import type { Keys } from '../state/keys.js';
import { readPrefix } from './paged-range.js';

/** A drain record as read: checked, or why it is not believed. */
export type ReadDrain = CheckedDrain & { readonly key: string };

/** Puts `record` at the node's drain key unless a record is there; the record there before, if any. */
export async function putDrain(client: Etcd3, keys: Keys, record: NodeDrain): Promise<{ created: boolean; existing: ReadDrain | undefined }> {
  const key = keys.drain(record.node);
  const result = await client.if(key, 'Create', '==', 0).then(client.put(key).value(encodeDrain(record))).else(client.get(key)).commit();
  if (result.succeeded) return { created: true, existing: undefined };
  const kv = result.responses[0]?.response_range?.kvs[0];
  return { created: false, existing: kv === undefined ? undefined : { key, ...checkDrain(key, kv.value.toString()) } };
}

/** Deletes the node's drain record if there is one; what was deleted. */
export async function deleteDrain(client: Etcd3, keys: Keys, node: string): Promise<ReadDrain | undefined> {
  const key = keys.drain(node);
  for (;;) {
    const got = await client.get(key).exec();
    const kv = got.kvs[0];
    if (kv === undefined) return undefined;
    const done = await client.if(key, 'Mod', '==', String(kv.mod_revision)).then(client.delete().key(key)).commit();
    if (done.succeeded) return { key, ...checkDrain(key, kv.value.toString()) };
  }
}

/** Every drain record (at `revision` when given); oversized values are reported as not believed. */
export async function readDrains(client: Etcd3, keys: Keys, revision?: string): Promise<ReadDrain[]> {
  const out: ReadDrain[] = [];
  const page = await readPrefix(client, keys.drainPrefix(), {
    revision,
    maxValueBytes: MAX_DRAIN_BYTES,
    onOversize: (key, bytes) => out.push({ key, ok: false, reason: `drain record of ${bytes} bytes is above the ${MAX_DRAIN_BYTES}-byte limit` }),
  });
  for (const kv of page.kvs) {
    const key = kv.key.toString();
    out.push({ key, ...checkDrain(key, kv.value.toString()) });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The believed drains by node name. */
export function drainsByNode(list: readonly ReadDrain[]): Map<string, DrainInfo> {
  return new Map(list.flatMap((d) => (d.ok ? [[d.value.node, d.value] as const] : [])));
}

