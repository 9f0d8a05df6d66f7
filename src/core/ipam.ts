// The IPAM allocator of one node: claims blocks of its subnet's pod prefix and
// hands out addresses from them, over an injected IpamStore.
//
// Invariants:
//  * every block and address of the node lies inside its subnet's pod prefix
//    (blocks come only from chooseBlock, addresses only from the node's blocks);
//  * nothing is owned twice: every write is a compare-and-swap on the version
//    it was computed from; a lost race re-reads the store and recomputes, at
//    most `maxRetries` times before failing with ErrorCode.Conflict;
//  * an allocation is in its block record before allocate() returns, and
//    allocate() is idempotent per (containerId, ifName);
//  * nothing existing is ever renumbered: writes only add to or remove from
//    the node's own records, never move an allocation or another node's block.
// Calls on one Ipam run one at a time (an internal queue), so concurrent CNI
// calls for the same pod cannot both allocate; other nodes and other writers
// are kept apart by the compare-and-swap alone. Time comes from the injected
// clock; nothing here waits on a timer.

import { aggregate, comparePrefix, contains, formatPrefix, parseAddress, tryParsePrefix, type Prefix } from './cidr.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { chooseAddress, chooseRestingAddress, firstUnusedAddress, type AddressChoice } from './ipam-address.js';
import { checkBlockSize, chooseBlock, type ClaimedBlock } from './ipam-choose.js';
import { cloneBlock, type Allocation, type BlockRecord, type IpamStore, type VersionedBlock } from './ipam-store.js';
import type { Subnet, Topology } from './topology.js';

export const DEFAULT_ADDRESS_REST_MS = 30_000;
export const DEFAULT_BLOCK_GRACE_MS = 600_000;
export const DEFAULT_MAX_RETRIES = 16;

export interface IpamOptions {
  readonly topology: Topology;
  readonly store: IpamStore;
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

/** What the store holds, as one attempt sees it. */
interface View {
  readonly claimed: ClaimedBlock[];
  /** Every block of this node, in any subnet, in address order. */
  readonly owned: Array<VersionedBlock & { prefix: Prefix }>;
  /** The node's blocks inside its subnet's pod prefix, in address order. */
  readonly mine: Array<VersionedBlock & { prefix: Prefix }>;
}

const LOST = Symbol('lost compare-and-swap');
type Attempt<T> = (view: View) => Promise<T | typeof LOST>;

function parseOrUndefined(text: string): Prefix | undefined {
  const p = tryParsePrefix(text);
  return typeof p === 'string' ? undefined : p;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0) throw new TrellisError(ErrorCode.Config, `${name} must be a non-negative number, got ${v}`);
  return v;
}

function entryOf(record: BlockRecord, address: string, allocation: Allocation): AllocationEntry {
  return { address, prefixLength: address.includes(':') ? 128 : 32, block: record.prefix, allocation };
}

export class Ipam {
  readonly node: string;
  readonly subnet: Subnet;
  private readonly topology: Topology;
  private readonly store: IpamStore;
  private readonly clock: () => number;
  private readonly restMs: number;
  private readonly graceMs: number;
  private readonly maxRetries: number;
  private readonly beforeRelease: ((prefix: string) => Promise<void>) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private parsed = new Map<string, Prefix | undefined>();

  constructor(options: IpamOptions) {
    checkBlockSize(options.topology, options.subnet);
    this.topology = options.topology;
    this.store = options.store;
    this.node = options.node;
    this.subnet = options.subnet;
    this.clock = options.clock;
    this.restMs = nonNegative('addressRestMs', options.addressRestMs, DEFAULT_ADDRESS_REST_MS);
    this.graceMs = nonNegative('blockGraceMs', options.blockGraceMs, DEFAULT_BLOCK_GRACE_MS);
    this.maxRetries = Math.floor(nonNegative('maxRetries', options.maxRetries, DEFAULT_MAX_RETRIES));
    this.beforeRelease = options.beforeRelease;
  }

  /** Makes sure the node holds at least one block; returns its blocks in the subnet. */
  ensureBlock(): Promise<string[]> {
    return this.run('ensure a block', async (view) => {
      if (view.mine.length > 0) return view.mine.map((b) => b.record.prefix);
      const claimed = await this.claimEmpty(view);
      return claimed === LOST ? LOST : [claimed];
    });
  }

  /** Claims one more block; returns its prefix. */
  claimBlock(): Promise<string> {
    return this.run('claim a block', (view) => this.claimEmpty(view));
  }

  /** An address for the container interface; the same one again on a repeated call. */
  allocate(req: AllocationRequest): Promise<AllocationResult> {
    return this.run('allocate an address', async (view) => {
      const existing = this.find(view, req.containerId, req.ifName);
      if (existing !== undefined) return existing;
      const now = this.clock();
      const allocation: Allocation = { containerId: req.containerId, ifName: req.ifName, allocatedAt: now };
      for (const field of ['netns', 'podNamespace', 'podName', 'network'] as const) {
        const value = req[field];
        if (value !== undefined) allocation[field] = value;
      }
      const records = view.mine.map((b) => b.record);
      const choice = chooseAddress(records, now, this.restMs);
      if (choice !== undefined) return this.put(view, choice, allocation);
      const claimed = await this.claim(view, allocation);
      if (claimed !== undefined) return claimed === LOST ? LOST : entryOf(claimed, Object.keys(claimed.allocations)[0] as string, allocation);
      const resting = chooseRestingAddress(records);
      if (resting !== undefined) return this.put(view, resting, allocation);
      throw this.exhausted('address');
    }).then(({ address, prefixLength, block }) => ({ address, prefixLength, block }));
  }

  /** Releases the address of the container interface; undefined when it has none. */
  release(containerId: string, ifName: string): Promise<string | undefined> {
    return this.run('release an address', async (view) => {
      const found = this.find(view, containerId, ifName);
      if (found === undefined) return undefined;
      const block = view.owned.find((b) => b.record.prefix === found.block) as VersionedBlock;
      const record = cloneBlock(block.record);
      const now = this.clock();
      delete record.allocations[found.address];
      record.released[found.address] = now;
      if (Object.keys(record.allocations).length === 0) record.emptySince = now;
      return (await this.store.updateBlock(record, block.version)) ? found.address : LOST;
    });
  }

  /** Every allocation of this node, in address order within blocks in address order. */
  async listAllocations(): Promise<AllocationEntry[]> {
    const view = await this.read();
    return view.owned.flatMap((b) => this.entries(b.record));
  }

  /** The node's blocks inside its subnet, in address order. */
  async listBlocks(): Promise<string[]> {
    return (await this.read()).mine.map((b) => b.record.prefix);
  }

  /**
   * Gives back every block of this node that has been empty for at least the
   * grace period, keeping at least one block in the subnet; blocks whose
   * removal leaves the best aggregation of the rest go first. Returns them.
   */
  releaseEmptyBlocks(): Promise<string[]> {
    const released: string[] = [];
    return this.run('release empty blocks', async (view) => {
      const now = this.clock();
      const idle = (b: VersionedBlock): boolean =>
        Object.keys(b.record.allocations).length === 0 && now - (b.record.emptySince ?? b.record.claimedAt) >= this.graceMs;
      const foreign = view.owned.filter((b) => !view.mine.includes(b) && idle(b));
      for (const b of foreign) {
        await this.beforeRelease?.(b.record.prefix);
        if (!(await this.store.deleteBlock(b.record.prefix, b.version))) return LOST;
        released.push(b.record.prefix);
      }
      let remaining = view.mine;
      let candidates = remaining.filter(idle);
      while (candidates.length > 0 && remaining.length > 1) {
        const rest = remaining;
        const score = (c: VersionedBlock): number => aggregate(rest.filter((b) => b !== c).map((b) => b.prefix)).length;
        // Fewest aggregate prefixes left; on a tie the highest block goes first.
        const next = candidates.reduce((a, b) => (score(b) <= score(a) ? b : a));
        await this.beforeRelease?.(next.record.prefix);
        if (!(await this.store.deleteBlock(next.record.prefix, next.version))) return LOST;
        released.push(next.record.prefix);
        remaining = remaining.filter((b) => b !== next);
        candidates = candidates.filter((b) => b !== next);
      }
      return released;
    });
  }

  /** Deletes every block claim of this node (the node is gone). Returns them. */
  releaseNode(): Promise<string[]> {
    const released: string[] = [];
    return this.run('release the node', async (view) => {
      for (const b of view.owned) {
        if (!(await this.store.deleteBlock(b.record.prefix, b.version))) return LOST;
        released.push(b.record.prefix);
      }
      return released;
    });
  }

  /** Runs `attempt` on fresh views until it does not lose a race, one call at a time. */
  private run<T>(what: string, attempt: Attempt<T>): Promise<T> {
    const result = this.queue.then(async () => {
      for (let i = 0; i <= this.maxRetries; i++) {
        const outcome = await attempt(await this.read());
        if (outcome !== LOST) return outcome;
      }
      throw new TrellisError(
        ErrorCode.Conflict,
        `node ${this.node}: could not ${what}: lost ${this.maxRetries + 1} compare-and-swap races in a row`,
        { details: { node: this.node, subnet: this.subnet.id } },
      );
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async read(): Promise<View> {
    const claimed: ClaimedBlock[] = [];
    const owned: View['owned'] = [];
    const parsed = new Map<string, Prefix | undefined>();
    for (const b of await this.store.listBlocks()) {
      const text = b.record.prefix;
      const prefix = this.parsed.has(text) ? this.parsed.get(text) : parseOrUndefined(text);
      parsed.set(text, prefix);
      if (prefix === undefined) continue; // not a block this allocator can reason about
      claimed.push({ prefix, node: b.record.node });
      if (b.record.node === this.node) owned.push({ ...b, prefix });
    }
    // Parsing IPv6 text is not cheap: remember the prefixes of the blocks that exist now.
    this.parsed = parsed;
    owned.sort((a, b) => comparePrefix(a.prefix, b.prefix));
    const mine = owned.filter((b) => contains(this.subnet.podPrefix, b.prefix));
    return { claimed, owned, mine };
  }

  private entries(record: BlockRecord): AllocationEntry[] {
    return Object.entries(record.allocations)
      .map(([address, allocation]) => ({ address, allocation, addr: parseAddress(address).addr }))
      .sort((a, b) => (a.addr < b.addr ? -1 : 1)) // keys of one record are distinct
      .map(({ address, allocation }) => entryOf(record, address, allocation));
  }

  private find(view: View, containerId: string, ifName: string): AllocationEntry | undefined {
    for (const b of view.owned) {
      for (const [address, allocation] of Object.entries(b.record.allocations)) {
        if (allocation.containerId === containerId && allocation.ifName === ifName) return entryOf(b.record, address, allocation);
      }
    }
    return undefined;
  }

  private async put(view: View, choice: AddressChoice, allocation: Allocation): Promise<AllocationEntry | typeof LOST> {
    const block = view.mine.find((b) => b.record.prefix === choice.block) as VersionedBlock;
    const record = cloneBlock(block.record);
    record.allocations[choice.address] = allocation;
    delete record.released[choice.address];
    delete record.emptySince;
    return (await this.store.updateBlock(record, block.version)) ? entryOf(record, choice.address, allocation) : LOST;
  }

  /**
   * Claims the block chooseBlock picks, holding `allocation` at its first
   * address when given (so a block claimed for a pod is never seen empty), or
   * empty since now. Undefined when the subnet has no free block.
   */
  private async claim(view: View, allocation: Allocation | undefined): Promise<BlockRecord | undefined | typeof LOST> {
    const block = chooseBlock(this.topology, this.subnet, view.claimed, this.node);
    if (block === undefined) return undefined;
    const now = this.clock();
    const record: BlockRecord = { prefix: formatPrefix(block), subnet: this.subnet.id, node: this.node, claimedAt: now, allocations: {}, released: {} };
    if (allocation === undefined) record.emptySince = now;
    else record.allocations[firstUnusedAddress(record) as string] = allocation;
    return (await this.store.createBlock(record)) ? record : LOST;
  }

  private async claimEmpty(view: View): Promise<string | typeof LOST> {
    const claimed = await this.claim(view, undefined);
    if (claimed === undefined) throw this.exhausted('block');
    return claimed === LOST ? LOST : claimed.prefix;
  }

  private exhausted(what: 'address' | 'block'): TrellisError {
    const pod = formatPrefix(this.subnet.podPrefix);
    return new TrellisError(ErrorCode.Exhausted, `subnet ${this.subnet.id} (pod prefix ${pod}) has no free ${what} left for node ${this.node}`, {
      details: { subnet: this.subnet.id, podPrefix: pod, node: this.node },
    });
  }
}
