// What the IPAM allocator stores, and the contract of the store that keeps it.
//
// Two kinds of records:
//  * a claim per address block (ClaimRecord): which node owns the block. Claims
//    are small and cluster-wide: every node learns them (block choice needs the
//    claims of its subnet, routing needs every claim), through a ClaimSource;
//  * a record per pod address of a node's block (AddressRecord): allocated to a
//    container interface, or released and resting before reuse. Address
//    records are read and written by the owning node alone, under its own key
//    range, so a pod ADD or DEL writes one small record and no peer sees it.
// Records are plain JSON-friendly data holding canonical text (formatPrefix /
// formatAddress); computations parse them into bigint values.
//
// The store offers compare-and-swap by an opaque version and nothing else:
// every write names the version it was computed from (or "absent") and fails
// (returns undefined / false) when it has moved, so a writer that loses a race
// re-reads and recomputes. Every address write is also guarded by the version
// of its block's claim, so an address is never written into a block that was
// given back meanwhile. Implementations return copies: mutating a returned
// record never changes the stored one, and a record handed to a write is not
// kept by reference.
//
// BlockRecord is the allocator's assembled view of one owned block (its claim
// joined with its address records); it is never stored as such.

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

/** The claim of an address block by a node. */
export interface ClaimRecord {
  /** Canonical CIDR text of the block, e.g. "100.96.0.64/26". */
  prefix: string;
  /** Id of the subnet whose pod prefix holds the block. */
  subnet: string;
  /** Owner node name. */
  node: string;
  /** Clock time (ms) of the claim. */
  claimedAt: number;
}

/**
 * Addresses an older release recorded inside the claim itself (the old layout).
 * Only the owner's migration reads them; everybody else ignores them.
 */
export interface LegacyAddresses {
  allocations: Record<string, Allocation>;
  released: Record<string, number>;
}

export interface StoredClaim {
  claim: ClaimRecord;
  version: string;
  /** Present when the stored claim still carries addresses (old layout). */
  legacy?: LegacyAddresses;
}

/** One pod address of a node's block: allocated (allocation set) or resting (releasedAt set). */
export interface AddressRecord {
  /** Canonical address text. */
  address: string;
  /** Canonical CIDR text of the block holding it. */
  block: string;
  /** Owner node (the block's owner). */
  node: string;
  allocation?: Allocation;
  /** Clock time (ms) the address was released. */
  releasedAt?: number;
}

export interface VersionedAddress {
  record: AddressRecord;
  version: string;
}

/** Address records of a node (or of one of its blocks) read at one revision. */
export interface AddressSnapshot {
  addresses: VersionedAddress[];
  /** The store revision the read was taken at. */
  revision: string;
}

/** A claim as block choice sees it: the claims source gives these. */
export interface ClaimInfo {
  /** Canonical CIDR text of the block. */
  readonly prefix: string;
  readonly node: string;
}

/**
 * Where the allocator learns the claims of the cluster (in trellisd: the
 * watched mirror of blocks/). It may lag behind the store: the allocator
 * never trusts it for its own writes (every write is a compare-and-swap), only
 * for choosing a block that is probably free.
 */
export interface ClaimSource {
  claims(): readonly ClaimInfo[] | Promise<readonly ClaimInfo[]>;
}

export interface IpamStore {
  getClaim(prefix: string): Promise<StoredClaim | undefined>;
  /**
   * Creates a claim when the key is absent, removing any address record of
   * its node left in that block, and writing `first` (an address record of
   * the block) with it when given. Returns the new claim version (also the
   * version of `first`), or undefined when the block is claimed already.
   */
  createClaim(claim: ClaimRecord, first?: AddressRecord): Promise<string | undefined>;
  /**
   * Rewrites a claim without legacy addresses (migration). New version, or
   * undefined when the claim no longer has `version`.
   */
  rewriteClaim(claim: ClaimRecord, version: string): Promise<string | undefined>;
  /** Every address record of the node, at one revision (a bounded, paged read). */
  listAddresses(node: string): Promise<AddressSnapshot>;
  /** The address records of one block of the node, at one revision. */
  listBlockAddresses(node: string, block: string): Promise<AddressSnapshot>;
  /**
   * Creates an address record when its key is absent and the block's claim
   * still has `claimVersion`. New version, or undefined.
   */
  createAddress(record: AddressRecord, claimVersion: string): Promise<string | undefined>;
  /**
   * Replaces an address record that still has `version` while the claim
   * still has `claimVersion`. New version, or undefined.
   */
  updateAddress(record: AddressRecord, version: string, claimVersion: string): Promise<string | undefined>;
  /**
   * Deletes a claim of `node` and every address record of the node in that
   * block, in one atomic step, when the claim still has `claimVersion` and no
   * address record of the block was written after `revision` (a revision of
   * listBlockAddresses). False when either moved.
   */
  releaseBlock(node: string, prefix: string, claimVersion: string, revision: string): Promise<boolean>;
  /** Deletes every address record of the node (the node is gone; its claims were released first). */
  deleteAddresses(node: string): Promise<void>;
}

/** A deep copy of an address record. */
export function cloneAddress(record: AddressRecord): AddressRecord {
  const copy: AddressRecord = { address: record.address, block: record.block, node: record.node };
  if (record.allocation !== undefined) copy.allocation = { ...record.allocation };
  if (record.releasedAt !== undefined) copy.releasedAt = record.releasedAt;
  return copy;
}

/** The allocator's view of one owned block: its claim joined with its address records. */
export interface BlockRecord extends ClaimRecord {
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

/** A block view from its claim and the address records of its owner in it. */
export function assembleBlock(claim: ClaimRecord, addresses: Iterable<AddressRecord>): BlockRecord {
  const record: BlockRecord = { ...claim, allocations: {}, released: {} };
  let lastRelease = claim.claimedAt;
  for (const a of addresses) {
    if (a.block !== claim.prefix || a.node !== claim.node) continue;
    if (a.allocation !== undefined) record.allocations[a.address] = { ...a.allocation };
    else if (a.releasedAt !== undefined) {
      record.released[a.address] = a.releasedAt;
      lastRelease = Math.max(lastRelease, a.releasedAt);
    }
  }
  if (Object.keys(record.allocations).length === 0) record.emptySince = lastRelease;
  return record;
}

/** A deep copy of a block view, sharing nothing with it. */
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
