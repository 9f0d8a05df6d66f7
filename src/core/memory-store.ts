// An in-memory IpamStore: the reference implementation of the store contract
// (see ipam-store.ts), used by tests and by anything that needs IPAM without
// etcd. It is also a ClaimSource (every claim it holds, never lagging).
//
// Invariants: versions come from one store-wide revision counter, like etcd's
// mod revision, and each successful write (one etcd transaction) moves it by
// one, so a version never repeats for a key even after it is deleted and
// created again; every read and write copies the record, so no caller can
// change stored state except through a successful write. Each operation runs
// atomically once it starts; an optional hook runs before it and may delay it
// (to interleave concurrent callers), throw (an unreachable store, a crash) or
// answer "lose" to make a write fail as if a concurrent writer had won.

import {
  assembleBlock,
  cloneAddress,
  cloneBlock,
  type AddressRecord,
  type AddressSnapshot,
  type BlockRecord,
  type ClaimInfo,
  type ClaimRecord,
  type ClaimSource,
  type IpamStore,
  type LegacyAddresses,
  type StoredClaim,
} from './ipam-store.js';

export type StoreOperation =
  | 'claims'
  | 'getClaim'
  | 'listAddresses'
  | 'listBlockAddresses'
  | 'createClaim'
  | 'rewriteClaim'
  | 'createAddress'
  | 'updateAddress'
  | 'releaseBlock'
  | 'deleteAddresses';

/** The operations that write (the others only read). */
export const WRITE_OPERATIONS: ReadonlySet<StoreOperation> = new Set([
  'createClaim',
  'rewriteClaim',
  'createAddress',
  'updateAddress',
  'releaseBlock',
  'deleteAddresses',
]);

/**
 * Runs before each operation with the block prefix (or node, for node-wide
 * operations). Returning (or resolving to) "lose" makes a write fail without
 * writing; it has no effect on reads.
 */
export type StoreHook = (operation: StoreOperation, subject: string | undefined) => void | 'lose' | Promise<void | 'lose'>;

interface ClaimEntry {
  claim: ClaimRecord;
  legacy: LegacyAddresses | undefined;
  revision: number;
}

interface AddressEntry {
  record: AddressRecord;
  revision: number;
}

const addressKey = (node: string, block: string, address: string): string => `${node}\u0000${block}\u0000${address}`;

function cloneLegacy(legacy: LegacyAddresses): LegacyAddresses {
  const allocations: LegacyAddresses['allocations'] = {};
  for (const [a, v] of Object.entries(legacy.allocations)) allocations[a] = { ...v };
  return { allocations, released: { ...legacy.released } };
}

export interface MemoryStoreOptions {
  hook?: StoreHook;
  /** Blocks stored in the current layout: a claim plus one address record per address. */
  blocks?: readonly BlockRecord[];
  /** Blocks stored in the old layout: the addresses inside the claim. */
  legacyBlocks?: readonly BlockRecord[];
}

export class MemoryIpamStore implements IpamStore, ClaimSource {
  private readonly claimEntries = new Map<string, ClaimEntry>();
  private readonly addressEntries = new Map<string, AddressEntry>();
  private revision = 0;
  hook: StoreHook | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.hook = options.hook;
    for (const b of options.blocks ?? []) {
      this.revision++;
      this.claimEntries.set(b.prefix, { claim: claimOf(b), legacy: undefined, revision: this.revision });
      for (const [address, allocation] of Object.entries(b.allocations)) {
        this.putAddress({ address, block: b.prefix, node: b.node, allocation: { ...allocation } });
      }
      for (const [address, releasedAt] of Object.entries(b.released)) {
        if (!(address in b.allocations)) this.putAddress({ address, block: b.prefix, node: b.node, releasedAt });
      }
    }
    for (const b of options.legacyBlocks ?? []) {
      this.revision++;
      this.claimEntries.set(b.prefix, { claim: claimOf(b), legacy: cloneLegacy(b), revision: this.revision });
    }
  }

  /** Number of successful writes so far (the current revision). */
  get writes(): number {
    return this.revision;
  }

  async claims(): Promise<ClaimInfo[]> {
    await this.before('claims', undefined);
    return [...this.claimEntries.values()].map((e) => ({ prefix: e.claim.prefix, node: e.claim.node }));
  }

  async getClaim(prefix: string): Promise<StoredClaim | undefined> {
    await this.before('getClaim', prefix);
    const e = this.claimEntries.get(prefix);
    if (e === undefined) return undefined;
    return { claim: { ...e.claim }, version: String(e.revision), ...(e.legacy === undefined ? {} : { legacy: cloneLegacy(e.legacy) }) };
  }

  async createClaim(claim: ClaimRecord, first?: AddressRecord): Promise<string | undefined> {
    if ((await this.before('createClaim', claim.prefix)) === 'lose') return undefined;
    if (this.claimEntries.has(claim.prefix)) return undefined;
    this.revision++;
    for (const [k, e] of this.addressEntries) {
      if (e.record.node === claim.node && e.record.block === claim.prefix) this.addressEntries.delete(k);
    }
    this.claimEntries.set(claim.prefix, { claim: { ...claim }, legacy: undefined, revision: this.revision });
    if (first !== undefined) this.addressEntries.set(addressKey(first.node, first.block, first.address), { record: cloneAddress(first), revision: this.revision });
    return String(this.revision);
  }

  async rewriteClaim(claim: ClaimRecord, version: string): Promise<string | undefined> {
    if ((await this.before('rewriteClaim', claim.prefix)) === 'lose') return undefined;
    if (!this.claimAt(claim.prefix, version)) return undefined;
    this.revision++;
    this.claimEntries.set(claim.prefix, { claim: { ...claim }, legacy: undefined, revision: this.revision });
    return String(this.revision);
  }

  async listAddresses(node: string): Promise<AddressSnapshot> {
    await this.before('listAddresses', node);
    return this.select((r) => r.node === node);
  }

  async listBlockAddresses(node: string, block: string): Promise<AddressSnapshot> {
    await this.before('listBlockAddresses', block);
    return this.select((r) => r.node === node && r.block === block);
  }

  async createAddress(record: AddressRecord, claimVersion: string): Promise<string | undefined> {
    if ((await this.before('createAddress', record.block)) === 'lose') return undefined;
    const key = addressKey(record.node, record.block, record.address);
    if (!this.claimAt(record.block, claimVersion) || this.addressEntries.has(key)) return undefined;
    this.putAddress(record);
    return String(this.revision);
  }

  async updateAddress(record: AddressRecord, version: string, claimVersion: string): Promise<string | undefined> {
    if ((await this.before('updateAddress', record.block)) === 'lose') return undefined;
    const cur = this.addressEntries.get(addressKey(record.node, record.block, record.address));
    if (!this.claimAt(record.block, claimVersion) || cur === undefined || String(cur.revision) !== version) return undefined;
    this.putAddress(record);
    return String(this.revision);
  }

  async releaseBlock(node: string, prefix: string, claimVersion: string, revision: string): Promise<boolean> {
    if ((await this.before('releaseBlock', prefix)) === 'lose') return false;
    const claim = this.claimEntries.get(prefix);
    if (claim === undefined || claim.claim.node !== node || String(claim.revision) !== claimVersion) return false;
    const inBlock = [...this.addressEntries].filter(([, e]) => e.record.node === node && e.record.block === prefix);
    if (inBlock.some(([, e]) => e.revision > Number(revision))) return false;
    this.revision++;
    this.claimEntries.delete(prefix);
    for (const [k] of inBlock) this.addressEntries.delete(k);
    return true;
  }

  async deleteAddresses(node: string): Promise<void> {
    await this.before('deleteAddresses', node); // unconditional: there is no race to lose
    const keys = [...this.addressEntries].filter(([, e]) => e.record.node === node).map(([k]) => k);
    if (keys.length === 0) return;
    this.revision++;
    for (const k of keys) this.addressEntries.delete(k);
  }

  /**
   * Every claim in prefix order as a block view: its owner's address records
   * in it, plus the addresses still inside an old-layout claim (those not
   * written as records yet).
   */
  snapshot(): BlockRecord[] {
    return [...this.claimEntries.keys()].sort().map((prefix) => {
      const e = this.claimEntries.get(prefix) as ClaimEntry;
      const records = [...this.addressEntries.values()].map((a) => a.record);
      const block = assembleBlock(e.claim, records);
      if (e.legacy !== undefined) {
        const known = new Set(records.filter((r) => r.node === e.claim.node && r.block === prefix).map((r) => r.address));
        for (const [a, v] of Object.entries(e.legacy.allocations)) if (!known.has(a)) block.allocations[a] = { ...v };
        for (const [a, v] of Object.entries(e.legacy.released)) if (!known.has(a) && !(a in block.allocations)) block.released[a] = v;
        if (Object.keys(block.allocations).length > 0) delete block.emptySince;
      }
      return cloneBlock(block);
    });
  }

  /** Every address record, in key order (for inspection). */
  addressRecords(): AddressRecord[] {
    return [...this.addressEntries.keys()].sort().map((k) => cloneAddress((this.addressEntries.get(k) as AddressEntry).record));
  }

  /** Whether the claim of `prefix` still carries old-layout addresses. */
  isLegacy(prefix: string): boolean {
    return this.claimEntries.get(prefix)?.legacy !== undefined;
  }

  private select(keep: (r: AddressRecord) => boolean): AddressSnapshot {
    const addresses = [...this.addressEntries.keys()]
      .sort()
      .map((k) => this.addressEntries.get(k) as AddressEntry)
      .filter((e) => keep(e.record))
      .map((e) => ({ record: cloneAddress(e.record), version: String(e.revision) }));
    return { addresses, revision: String(this.revision) };
  }

  private claimAt(prefix: string, version: string): boolean {
    const e = this.claimEntries.get(prefix);
    return e !== undefined && String(e.revision) === version;
  }

  private putAddress(record: AddressRecord): void {
    this.revision++;
    this.addressEntries.set(addressKey(record.node, record.block, record.address), { record: cloneAddress(record), revision: this.revision });
  }

  private async before(operation: StoreOperation, subject: string | undefined): Promise<void | 'lose'> {
    return this.hook === undefined ? undefined : this.hook(operation, subject);
  }
}

function claimOf(b: ClaimRecord): ClaimRecord {
  return { prefix: b.prefix, subnet: b.subnet, node: b.node, claimedAt: b.claimedAt };
}
