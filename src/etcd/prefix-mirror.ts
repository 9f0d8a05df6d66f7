// A local mirror of every key under one etcd prefix, kept current by a watch.
//
// Invariants:
//  * Revision continuity: the first list is taken at revision R and the watch
//    starts at R+1, so no change is missed or seen twice. After a disconnect
//    the watch resumes from the last revision it delivered (the etcd3 client
//    tracks it); if that revision has been compacted away, the mirror lists
//    the prefix again and emits the difference as ordinary changes.
//  * `synced` is true once the first full list has been applied; consumers
//    must not act on absence (delete anything) before that.
//  * Listeners get batches of changes in revision order; a batch never mixes
//    two different list snapshots.
//  * Bounded reads: lists are paged at one revision (src/etcd/paged-range.ts),
//    so no prefix is too large to list. A value above `maxValueBytes` (listed
//    or watched) is never held: it is counted in `oversized`, reported once
//    per key revision to `onOversize`, and the key is treated as absent.
//  * `compact` may shrink each value before it is held (e.g. keep only the
//    fields a consumer reads): memory follows what consumers need, not what
//    writers stored. Changes carry the compacted value.
//  * Entries and puts carry the key's lease and create revision: readers
//    judge records by them (an advertisement must share its node record's
//    lease; a claim's rightful holder is the oldest hold, src/core/claim-trust.ts).

import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../core/backoff.js';
import { retryUntil } from '../retry.js';
import { DEFAULT_MAX_VALUE_BYTES, rangePages } from './paged-range.js';

export interface PrefixMirrorOptions {
  /** Values larger than this are skipped (default DEFAULT_MAX_VALUE_BYTES). */
  readonly maxValueBytes?: number;
  /** Called once per skipped key revision. */
  readonly onOversize?: (key: string, bytes: number) => void;
  /** Shrinks a value to what consumers need before it is held. */
  readonly compact?: (key: string, value: string) => string;
  /** Keys asked for per list page. */
  readonly pageKeys?: number;
}

/** Listing again after a watch ended: 200 ms doubling to 5 s. */
const RELIST_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5000 };

export interface MirrorEntry {
  readonly value: string;
  readonly modRevision: string;
  /** Revision at which the key was (last) created: unchanged by later puts, new after a delete. */
  readonly createRevision: string;
  readonly lease: string;
}

export interface MirrorChange {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** The new value for puts, the last known value for deletes. */
  readonly value: string | undefined;
  readonly modRevision: string;
  /** The key's create revision (puts only). */
  readonly createRevision?: string;
  /** The key's lease, '0' for none (puts only). */
  readonly lease?: string;
}

export interface PrefixMirrorEvents {
  changes: [changes: MirrorChange[]];
  synced: [];
}

export class PrefixMirror extends EventEmitter<PrefixMirrorEvents> {
  private readonly map = new Map<string, MirrorEntry>();
  private watcher: Watcher | undefined;
  private stopped = false;
  private revision = '0';
  private relisting: Promise<void> | undefined;
  synced = false;
  /** Number of full lists taken (1 after start, more after compaction or errors). */
  lists = 0;
  /** Number of watches that ended with an error (compaction, cancellation). */
  watchErrors = 0;
  /** Key revisions skipped for being larger than maxValueBytes. */
  oversized = 0;
  /** Revision of each oversized key already reported. */
  private readonly oversizedAt = new Map<string, string>();

  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
    private readonly log: Logger,
    private readonly options: PrefixMirrorOptions = {},
  ) {
    super();
  }

  private get maxValueBytes(): number {
    return this.options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  }

  /** Count and report one oversized key revision (once, however often it is listed again). */
  private skipOversize(key: string, bytes: number, modRevision: string): void {
    if (this.oversizedAt.get(key) === modRevision) return;
    if (this.oversizedAt.size >= 10_000) this.oversizedAt.clear();
    this.oversizedAt.set(key, modRevision);
    this.oversized++;
    this.log.warn({ key, bytes, limit: this.maxValueBytes }, 'ignoring a value above the size limit');
    this.options.onOversize?.(key, bytes);
  }

  private toEntry(kv: IKeyValue): MirrorEntry {
    const raw = kv.value.toString();
    const value = this.options.compact === undefined ? raw : this.options.compact(kv.key.toString(), raw);
    return { value, modRevision: String(kv.mod_revision), createRevision: String(kv.create_revision), lease: String(kv.lease) };
  }

  entries(): ReadonlyMap<string, MirrorEntry> {
    return this.map;
  }

  get(key: string): MirrorEntry | undefined {
    return this.map.get(key);
  }

  /** Last etcd revision reflected in the mirror. */
  get lastRevision(): string {
    return this.revision;
  }

  /** List the prefix, then watch it. Resolves after the first list is applied. */
  async start(): Promise<void> {
    await this.relist();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.watcher;
    this.watcher = undefined;
    if (w !== undefined) await cancelQuietly(w);
  }

  /** Take a fresh list and re-watch from it (after compaction or a broken watch). */
  relist(): Promise<void> {
    this.relisting ??= this.doRelist().finally(() => {
      this.relisting = undefined;
    });
    return this.relisting;
  }

  private async doRelist(): Promise<void> {
    const old = this.watcher;
    this.watcher = undefined;
    if (old !== undefined) await cancelQuietly(old);
    if (this.stopped) return;
    const seen = new Set<string>();
    const changes: MirrorChange[] = [];
    let revision: string | undefined;
    const pages = rangePages(this.client, this.prefix, {
      pageKeys: this.options.pageKeys,
      // Oversized values are filtered here, not in rangePages, to see their revision.
      maxValueBytes: Number.MAX_SAFE_INTEGER,
    });
    for await (const page of pages) {
      revision = page.revision;
      for (const kv of page.kvs) {
        const key = kv.key.toString();
        if (kv.value.length > this.maxValueBytes) {
          this.skipOversize(key, kv.value.length, String(kv.mod_revision));
          continue;
        }
        seen.add(key);
        const prev = this.map.get(key);
        if (prev !== undefined && prev.modRevision === String(kv.mod_revision)) continue;
        const entry = this.toEntry(kv);
        this.map.set(key, entry);
        changes.push({ type: 'put', key, value: entry.value, modRevision: entry.modRevision, createRevision: entry.createRevision, lease: entry.lease });
      }
    }
    if (revision === undefined) throw new Error(`listing ${this.prefix} gave no revision`);
    for (const [key, prev] of this.map) {
      if (!seen.has(key)) {
        this.map.delete(key);
        changes.push({ type: 'delete', key, value: prev.value, modRevision: revision });
      }
    }
    this.revision = revision;
    this.lists++;
    const first = !this.synced;
    this.synced = true;
    if (changes.length > 0) this.emit('changes', changes);
    if (first) this.emit('synced');
    await this.watchFrom(BigInt(revision) + 1n);
  }

  private async watchFrom(start: bigint): Promise<void> {
    if (this.stopped) return;
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(start.toString()).create();
    if (this.stopped) {
      await cancelQuietly(watcher);
      return;
    }
    this.watcher = watcher;
    watcher.on('data', (res) => {
      if (this.watcher !== watcher) return;
      const changes: MirrorChange[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        const modRevision = String(ev.kv.mod_revision);
        if (ev.type === 'Delete' || ev.kv.value.length > this.maxValueBytes) {
          if (ev.type !== 'Delete') this.skipOversize(key, ev.kv.value.length, modRevision);
          const prev = this.map.get(key);
          if (prev === undefined && ev.type !== 'Delete') continue;
          this.map.delete(key);
          changes.push({ type: 'delete', key, value: prev?.value, modRevision });
        } else {
          const entry = this.toEntry(ev.kv);
          this.map.set(key, entry);
          changes.push({ type: 'put', key, value: entry.value, modRevision, createRevision: entry.createRevision, lease: entry.lease });
        }
      }
      this.revision = String(res.header.revision);
      if (changes.length > 0) this.emit('changes', changes);
    });
    watcher.on('error', (err: Error) => {
      if (this.watcher !== watcher || this.stopped) return;
      this.watcher = undefined; // etcd already cancelled it
      const compacted = /compact/i.test(err.message);
      this.log.warn({ prefix: this.prefix, err: err.message, compacted }, 'watch ended; listing again');
      this.watchErrors++;
      void this.relistWithRetry();
    });
  }

  private async relistWithRetry(): Promise<void> {
    await retryUntil(() => this.relist(), {
      policy: RELIST_BACKOFF,
      stopped: () => this.stopped,
      onError: (err) => this.log.warn({ prefix: this.prefix, err: (err as Error).message }, 'list failed; retrying'),
    });
  }
}

/** Cancel a watcher without waiting forever on one the server already dropped. */
async function cancelQuietly(w: Watcher): Promise<void> {
  w.removeAllListeners('data');
  await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
}
