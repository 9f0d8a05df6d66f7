// The cluster's block claims read straight from etcd: one paged read of
// <prefix>/v1/blocks/ (bounded whatever the records weigh, even old-layout
// claims still carrying their addresses), each record reduced to its prefix
// and owner. A ClaimSource for the allocator where no watched mirror of
// blocks/ is at hand yet (trellisd before its watches sync, `--withdraw`).
// Records that cannot be decoded are reported as owned by INVALID_OWNER, so
// nobody chooses their block.

import type { Etcd3 } from 'etcd3';
import { formatPrefix } from '../core/cidr.js';
import type { ClaimInfo, ClaimSource } from '../core/ipam-store.js';
import { BlockSchema } from '../gen/trellis/v1/records_pb.js';
import type { Keys } from '../state/keys.js';
import { decodeRecord } from '../state/records.js';
import { INVALID_OWNER } from './ipam-store.js';
import { rangePages } from './paged-range.js';

export async function readClaims(client: Etcd3, keys: Keys): Promise<ClaimInfo[]> {
  const out: ClaimInfo[] = [];
  for await (const page of rangePages(client, keys.blocksPrefix(), { maxValueBytes: Number.POSITIVE_INFINITY })) {
    for (const kv of page.kvs) {
      const prefix = keys.blockFromKey(kv.key.toString());
      if (prefix === undefined) continue;
      const text = formatPrefix(prefix);
      const decoded = decodeRecord(BlockSchema, kv.value.toString());
      out.push({ prefix: text, node: decoded.ok && decoded.value.prefix === text ? decoded.value.node : INVALID_OWNER });
    }
  }
  return out;
}

/** A ClaimSource that reads etcd on every call. */
export function etcdClaims(client: Etcd3, keys: Keys): ClaimSource {
  return { claims: () => readClaims(client, keys) };
}
