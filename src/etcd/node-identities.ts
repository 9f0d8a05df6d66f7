// Reading and writing nodes' identity records (src/state/node-identity.ts) in
// etcd. A node writes only its own (its etcd role grants that one key); the
// collector reads those of nodes whose node record is gone, one key each.
// Deletion goes with the node's other records (node-removal.ts).

import type { Etcd3 } from 'etcd3';
import type { Keys } from '../state/keys.js';
import { checkIdentity, encodeIdentity, sameIdentity, type IdentityInfo } from '../state/node-identity.js';
import type { Checked } from '../state/validate.js';

/** Writes `info` as the node's identity unless etcd already holds the same; true when written. */
export async function writeIdentity(client: Etcd3, keys: Keys, info: IdentityInfo, now: number): Promise<boolean> {
  const current = await client.get(keys.identity(info.name)).string();
  if (current !== null) {
    const checked = checkIdentity(current, info.name);
    if (checked.ok && sameIdentity(checked.value, info)) return false;
  }
  await client.put(keys.identity(info.name)).value(encodeIdentity(info, now));
  return true;
}

/** The identity of each of `nodes` that has one, checked (a bad record gives its reason). */
export async function readIdentities(client: Etcd3, keys: Keys, nodes: readonly string[]): Promise<Map<string, Checked<IdentityInfo>>> {
  const out = new Map<string, Checked<IdentityInfo>>();
  for (const node of nodes) {
    const text = await client.get(keys.identity(node)).string();
    if (text !== null) out.set(node, checkIdentity(text, node));
  }
  return out;
}
