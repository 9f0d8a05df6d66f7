// The node's etcd lease: the hold timer of its advertisement.
//
// Everything a node publishes while alive (node record, advertisement) is put
// under one lease with TTL = holdTime. Keepalives go out every holdTime/3.
// Invariants:
//  * The lease id is kept in a state file, so a trellisd restarted within the
//    hold time re-attaches to the same lease and its keys never disappear:
//    peers see no delete, only (identical) re-puts.
//  * A lease that etcd reports expired, or that could not be kept alive for a
//    whole TTL, is gone for good: a new one is granted as soon as etcd answers
//    and `granted` is emitted with reattached=false, telling the owner to
//    re-publish its keys under the new id.
//  * A state file that cannot be written (disk full) is logged, never fatal:
//    the lease is kept in memory.
//  * A keepalive round never outlives its own timeout (holdTime/3, at least
//    1 s), opening the stream included: an etcd that accepts connections but
//    answers nothing (paused, partitioned) turns the state `unconfirmed` after
//    one round and `lost` once a whole TTL passed without an answer, even
//    while a round is still stuck in the client library.
//  * stop() never revokes: a graceful stop leaves the keys to the hold timer
//    (a restart picks them up again); handOver() first moves the published
//    records, unchanged, to a restart lease (restartHoldTime) that nobody
//    keeps alive, so a graceful restart on a busy host has that long, not
//    the rest of one hold time, and a stop for good withdraws the node
//    restartHoldTime after it. Only revoke() withdraws the keys at once.
//  * The state file names the lease's owner (node name and etcd prefix) next
//    to its id: a lease stored for another owner is never re-attached to, and
//    revokeOwned() refuses it (or a file that names no owner), so one host's
//    state directory can never withdraw another node.

import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { ErrorCode, TrellisError } from '../errors.js';

export type LeaseState = 'pending' | 'alive' | 'unconfirmed' | 'lost' | 'stopped';

export interface LeaseKeeperOptions {
  ttlSeconds: number;
  /** File holding the lease id across restarts; none: never re-attach. */
  stateFile?: string | undefined;
  log: Logger;
  now?: () => number;
  /** Who holds the lease, recorded in the state file with its id. */
  owner?: LeaseOwner | undefined;
}

/** The node (and cluster prefix) a stored lease was granted for. */
export interface LeaseOwner {
  readonly node: string;
  readonly prefix: string;
}

/** The lease a state file records: its id and, when the file names it, its owner. */
export interface StoredLease {
  id: string;
  ttlSeconds: number;
  node?: string;
  prefix?: string;
}

export interface LeaseKeeperEvents {
  granted: [id: string, reattached: boolean];
  lost: [reason: string];
  state: [state: LeaseState];
}

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private leaseId: string | undefined;
  private current: LeaseState = 'pending';
  private lastAck = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  /** Why the lease was last marked lost. */
  private lostReason = '';
  private readonly now: () => number;
  /** Keepalive rounds that failed (etcd unreachable or slow). */
  keepaliveFailures = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly options: LeaseKeeperOptions,
  ) {
    super();
    if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds < 2) {
      throw new TrellisError(ErrorCode.Config, `lease TTL must be a whole number of seconds >= 2, got ${options.ttlSeconds}`);
    }
    this.now = options.now ?? Date.now;
  }

  get id(): string | undefined {
    return this.leaseId;
  }

  get state(): LeaseState {
    return this.current;
  }

  /** Milliseconds since etcd last confirmed the lease. */
  get ageMs(): number {
    return this.lastAck === 0 ? Infinity : this.now() - this.lastAck;
  }

  /** Re-attach to the stored lease if etcd still has it, else grant a new one. */
  async start(): Promise<{ id: string; reattached: boolean }> {
    let stored = this.readStored();
    const owner = this.options.owner;
    if (stored !== undefined && owner !== undefined && stored.node !== undefined && !sameOwner(stored, owner)) {
      this.options.log.warn(
        { lease: hex(stored.id), storedNode: stored.node, storedPrefix: stored.prefix, node: owner.node, prefix: owner.prefix },
        'the stored lease belongs to another node or cluster prefix; not re-attaching to it',
      );
      stored = undefined;
    }
    let reattached = false;
    if (stored !== undefined) {
      const ttl = await this.remainingTtl(stored.id);
      if (ttl > 0 && (await this.keepAliveOnce(stored.id)) > 0) {
        this.leaseId = stored.id;
        reattached = true;
        // A file of an older version names no owner: it is rewritten with it.
        if (stored.node === undefined && owner !== undefined) this.writeStored({ id: stored.id, ttlSeconds: this.options.ttlSeconds });
        this.options.log.info({ lease: hex(stored.id), remaining: ttl }, 're-attached to existing lease');
      } else {
        this.options.log.info({ lease: hex(stored.id) }, 'stored lease has expired; granting a new one');
      }
    }
    if (!reattached) await this.grant();
    this.lastAck = this.now();
    this.setState('alive');
    this.timer = setInterval(() => void this.tick(), (this.options.ttlSeconds * 1000) / 3);
    this.timer.unref?.();
    const id = this.leaseId as string;
    this.emit('granted', id, reattached);
    return { id, reattached };
  }

  /** Stop keepalives; the lease (and its keys) lives on until its TTL runs out. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.setState('stopped');
  }

  /**
   * A graceful stop before a restart: keepalives end, and the node's records
   * (`records`, what it has published) are put again, unchanged, in one
   * transaction under a fresh lease of `restartTtlSeconds`, so the next run
   * has that long to publish them under its own lease while peers see no
   * change. The fresh lease is never kept alive by anyone: it ends
   * `restartTtlSeconds` after the stop, with whatever keys the next run has
   * not taken over. With no records, a restart TTL not above the hold time,
   * or a lease that is lost, it sends one last keepalive instead (or
   * nothing). Bounded by `timeoutMs`; never throws.
   */
  async handOver(records: ReadonlyArray<{ key: string; value: string }>, restartTtlSeconds: number, timeoutMs = 1000): Promise<void> {
    const id = this.leaseId;
    const live = this.current === 'alive' || this.current === 'unconfirmed';
    this.stop();
    if (id === undefined || !live) return;
    const log = this.options.log;
    try {
      if (records.length === 0 || restartTtlSeconds <= this.options.ttlSeconds) {
        const ttl = await this.keepAliveOnce(id, timeoutMs);
        log.info({ lease: hex(id), ttl }, 'last keepalive sent: the lease lives one hold time for the next run');
        return;
      }
      const work = (async (): Promise<string> => {
        const res = await this.client.leaseClient.leaseGrant({ TTL: restartTtlSeconds });
        const restart = String(res.ID);
        await this.client.kv.txn({
          compare: [],
          success: records.map((r) => ({ request_put: { key: Buffer.from(r.key), value: Buffer.from(r.value), lease: restart } })),
          failure: [],
        });
        return restart;
      })();
      work.catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const restart = await Promise.race([
        work,
        new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`etcd did not answer within ${timeoutMs} ms`)), timeoutMs))),
      ]).finally(() => clearTimeout(timer));
      // The next run grants its own lease; the restart lease is left to end by itself.
      this.forgetStored();
      log.info({ lease: hex(restart), ttl: restartTtlSeconds, keys: records.length }, 'records handed to a restart lease: peers keep them while the daemon restarts');
    } catch (err) {
      log.warn({ lease: hex(id), err: (err as Error).message }, 'could not hand the records over before stopping; they expire with the lease');
    }
  }

  /** Revoke the lease now: every key under it is deleted by etcd. */
  async revoke(): Promise<void> {
    this.stop();
    const id = this.leaseId ?? this.readStored()?.id;
    if (id === undefined) return;
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch (err) {
      if (!/not found|requested lease not found/i.test(String((err as Error).message))) throw err;
    }
    this.forgetStored();
  }

  /**
   * Revoke the lease the state file records, only if it names `owner`: a file
   * of another node or cluster prefix, or one that names no owner, is refused
   * (ErrorCode.Config) and nothing is revoked. Returns the revoked id, or
   * undefined when the file records no lease.
   */
  async revokeOwned(owner: LeaseOwner): Promise<string | undefined> {
    const id = this.checkOwned(owner);
    if (id === undefined) return undefined;
    this.leaseId = id;
    await this.revoke();
    return id;
  }

  /** The id of the lease the state file records for `owner`; throws as revokeOwned does. */
  checkOwned(owner: LeaseOwner): string | undefined {
    const stored = this.readStored();
    if (stored === undefined) return undefined;
    const file = this.options.stateFile ?? '(none)';
    if (stored.node === undefined) {
      throw new TrellisError(
        ErrorCode.Config,
        `${file} records lease ${hex(stored.id)} without the node it belongs to: refusing to revoke it for node ${owner.node} ` +
          `(start this node's trellisd once to record it, or remove the node with "trellisctl node remove ${owner.node}")`,
        { details: { lease: hex(stored.id), node: owner.node } },
      );
    }
    if (!sameOwner(stored, owner)) {
      throw new TrellisError(
        ErrorCode.Config,
        `${file} holds the lease of node ${stored.node} under prefix ${stored.prefix ?? '?'}, not of node ${owner.node} under prefix ${owner.prefix}: ` +
          `refusing to revoke it (run --withdraw with this host's own node name and prefix, or remove another node with "trellisctl node remove ${owner.node}")`,
        { details: { lease: hex(stored.id), storedNode: stored.node, storedPrefix: stored.prefix, node: owner.node, prefix: owner.prefix } },
      );
    }
    return stored.id;
  }

  /** The lease the state file records, if any. */
  stored(): StoredLease | undefined {
    return this.readStored();
  }

  /** One keepalive round; run by the interval timer, exposed for tests. */
  async tick(): Promise<void> {
    if (this.current === 'stopped') return;
    if (this.ticking) {
      // The previous round is stuck: judge by the age of the last answer.
      this.judgeSilence('the previous keepalive round has not ended');
      return;
    }
    this.ticking = true;
    try {
      const id = this.leaseId;
      if (id === undefined || this.current === 'lost') {
        await this.regrant();
        return;
      }
      const ttl = await this.keepAliveRound(id);
      if (ttl > 0) {
        this.lastAck = this.now();
        this.setState('alive');
      } else {
        this.markLost(`etcd reports lease ${hex(id)} expired`);
        await this.regrant();
      }
    } catch (err) {
      this.keepaliveFailures++;
      if (this.judgeSilence((err as Error).message)) this.options.log.warn({ err: (err as Error).message }, 'lease keepalive failed; retrying');
    } finally {
      this.ticking = false;
    }
  }

  /** After a failed or stuck round: `lost` once a whole TTL passed unconfirmed, else `unconfirmed`; true when still unconfirmed. */
  private judgeSilence(why: string): boolean {
    if (this.current === 'lost' || this.current === 'stopped') return false;
    const silentFor = this.ageMs;
    if (silentFor >= this.options.ttlSeconds * 1000) {
      this.markLost(`no keepalive confirmed for ${Math.round(silentFor / 1000)} s: ${why}`);
      return false;
    }
    this.setState('unconfirmed');
    return true;
  }

  /** Why the lease cannot be counted on now (unconfirmed or lost), or undefined while etcd confirms it. */
  get trouble(): string | undefined {
    if (this.current === 'lost') return `etcd lease lost (${this.lostReason})`;
    if (this.current === 'unconfirmed') return `etcd has not confirmed the lease for ${Math.round(this.ageMs / 1000)} s`;
    return undefined;
  }

  private markLost(reason: string): void {
    if (this.current === 'lost') return;
    this.lostReason = reason;
    this.setState('lost');
    this.options.log.warn({ lease: this.leaseId === undefined ? undefined : hex(this.leaseId), reason }, 'lease lost');
    this.emit('lost', reason);
  }

  private async regrant(): Promise<void> {
    await this.grant();
    this.lastAck = this.now();
    this.setState('alive');
    this.emit('granted', this.leaseId as string, false);
  }

  private async grant(): Promise<void> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: this.options.ttlSeconds });
    if (res.error) throw new TrellisError(ErrorCode.Unavailable, `etcd refused a lease: ${res.error}`);
    this.leaseId = String(res.ID);
    try {
      this.writeStored({ id: this.leaseId, ttlSeconds: this.options.ttlSeconds });
    } catch (err) {
      // A full or read-only state directory must not cost the lease: only a crash-restart cannot re-attach to it.
      this.options.log.warn({ file: this.options.stateFile, err: (err as Error).message }, 'cannot store the lease id; a restart will take a new lease');
    }
    this.options.log.info({ lease: hex(this.leaseId), ttl: this.options.ttlSeconds }, 'granted lease');
  }

  private async remainingTtl(id: string): Promise<number> {
    const res = await this.client.leaseClient.leaseTimeToLive({ ID: id });
    return Number(res.TTL);
  }

  /**
   * One round: keepalive attempts until one is answered or the round's time
   * (holdTime/3, at least 1 s) is spent. A failed attempt is tried again at
   * once: the client opens each stream on a member picked at random, so with
   * several etcd members a dead one costs an attempt, not the round.
   */
  private async keepAliveRound(id: string): Promise<number> {
    const roundMs = Math.max(1000, (this.options.ttlSeconds * 1000) / 3);
    const deadline = this.now() + roundMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.keepAliveOnce(id, Math.max(250, deadline - this.now()));
      } catch (err) {
        if (attempt >= 5 || this.now() >= deadline - 250 || this.current === 'stopped') throw err;
      }
    }
  }

  private async keepAliveOnce(id: string, timeoutMs = Math.max(1000, (this.options.ttlSeconds * 1000) / 3)): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`keepalive not answered within ${timeoutMs} ms`)), timeoutMs);
    });
    const round = (async (): Promise<number> => {
      const stream = await this.client.leaseClient.leaseKeepAlive();
      try {
        const res = await new Promise<{ TTL: string | number }>((resolve, reject) => {
          stream.on('data', (r: { TTL: string | number }) => resolve(r));
          stream.on('error', (err: Error) => reject(err));
          stream.write({ ID: id });
          // Stop waiting on this stream once the round has timed out.
          deadline.catch((err: Error) => reject(err));
        });
        return Number(res.TTL);
      } finally {
        stream.end();
      }
    })();
    round.catch(() => undefined); // a round that ends after its deadline is ignored
    try {
      return await Promise.race([round, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private setState(state: LeaseState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('state', state);
  }

  private readStored(): StoredLease | undefined {
    const file = this.options.stateFile;
    if (file === undefined) return undefined;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<StoredLease>;
      if (typeof parsed.id === 'string' && /^[0-9]+$/.test(parsed.id)) {
        const out: StoredLease = { id: parsed.id, ttlSeconds: Number(parsed.ttlSeconds) };
        if (typeof parsed.node === 'string') out.node = parsed.node;
        if (typeof parsed.prefix === 'string') out.prefix = parsed.prefix;
        return out;
      }
      this.options.log.warn({ file }, 'ignoring malformed lease state file');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.log.warn({ file, err: (err as Error).message }, 'cannot read lease state file');
      }
    }
    return undefined;
  }

  private writeStored(lease: { id: string; ttlSeconds: number }): void {
    const file = this.options.stateFile;
    if (file === undefined) return;
    const owner = this.options.owner;
    const value: StoredLease = owner === undefined ? lease : { ...lease, node: owner.node, prefix: owner.prefix };
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    renameSync(tmp, file);
  }

  private forgetStored(): void {
    const file = this.options.stateFile;
    if (file === undefined) return;
    try {
      writeFileSync(file, '{}\n', { mode: 0o600 });
    } catch {
      // nothing to forget
    }
  }
}

function sameOwner(stored: StoredLease, owner: LeaseOwner): boolean {
  return stored.node === owner.node && stored.prefix === owner.prefix;
}

/** Lease ids in the hexadecimal form etcdctl prints. */
export function hex(id: string): string {
  return BigInt(id).toString(16);
}
