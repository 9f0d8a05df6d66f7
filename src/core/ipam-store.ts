// What the IPAM allocator stores, and the contract of the store that keeps it.
//
// One BlockRecord per claimed address block: its owner node, the addresses
// allocated in it and the addresses released from it (with the time they were
// freed, so reuse can wait for a rest period and prefer the least recently
// freed). Records are plain JSON-friendly data holding canonical text
// (formatPrefix / formatAddress); computations parse them into bigint values.
//
// The store offers compare-and-swap by an opaque version and nothing else:
// every write names the version it was computed from and fails (returns false)
// when that version has moved, so a writer that loses a race re-reads and
// recomputes. Keys are block prefixes; creating a key that exists fails too.
// Implementations return copies: mutating a returned record never changes the
// stored one, and a record handed to a write is not kept by reference.

/** One address handed to one container interface. */
export interface Allocation {
  containerId: string;
  ifName: string;
  netns?: string;
  podNamespace?: string;
  podName?: string;
  /** CNI network name the allocation was made for, when the caller gives one. */
  network?: string;
  /** Clock time (ms) of the allocation. */
  allocatedAt: number;
}

/** An address block claimed by a node. */
export interface BlockRecord {
  /** Canonical CIDR text of the block, e.g. "100.96.0.64/26". */
  prefix: string;
  /** Id of the subnet whose pod prefix holds the block. */
  subnet: string;
  /** Owner node name. */
  node: string;
  /** Clock time (ms) of the claim. */
  claimedAt: number;
  /** Allocated addresses, keyed by canonical address text. */
  allocations: Record<string, Allocation>;
  /** Released addresses, keyed by canonical address text: clock time (ms) they were freed. */
  released: Record<string, number>;
  /**
   * Set while the block holds no allocation: since when (ms) it has been
   * empty (its claim, or the release of its last address).
   */
  emptySince?: number;
}

/** A record together with the version a compare-and-swap must name. */
export interface VersionedBlock {
  record: BlockRecord;
  version: string;
}

export interface IpamStore {
  /** Every block record of every subnet and node. */
  listBlocks(): Promise<VersionedBlock[]>;
  getBlock(prefix: string): Promise<VersionedBlock | undefined>;
  /** Create the record of a new block; false when a record with that prefix exists. */
  createBlock(record: BlockRecord): Promise<boolean>;
  /** Replace a record; false when it no longer has `version` (or is gone). */
  updateBlock(record: BlockRecord, version: string): Promise<boolean>;
  /** Delete a record; false when it no longer has `version` (or is gone). */
  deleteBlock(prefix: string, version: string): Promise<boolean>;
}

/** A deep copy of a record, sharing nothing with it. */
export function cloneBlock(record: BlockRecord): BlockRecord {
  const allocations: Record<string, Allocation> = {};
  for (const [address, allocation] of Object.entries(record.allocations)) allocations[address] = { ...allocation };
  const copy: BlockRecord = {
    prefix: record.prefix,
    subnet: record.subnet,
    node: record.node,
    claimedAt: record.claimedAt,
    allocations,
    released: { ...record.released },
  };
  if (record.emptySince !== undefined) copy.emptySince = record.emptySince;
  return copy;
}
