// Keeps this node's leased records in etcd: its node record and its
// advertisement (pod prefixes via its host IP).
//
// Invariants:
//  * Both keys are always written under the node's current lease, so they
//    vanish one hold time after the node dies.
//  * After a new lease is granted (the old one was lost), both are re-put
//    under the new lease; after any failed write, a retry is scheduled with
//    capped exponential backoff. A watcher that sees one of our keys deleted
//    or changed by someone else calls `verify` and we put it back.
//  * An unchanged advertisement is not rewritten (no churn for watchers).
//  * Several keys due at once (both, after a new lease) are written in one
//    transaction when the client can (putAll): peers accept an advertisement
//    only under its node record's lease, so they must never see the node
//    record under a new lease and the advertisement under the old one.

import type { Logger } from 'pino';
import { Backoff, type BackoffPolicy } from '../src/core/backoff.js';
import { AdvertisementSchema, NodeSchema, type Advertisement, type Node } from '../src/gen/trellis/v1/records_pb.js';
import type { LeaseState } from '../src/etcd/lease-keeper.js';
import { encodeRecord } from '../src/state/records.js';

/** What the publisher needs of the etcd client: a put under a lease (etcd3's Etcd3 fits). */
export interface PublisherClient {
  put(key: string): { value(value: string): { lease(id: string): { exec(): Promise<unknown> } } };
  /** Puts every write in one transaction (optional). */
  putAll?(writes: ReadonlyArray<{ key: string; value: string; lease: string }>): Promise<unknown>;
}

/** What the publisher needs of the lease (LeaseKeeper fits). */
export interface PublisherLease {
  readonly id: string | undefined;
  readonly state: LeaseState;
  on(event: 'granted', listener: () => void): unknown;
}

/** Retrying a failed put round: 250 ms doubling to 5 s, reset by a round that succeeds. */
export const PUBLISH_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 5000 };

export interface PublishedKey {
  readonly key: string;
  readonly value: string;
}

export class Publisher {
  private desired = new Map<string, string>();
  private written = new Map<string, { value: string; lease: string }>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(PUBLISH_BACKOFF);
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Inside batch(): changes are gathered, written by one round after it. */
  private batching = false;
  /** Successful puts, for metrics. */
  puts = 0;
  /** Failed put rounds, for metrics. */
  failures = 0;

  constructor(
    private readonly client: PublisherClient,
    private readonly lease: PublisherLease,
    private readonly log: Logger,
  ) {
    lease.on('granted', () => {
      this.written.clear();
      this.kick();
    });
  }

  setNode(key: string, record: Node): void {
    this.set(key, encodeRecord(NodeSchema, record));
  }

  setAdvertisement(key: string, record: Advertisement): void {
    this.set(key, encodeRecord(AdvertisementSchema, record));
  }

  private set(key: string, value: string): void {
    if (this.desired.get(key) === value) return;
    this.desired.set(key, value);
    if (!this.batching) this.kick();
  }

  /** Runs `fn`; the changes it makes are written together (one transaction with putAll). */
  batch(fn: () => void): void {
    const outer = this.batching;
    this.batching = true;
    try {
      fn();
    } finally {
      this.batching = outer;
    }
    if (!outer) this.kick();
  }

  /** Compare what etcd holds for one of our keys with what we want; repair if needed. */
  verify(key: string, current: { value: string; lease: string } | undefined): void {
    const want = this.desired.get(key);
    if (want === undefined) return;
    const leaseId = this.lease.id;
    if (current !== undefined && current.value === want && current.lease === leaseId) return;
    this.written.delete(key);
    this.kick();
  }

  /**
   * Write whatever differs now; resolves when nothing is left to write or a
   * write failed (a retry is then scheduled). Never throws; returns whether
   * every desired key is written under the current lease.
   */
  async flush(): Promise<boolean> {
    this.kick();
    while (this.running !== undefined) await this.running;
    return this.isCurrent();
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.round().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async round(): Promise<void> {
    const leaseId = this.lease.id;
    if (leaseId === undefined || this.lease.state === 'lost') return; // re-kicked on 'granted'
    try {
      const due: Array<{ key: string; value: string; lease: string }> = [];
      for (const [key, value] of this.desired) {
        const done = this.written.get(key);
        if (done === undefined || done.value !== value || done.lease !== leaseId) due.push({ key, value, lease: leaseId });
      }
      if (due.length > 1 && this.client.putAll !== undefined) {
        await this.client.putAll(due);
        for (const w of due) this.written.set(w.key, { value: w.value, lease: leaseId });
        this.puts += due.length;
      } else {
        for (const w of due) {
          await this.client.put(w.key).value(w.value).lease(leaseId).exec();
          this.written.set(w.key, { value: w.value, lease: leaseId });
          this.puts++;
        }
      }
      this.backoff.reset();
    } catch (err) {
      this.failures++;
      this.log.warn({ err: (err as Error).message, retryInMs: this.backoff.peek() }, 'publishing to etcd failed; will retry');
      this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, this.backoff.next());
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
  }

  /** Every key this node publishes, with the value it wants there. */
  records(): PublishedKey[] {
    return [...this.desired].map(([key, value]) => ({ key, value }));
  }

  /** Whether every desired key has been written under the current lease. */
  isCurrent(): boolean {
    const leaseId = this.lease.id;
    for (const [key, value] of this.desired) {
      const done = this.written.get(key);
      if (done === undefined || done.value !== value || done.lease !== leaseId) return false;
    }
    return true;
  }
}
