// The IPAM allocator of one node: claims blocks of its subnet's pod prefix and
// hands out addresses from them, over an injected IpamStore and ClaimSource.
//
// What it reads: block choice uses the claims source (the cluster's claims,
// small records; never anybody's addresses); the node's own state is its own
// claims (one small read each) and its address records (one bounded read of
// its own range), loaded once, migrated from the old layout first (see
// ipam-migrate.ts), and kept in memory afterwards. What it writes: one address
// record per allocation or release, one claim (with the block's first
// address) per claimed block, one atomic delete per block given back.
//
// Invariants:
//  * every block and address of the node lies inside its subnet's pod prefix
//    (blocks come only from chooseBlock, addresses only from the node's blocks);
//  * nothing is owned twice: every write is a compare-and-swap (create-if-absent
//    for a claim or a new address record, the record's version for a reused one,
//    and the claim's version for any address write), so the in-memory state is
//    only a guess: a lost race (or any store error) drops it, re-reads the
//    store and recomputes, at most `maxRetries` times before ErrorCode.Conflict;
//  * an allocation is in the store before allocate() returns, and allocate()
//    is idempotent per (containerId, ifName);
//  * no address is handed out before every claim of the node is migrated;
//  * nothing existing is ever renumbered: writes only add to or remove from
//    the node's own records, never move an allocation or another node's block.
// Calls on one Ipam run one at a time (an internal queue), so concurrent CNI
// calls for the same pod cannot both allocate; other nodes and other writers
// are kept apart by the compare-and-swap alone. Time comes from the injected
// clock; nothing here waits on a timer.

import { aggregate, comparePrefix, contains, formatPrefix, parseAddress, parsePrefix, prefixOf, tryParsePrefix, type Prefix } from './cidr.js';
import { ErrorCode, TrellisError } from '../errors.js';
import { chooseAddress, chooseRestingAddress, firstUnusedAddress, type AddressChoice } from './ipam-address.js';
import { checkBlockSize, chooseBlock, type ClaimedBlock } from './ipam-choose.js';
import { migrateBlock } from './ipam-migrate.js';
import {
  assembleBlock,
  type AddressRecord,
  type Allocation,
  type BlockRecord,
  type ClaimInfo,
  type ClaimRecord,
  type ClaimSource,
  type IpamStore,
  type VersionedAddress,
} from './ipam-store.js';
import {
  DEFAULT_ADDRESS_REST_MS,
  DEFAULT_BLOCK_GRACE_MS,
  DEFAULT_MAX_RETRIES,
  type AllocationEntry,
  type AllocationRequest,
  type AllocationResult,
  type IpamOptions,
} from './ipam-types.js';
import type { Subnet, Topology } from './topology.js';

export {
  DEFAULT_ADDRESS_REST_MS,
  DEFAULT_BLOCK_GRACE_MS,
  DEFAULT_MAX_RETRIES,
  type AllocationEntry,
  type AllocationRequest,
  type AllocationResult,
  type IpamOptions,
} from './ipam-types.js';

/** One claim of this node, as last read or written. */
interface OwnBlock {
  readonly prefix: Prefix;
  readonly claim: ClaimRecord;
  readonly version: string;
}

/** The node's own records as this allocator believes them (dropped on any lost race). */
interface State {
  readonly blocks: Map<string, OwnBlock>;
  /** Address records of the node's blocks, by address text. */
  readonly addresses: Map<string, VersionedAddress>;
}

interface OwnedView {
  readonly record: BlockRecord;
  readonly version: string;
  readonly prefix: Prefix;
}

/** What one attempt sees. */
interface View {
  readonly state: State;
  /** The state was read from the store for this attempt (not remembered). */
  readonly fresh: boolean;
  /** Every block of this node, in any subnet, in address order. */
  readonly owned: OwnedView[];
  /** The node's blocks inside its subnet's pod prefix, in address order. */
  readonly mine: OwnedView[];
}

const LOST = Symbol('lost compare-and-swap');
type Attempt<T> = (view: View) => Promise<T | typeof LOST>;

function parseOrUndefined(text: string): Prefix | undefined {
  const p = tryParsePrefix(text);
  return typeof p === 'string' ? undefined : p;
}

function addressIn(prefix: Prefix, text: string): boolean {
  try {
    return contains(prefix, parseAddress(text));
  } catch {
    return false;
  }
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0) throw new TrellisError(ErrorCode.Config, `${name} must be a non-negative number, got ${v}`);
  return v;
}

function entryOf(block: string, address: string, allocation: Allocation): AllocationEntry {
  return { address, prefixLength: address.includes(':') ? 128 : 32, block, allocation };
}

export class Ipam {
  readonly node: string;
  readonly subnet: Subnet;
  private readonly topology: Topology;
  private readonly store: IpamStore;
  private readonly source: ClaimSource;
  private readonly clock: () => number;
  private readonly restMs: number;
  private readonly graceMs: number;
  private readonly maxRetries: number;
  private readonly beforeRelease: ((prefix: string) => Promise<void>) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private parsed = new Map<string, Prefix | undefined>();
  private state: State | undefined;
  /** How many times the state was read from the store. */
  private loads = 0;
  /** Claims of this node written or found here that the claims source may not show yet. */
  private readonly pendingOwn = new Set<string>();
  /** Claims of others found by a lost claim that the claims source may not show yet. */
  private readonly learned = new Map<string, ClaimInfo>();
  /** Blocks never claimed here: pods on this host still use addresses of them that this node no longer owns (guardLocalAddresses). */
  private readonly avoided = new Set<string>();

  constructor(options: IpamOptions) {
    checkBlockSize(options.topology, options.subnet);
    this.topology = options.topology;
    this.store = options.store;
    this.source = options.claims;
    this.node = options.node;
    this.subnet = options.subnet;
    this.clock = options.clock;
    this.restMs = nonNegative('addressRestMs', options.addressRestMs, DEFAULT_ADDRESS_REST_MS);
    this.graceMs = nonNegative('blockGraceMs', options.blockGraceMs, DEFAULT_BLOCK_GRACE_MS);
    this.maxRetries = Math.floor(nonNegative('maxRetries', options.maxRetries, DEFAULT_MAX_RETRIES));
    this.beforeRelease = options.beforeRelease;
  }

  /**
   * Reads (and migrates) the node's records now, so the first allocation does
   * not wait for it. Every other call does it first when it has not been done.
   */
  load(): Promise<void> {
    return this.run('read its records', async () => undefined);
  }

  /**
   * Of `addresses` (pods' addresses found on this host, e.g. their routes in
   * the kernel), the blocks of those this node has no address record of and
   * whose block it does not hold: the block was taken from it (collected or
   * removed) while the pods ran. This allocator never claims those blocks
   * again in this run, so no address a running pod still uses is handed out
   * a second time. Returns them, sorted.
   */
  guardLocalAddresses(addresses: readonly string[]): Promise<string[]> {
    return this.run('check the addresses of local pods', async (view) => {
      const blocks = new Set<string>();
      for (const text of addresses) {
        if (view.state.addresses.has(text)) continue;
        let block: string;
        try {
          block = formatPrefix(prefixOf(parseAddress(text), this.topology.blockSize));
        } catch {
          continue; // not an address this allocator hands out
        }
        if (!view.state.blocks.has(block) && contains(this.topology.network, parsePrefix(block))) blocks.add(block);
      }
      for (const b of blocks) this.avoided.add(b);
      return [...blocks].sort((a, b) => comparePrefix(parsePrefix(a), parsePrefix(b)));
    });
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
      // A repeated call (rare: a retried ADD) checks that the block was not given back meanwhile.
      if (existing !== undefined) return (await this.stillClaimed(view, existing.block)) ? existing : LOST;
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
      if (claimed !== undefined) return claimed;
      const resting = chooseRestingAddress(records);
      if (resting !== undefined) return this.put(view, resting, allocation);
      throw this.exhausted('address');
    }).then(({ address, prefixLength, block }) => ({ address, prefixLength, block }));
  }

  /** Releases the address of the container interface; undefined when it has none. */
  release(containerId: string, ifName: string): Promise<string | undefined> {
    return this.run('release an address', async (view) => {
      const found = this.find(view, containerId, ifName);
      // Unknown here: read the store once before saying so (another process of the node may hold it).
      if (found === undefined) return view.fresh ? undefined : LOST;
      const block = view.state.blocks.get(found.block) as OwnBlock;
      const current = view.state.addresses.get(found.address) as VersionedAddress;
      const record: AddressRecord = { address: found.address, block: found.block, node: this.node, releasedAt: this.clock() };
      const version = await this.store.updateAddress(record, current.version, block.version);
      if (version === undefined) return LOST;
      view.state.addresses.set(found.address, { record, version });
      return found.address;
    });
  }

  /** Every allocation of this node, in address order within blocks in address order. */
  listAllocations(): Promise<AllocationEntry[]> {
    return this.run('list its allocations', async (view) => view.owned.flatMap((b) => this.entries(b.record)));
  }

  /** The node's blocks inside its subnet, in address order. */
  listBlocks(): Promise<string[]> {
    return this.run('list its blocks', async (view) => view.mine.map((b) => b.record.prefix));
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
      const idle = (b: OwnedView): boolean =>
        Object.keys(b.record.allocations).length === 0 && now - (b.record.emptySince ?? b.record.claimedAt) >= this.graceMs;
      const foreign = view.owned.filter((b) => !view.mine.includes(b) && idle(b));
      for (const b of foreign) {
        if (!(await this.giveBack(view, b, true))) return LOST;
        released.push(b.record.prefix);
      }
      let remaining = view.mine;
      let candidates = remaining.filter(idle);
      while (candidates.length > 0 && remaining.length > 1) {
        const rest = remaining;
        const score = (c: OwnedView): number => aggregate(rest.filter((b) => b !== c).map((b) => b.prefix)).length;
        // Fewest aggregate prefixes left; on a tie the highest block goes first.
        const next = candidates.reduce((a, b) => (score(b) <= score(a) ? b : a));
        if (!(await this.giveBack(view, next, true))) return LOST;
        released.push(next.record.prefix);
        remaining = remaining.filter((b) => b !== next);
        candidates = candidates.filter((b) => b !== next);
      }
      return released;
    });
  }

  /**
   * Blocks taken from this node by another writer (collected or removed while
   * it held them): its state is dropped (re-read on the next call), and these
   * blocks are never chosen again by this allocator while nobody claims them,
   * since pods may still hold addresses in them.
   */
  lost(blocks: readonly string[]): void {
    this.state = undefined;
    for (const b of blocks) {
      this.pendingOwn.delete(b);
      this.learned.set(b, { prefix: b, node: '(taken from this node)' });
      this.avoided.add(b); // its pods may still hold addresses of it, even once its new owner gives it back
    }
  }

  /**
   * Gives back every block of this node with its address records, whatever
   * they hold (the node is gone), from a fresh read. Returns the blocks.
   */
  releaseNode(): Promise<string[]> {
    const released: string[] = [];
    return this.run('release the node', async (view) => {
      for (const b of view.owned) {
        if (!(await this.giveBack(view, b, false))) return LOST;
        released.push(b.record.prefix);
      }
      return released;
    }, true);
  }

  /**
   * Runs `attempt` until it does not lose a race, one call at a time; a lost
   * race or an error drops the state. `fresh`: read the store even when the
   * state is at hand (for what must not act on a guess).
   */
  private run<T>(what: string, attempt: Attempt<T>, fresh = false): Promise<T> {
    const result = this.queue.then(async () => {
      if (fresh) this.state = undefined;
      for (let i = 0; i <= this.maxRetries; i++) {
        let outcome: T | typeof LOST;
        try {
          const loads = this.loads;
          const state = await this.load0();
          outcome = await attempt(this.view(state, this.loads !== loads));
        } catch (err) {
          this.state = undefined;
          throw err;
        }
        if (outcome !== LOST) return outcome;
        this.state = undefined;
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

  private parse(text: string): Prefix | undefined {
    if (!this.parsed.has(text)) this.parsed.set(text, parseOrUndefined(text));
    return this.parsed.get(text);
  }

  /**
   * The node's claims (from the claims source and from this allocator's own
   * writes, each checked and migrated in the store), then its address records
   * in one read of its own range.
   */
  private async load0(): Promise<State> {
    if (this.state !== undefined) return this.state;
    const own = new Set(this.pendingOwn);
    for (const c of await this.source.claims()) {
      if (c.node === this.node) own.add(c.prefix);
      this.pendingOwn.delete(c.prefix);
      this.learned.delete(c.prefix);
    }
    const blocks = new Map<string, OwnBlock>();
    for (const text of own) {
      const prefix = this.parse(text);
      if (prefix === undefined) continue; // not a block this allocator can reason about
      const { claim } = await migrateBlock(this.store, this.node, text);
      if (claim === undefined) {
        this.pendingOwn.delete(text);
        continue;
      }
      blocks.set(text, { prefix, claim: claim.claim, version: claim.version });
    }
    const addresses = new Map<string, VersionedAddress>();
    for (const a of (await this.store.listAddresses(this.node)).addresses) {
      const block = blocks.get(a.record.block);
      if (block !== undefined && addressIn(block.prefix, a.record.address)) addresses.set(a.record.address, a);
    }
    this.state = { blocks, addresses };
    this.loads++;
    return this.state;
  }

  private view(state: State, fresh: boolean): View {
    const byBlock = new Map<string, AddressRecord[]>();
    for (const { record } of state.addresses.values()) byBlock.set(record.block, [...(byBlock.get(record.block) ?? []), record]);
    const owned = [...state.blocks.values()]
      .sort((a, b) => comparePrefix(a.prefix, b.prefix))
      .map((b) => ({ record: assembleBlock(b.claim, byBlock.get(b.claim.prefix) ?? []), version: b.version, prefix: b.prefix }));
    const mine = owned.filter((b) => contains(this.subnet.podPrefix, b.prefix));
    return { state, fresh, owned, mine };
  }

  /** Every claim block choice must avoid: the source's, this node's, and those found by lost claims. */
  private async claimed(state: State): Promise<ClaimedBlock[]> {
    const out: ClaimedBlock[] = [];
    const seen = new Set<string>();
    for (const c of await this.source.claims()) {
      const prefix = this.parse(c.prefix);
      if (prefix === undefined) continue;
      seen.add(c.prefix);
      // The source may still show a block this node gave back, or lag behind its claims.
      out.push({ prefix, node: c.node === this.node && !state.blocks.has(c.prefix) ? '(unknown)' : c.node });
    }
    for (const b of state.blocks.values()) if (!seen.has(b.claim.prefix)) out.push({ prefix: b.prefix, node: this.node });
    for (const c of this.learned.values()) {
      const prefix = this.parse(c.prefix);
      if (prefix !== undefined && !seen.has(c.prefix)) out.push({ prefix, node: c.node });
    }
    for (const text of this.avoided) {
      const prefix = this.parse(text);
      if (prefix !== undefined && !seen.has(text) && !state.blocks.has(text)) out.push({ prefix, node: '(pods of this host)' });
    }
    return out;
  }

  private entries(record: BlockRecord): AllocationEntry[] {
    return Object.entries(record.allocations)
      .map(([address, allocation]) => ({ address, allocation, addr: parseAddress(address).addr }))
      .sort((a, b) => (a.addr < b.addr ? -1 : 1)) // keys of one record are distinct
      .map(({ address, allocation }) => entryOf(record.prefix, address, allocation));
  }

  private find(view: View, containerId: string, ifName: string): AllocationEntry | undefined {
    for (const b of view.owned) {
      for (const [address, allocation] of Object.entries(b.record.allocations)) {
        if (allocation.containerId === containerId && allocation.ifName === ifName) return entryOf(b.record.prefix, address, allocation);
      }
    }
    return undefined;
  }

  private async put(view: View, choice: AddressChoice, allocation: Allocation): Promise<AllocationEntry | typeof LOST> {
    const block = view.state.blocks.get(choice.block) as OwnBlock;
    const record: AddressRecord = { address: choice.address, block: choice.block, node: this.node, allocation };
    const current = view.state.addresses.get(choice.address);
    const version =
      current === undefined
        ? await this.store.createAddress(record, block.version)
        : await this.store.updateAddress(record, current.version, block.version);
    if (version === undefined) return LOST;
    view.state.addresses.set(choice.address, { record, version });
    return entryOf(choice.block, choice.address, allocation);
  }

  /**
   * Claims the block chooseBlock picks, holding `allocation` at its first
   * address when given (one write: a block claimed for a pod is never seen
   * empty), or empty since now. Undefined when the subnet has no free block.
   */
  private async claim(view: View, allocation: Allocation): Promise<AllocationEntry | undefined | typeof LOST>;
  private async claim(view: View, allocation: undefined): Promise<string | undefined | typeof LOST>;
  private async claim(view: View, allocation: Allocation | undefined): Promise<AllocationEntry | string | undefined | typeof LOST> {
    const block = chooseBlock(this.topology, this.subnet, await this.claimed(view.state), this.node);
    if (block === undefined) return undefined;
    const claim: ClaimRecord = { prefix: formatPrefix(block), subnet: this.subnet.id, node: this.node, claimedAt: this.clock() };
    const address = allocation === undefined ? undefined : (firstUnusedAddress(assembleBlock(claim, [])) as string);
    const first: AddressRecord | undefined = allocation === undefined ? undefined : { address: address as string, block: claim.prefix, node: this.node, allocation };
    const version = await this.store.createClaim(claim, first);
    if (version === undefined) {
      const holder = await this.store.getClaim(claim.prefix);
      if (holder !== undefined && holder.claim.node === this.node) this.pendingOwn.add(claim.prefix);
      else if (holder !== undefined) this.learned.set(claim.prefix, { prefix: claim.prefix, node: holder.claim.node });
      return LOST;
    }
    this.pendingOwn.add(claim.prefix);
    view.state.blocks.set(claim.prefix, { prefix: block, claim, version });
    if (first === undefined || allocation === undefined) return claim.prefix;
    view.state.addresses.set(first.address, { record: first, version });
    return entryOf(claim.prefix, first.address, allocation);
  }

  private async claimEmpty(view: View): Promise<string | typeof LOST> {
    const claimed = await this.claim(view, undefined);
    if (claimed === undefined) throw this.exhausted('block');
    return claimed;
  }

  /**
   * Deletes a claim of this node with its address records, in one step that
   * fails if anything in the block changed since a fresh read of it; with
   * `onlyIfEmpty`, also when that read finds an allocation (beforeRelease
   * runs between the read and the delete: only for a block found empty).
   */
  private async giveBack(view: View, b: OwnedView, onlyIfEmpty: boolean): Promise<boolean> {
    const fresh = await this.store.listBlockAddresses(this.node, b.record.prefix);
    if (onlyIfEmpty) {
      if (fresh.addresses.some((a) => a.record.allocation !== undefined)) return false;
      await this.beforeRelease?.(b.record.prefix);
    }
    if (!(await this.store.releaseBlock(this.node, b.record.prefix, b.version, fresh.revision))) return false;
    view.state.blocks.delete(b.record.prefix);
    this.pendingOwn.delete(b.record.prefix);
    for (const [address, a] of view.state.addresses) if (a.record.block === b.record.prefix) view.state.addresses.delete(address);
    return true;
  }

  private async stillClaimed(view: View, block: string): Promise<boolean> {
    return (await this.store.getClaim(block))?.version === view.state.blocks.get(block)?.version;
  }

  private exhausted(what: 'address' | 'block'): TrellisError {
    const pod = formatPrefix(this.subnet.podPrefix);
    return new TrellisError(ErrorCode.Exhausted, `subnet ${this.subnet.id} (pod prefix ${pod}) has no free ${what} left for node ${this.node}`, {
      details: { subnet: this.subnet.id, podPrefix: pod, node: this.node },
    });
  }
}
