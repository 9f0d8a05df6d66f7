// The cluster's block claims read straight from etcd: one paged read of
// <prefix>/v1/blocks/ (bounded whatever the records weigh, even old-layout
// claims still carrying their addresses), each record reduced to its prefix
// and owner: a ClaimSource for the allocator where no watched mirror of
// blocks/ is at hand yet (trellisd before its watches sync, `--withdraw`).
// mirrorClaims gives the same from the watched mirror of blocks/ and
// blocks-held/ (no read), each block under its holder (src/core/claim-trust.ts).
// Records that cannot be decoded are reported as owned by INVALID_OWNER, so
// nobody chooses their block.

import type { Etcd3, IKeyValue } from 'etcd3';
import { formatPrefix } from '../core/cidr.js';
import type { ClaimInfo, ClaimSource } from '../core/ipam-store.js';
import { BlockSchema } from '../gen/trellis/v1/records_pb.js';
import type { Keys } from '../state/keys.js';
import { decodeRecord } from '../state/records.js';
import type { ClusterView } from '../state/cluster-view.js';
import { INVALID_OWNER } from './ipam-store.js';
import type { PrefixMirror } from './prefix-mirror.js';
import { rangePages } from './paged-range.js';

/** One paged read of blocks/: every claim as prefix and owner, and the records themselves (with their revisions). */
export interface ClaimSnapshot {
  readonly claims: ClaimInfo[];
  readonly records: IKeyValue[];
}

export async function readClaimSnapshot(client: Etcd3, keys: Keys): Promise<ClaimSnapshot> {
  const claims: ClaimInfo[] = [];
  const records: IKeyValue[] = [];
  for await (const page of rangePages(client, keys.blocksPrefix(), { maxValueBytes: Number.POSITIVE_INFINITY })) {
    for (const kv of page.kvs) {
      const prefix = keys.blockFromKey(kv.key.toString());
      if (prefix === undefined) continue;
      records.push(kv);
      const text = formatPrefix(prefix);
      const decoded = decodeRecord(BlockSchema, kv.value.toString());
      claims.push({ prefix: text, node: decoded.ok && decoded.value.prefix === text ? decoded.value.node : INVALID_OWNER });
    }
  }
  return { claims, records };
}

export async function readClaims(client: Etcd3, keys: Keys): Promise<ClaimInfo[]> {
  return (await readClaimSnapshot(client, keys)).claims;
}

/**
 * Start-up's claim reads before the watched mirror is synced: the allocator's
 * load, its block choice and the hold migration each want the whole of
 * blocks/, within a second of each other. One read serves them all while it
 * is younger than `maxAgeMs`; an older one (a node waiting for a free block)
 * is read again. A snapshot that lags is safe: a claim is a compare-and-swap,
 * and the allocator remembers the claims it lost to.
 */
export class StartupClaims {
  private last: { at: number; read: Promise<ClaimSnapshot> } | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly maxAgeMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  snapshot(): Promise<ClaimSnapshot> {
    const at = this.now();
    if (this.last === undefined || at - this.last.at > this.maxAgeMs) {
      const read = readClaimSnapshot(this.client, this.keys);
      const entry = { at, read };
      this.last = entry;
      read.catch(() => {
        if (this.last === entry) this.last = undefined;
      });
    }
    return this.last.read;
  }

  /** Forgets the last read (once the mirror serves). */
  drop(): void {
    this.last = undefined;
  }
}

/** A ClaimSource that reads etcd on every call. */
export function etcdClaims(client: Etcd3, keys: Keys): ClaimSource {
  return { claims: () => readClaims(client, keys) };
}

/**
 * Every key of the watched blocks/ mirror as a claim: its owner when the
 * cluster view accepts the record, INVALID_OWNER when it does not (the key is
 * taken all the same).
 */
export function mirrorClaims(view: ClusterView, mirrors: readonly PrefixMirror[], keys: Keys): ClaimInfo[] {
  const mirror = mirrors.find((m) => m.prefix === keys.claimsPrefix() || m.prefix === keys.blocksPrefix());
  const valid = view.blocks();
  const out: ClaimInfo[] = [];
  const seen = new Set<string>();
  for (const key of mirror?.entries().keys() ?? []) {
    const prefix = keys.blockFromKey(key);
    if (prefix === undefined) continue;
    const text = formatPrefix(prefix);
    seen.add(text);
    out.push({ prefix: text, node: valid.get(text)?.node ?? INVALID_OWNER });
  }
  // A block still held while its claim is gone (deleted by someone else) is taken all the same.
  for (const [text, b] of valid) if (!seen.has(text)) out.push({ prefix: text, node: b.node });
  return out;
}
