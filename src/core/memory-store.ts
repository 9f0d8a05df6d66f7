// An in-memory IpamStore: the reference implementation of the store contract
// (see ipam-store.ts), used by tests and by anything that needs IPAM without
// etcd.
//
// Invariants: versions come from one store-wide revision counter, like etcd's
// mod revision, so a version never repeats for a key even after it is deleted
// and created again; every read and write copies the record, so no caller can
// change stored state except through a successful write. Each operation runs
// atomically once it starts; an optional hook runs before it and may delay it
// (to interleave concurrent callers), throw (an unreachable store) or answer
// "lose" to make a compare-and-swap fail as if a concurrent writer had won.

import { cloneBlock, type BlockRecord, type IpamStore, type VersionedBlock } from './ipam-store.js';

export type StoreOperation = 'list' | 'get' | 'create' | 'update' | 'delete';

/**
 * Runs before each operation. Returning (or resolving to) "lose" makes a
 * create, update or delete fail without writing; it has no effect on reads.
 */
export type StoreHook = (operation: StoreOperation, prefix: string | undefined) => void | 'lose' | Promise<void | 'lose'>;

interface Entry {
  record: BlockRecord;
  revision: number;
}

export class MemoryIpamStore implements IpamStore {
  private readonly entries = new Map<string, Entry>();
  private revision = 0;
  private readonly hook: StoreHook | undefined;

  constructor(options: { hook?: StoreHook; blocks?: readonly BlockRecord[] } = {}) {
    this.hook = options.hook;
    for (const record of options.blocks ?? []) this.write(record);
  }

  /** Number of successful writes so far (the current revision). */
  get writes(): number {
    return this.revision;
  }

  async listBlocks(): Promise<VersionedBlock[]> {
    await this.before('list', undefined);
    return [...this.entries.values()].map((e) => this.versioned(e));
  }

  async getBlock(prefix: string): Promise<VersionedBlock | undefined> {
    await this.before('get', prefix);
    const entry = this.entries.get(prefix);
    return entry === undefined ? undefined : this.versioned(entry);
  }

  async createBlock(record: BlockRecord): Promise<boolean> {
    if ((await this.before('create', record.prefix)) === 'lose') return false;
    if (this.entries.has(record.prefix)) return false;
    this.write(record);
    return true;
  }

  async updateBlock(record: BlockRecord, version: string): Promise<boolean> {
    if ((await this.before('update', record.prefix)) === 'lose') return false;
    if (!this.current(record.prefix, version)) return false;
    this.write(record);
    return true;
  }

  async deleteBlock(prefix: string, version: string): Promise<boolean> {
    if ((await this.before('delete', prefix)) === 'lose') return false;
    if (!this.current(prefix, version)) return false;
    this.entries.delete(prefix);
    this.revision++;
    return true;
  }

  /** A copy of every stored record, in key order (for inspection). */
  snapshot(): BlockRecord[] {
    return [...this.entries.keys()].sort().map((k) => cloneBlock((this.entries.get(k) as Entry).record));
  }

  private async before(operation: StoreOperation, prefix: string | undefined): Promise<void | 'lose'> {
    return this.hook === undefined ? undefined : this.hook(operation, prefix);
  }

  private current(prefix: string, version: string): boolean {
    const entry = this.entries.get(prefix);
    return entry !== undefined && String(entry.revision) === version;
  }

  private write(record: BlockRecord): void {
    this.revision++;
    this.entries.set(record.prefix, { record: cloneBlock(record), revision: this.revision });
  }

  private versioned(entry: Entry): VersionedBlock {
    return { record: cloneBlock(entry.record), version: String(entry.revision) };
  }
}
