// The public shapes of the IPAM allocator (src/core/ipam.ts): its options,
// requests and results, and the defaults of its periods.

import type { Allocation, ClaimSource, IpamStore } from './ipam-store.js';
import type { Subnet, Topology } from './topology.js';

export const DEFAULT_ADDRESS_REST_MS = 30_000;
export const DEFAULT_BLOCK_GRACE_MS = 600_000;
export const DEFAULT_MAX_RETRIES = 16;

export interface IpamOptions {
  readonly topology: Topology;
  readonly store: IpamStore;
  /** The cluster's block claims (block choice only; it may lag behind the store). */
  readonly claims: ClaimSource;
  /** This node's name: owner of the blocks it claims. */
  readonly node: string;
  /** This node's subnet (see placeNode). */
  readonly subnet: Subnet;
  /** Current time in ms. */
  readonly clock: () => number;
  /** How long a released address rests before it is preferred over claiming a block. */
  readonly addressRestMs?: number;
  /** How long a block stays empty before releaseEmptyBlocks() gives it back. */
  readonly blockGraceMs?: number;
  /** How many times a lost compare-and-swap is retried before ErrorCode.Conflict. */
  readonly maxRetries?: number;
  /**
   * Called before an empty block of this node is given back, so the caller
   * can stop advertising it first (peers never see an advertised prefix
   * without its block record).
   */
  readonly beforeRelease?: (prefix: string) => Promise<void>;
}

export interface AllocationRequest {
  readonly containerId: string;
  readonly ifName: string;
  readonly netns?: string;
  readonly podNamespace?: string;
  readonly podName?: string;
  readonly network?: string;
}

export interface AllocationResult {
  readonly address: string;
  readonly prefixLength: 32 | 128;
  /** The block holding the address. */
  readonly block: string;
}

export interface AllocationEntry extends AllocationResult {
  readonly allocation: Allocation;
}
