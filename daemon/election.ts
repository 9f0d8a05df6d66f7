// Election of a subnet's VPC advertiser over etcd (and, under another key
// prefix, of any other one-per-scope role: the cluster's node collector).
//
// Every trellisd of the subnet with vpc.enabled is a candidate: it puts
// `<prefix>/v1/advertisers/<subnet>/<lease id hex>` (value: its node name)
// under its node lease (LeaseKeeper, TTL = holdTime), so the candidacy
// vanishes with the node. The leader is the candidate key with the lowest
// create revision; every candidate watches the prefix and re-reads it on any
// change, so when the leader's key goes (lease expired, or resigned) the next
// one takes over within a watch round trip.
// A node that stands down (`standDown()` true: it is drained, daemon/drain-watch.ts)
// is no candidate: its key is deleted at the next check (a leader hands over
// at once) and it does not campaign until standDown() is false again, when it
// campaigns at the back of the queue.
// States: follower → leader (this key is the lowest) → follower (lease not
// alive, key gone, a lower key appeared); resigning (graceful stop: the key
// is deleted so a successor takes over at once) → stopped.
// Standing down (standDown(), e.g. the VPC advertiser cannot reach EC2): the
// key is deleted and not put again, the state is follower, until standUp()
// campaigns again (at the back of the queue).
// Invariants:
//  * isLeader() is true only while the state is leader AND the node lease is
//    alive AND our key lives under the lease's current id: a leader whose
//    lease is lost or unconfirmed stops at once, without waiting for etcd.
//  * confirm() makes a fresh (linearizable) read before answering; callers
//    run it before every batch of EC2 writes.
//  * A new lease (the old one was lost) means a new candidacy at the back of
//    the queue: the old key died with the old lease. A trellisd restarted
//    within the hold time re-attaches to its lease, finds its key and keeps
//    its place (a leader stays the leader).

import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { hex, type LeaseKeeperEvents } from '../src/etcd/lease-keeper.js';
import type { LeaseState } from '../src/etcd/lease-keeper.js';
import { readPrefix } from '../src/etcd/paged-range.js';
import { PrefixMirror } from '../src/etcd/prefix-mirror.js';
import type { Keys } from '../src/state/keys.js';

export type ElectionState = 'follower' | 'leader' | 'resigning' | 'stopped';

/** What the election needs of the node lease (a LeaseKeeper). */
export interface LeaseSource extends EventEmitter<LeaseKeeperEvents> {
  readonly id: string | undefined;
  readonly state: LeaseState;
}

export interface ElectionOptions {
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly subnet: string;
  /** This node's name (the value of its candidacy key). */
  readonly node: string;
  readonly lease: LeaseSource;
  readonly log: Logger;
  /** Period of a re-read besides watch events (default 2 s). */
  readonly recheckMs?: number;
  /** Candidacy keys' prefix, for another elected role (default advertisers/<subnet>/). */
  readonly prefix?: string;
  /** The role won, for the log (default "VPC advertiser of the subnet"). */
  readonly role?: string;
  /** While true, this node is no candidate (see the module comment); call recheck() when it changes. */
  readonly standDown?: () => boolean;
}

export interface ElectionEvents {
  state: [state: ElectionState];
}

interface Candidate {
  readonly key: string;
  readonly node: string;
  readonly lease: string;
  readonly createRevision: bigint;
}

function candidates(kvs: readonly IKeyValue[]): Candidate[] {
  return kvs
    .map((kv) => ({ key: kv.key.toString(), node: kv.value.toString(), lease: String(kv.lease), createRevision: BigInt(kv.create_revision) }))
    .sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0));
}

export class AdvertiserElection extends EventEmitter<ElectionEvents> {
  private current: ElectionState = 'follower';
  /** Lease id our candidacy key was put under. */
  private campaignLease: string | undefined;
  private mirror: PrefixMirror | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private again = false;
  private leaderNode: string | undefined;
  /** Standing down: no candidacy key, no campaigning, until standUp(). */
  private out = false;
  private readonly prefix: string;
  private readonly onLeaseState = (state: LeaseState): void => this.leaseChanged(state);
  private readonly onGranted = (): void => void this.recheck();

  constructor(private readonly options: ElectionOptions) {
    super();
    this.prefix = options.prefix ?? options.keys.advertisersPrefix(options.subnet);
  }

  get state(): ElectionState {
    return this.current;
  }

  /** Node name of the leader as last read (undefined when there is no candidate). */
  get leader(): string | undefined {
    return this.leaderNode;
  }

  /** Our candidacy key, once campaigning. */
  get key(): string | undefined {
    return this.campaignLease === undefined ? undefined : `${this.prefix}${hex(this.campaignLease)}`;
  }

  /** Synchronous gate: leader, lease alive, candidacy under the current lease. */
  isLeader(): boolean {
    const { lease } = this.options;
    return this.current === 'leader' && lease.state === 'alive' && lease.id !== undefined && lease.id === this.campaignLease;
  }

  async start(): Promise<void> {
    const { lease, client, log } = this.options;
    lease.on('state', this.onLeaseState);
    lease.on('granted', this.onGranted);
    this.mirror = new PrefixMirror(client, this.prefix, log.child({ component: 'election-watch' }));
    this.mirror.on('changes', () => void this.recheck());
    await this.mirror.start();
    await this.recheck();
    this.timer = setInterval(() => void this.recheck(), this.options.recheckMs ?? 2000);
    this.timer.unref?.();
  }

  /** Fresh read of the candidates; campaigns if our key is missing; updates the state. Never throws. */
  recheck(): Promise<void> {
    if (this.checking !== undefined) {
      this.again = true;
      return this.checking;
    }
    this.checking = this.check()
      .catch((err: unknown) => this.options.log.warn({ err: (err as Error).message }, 'advertiser election: reading candidates failed'))
      .finally(() => {
        this.checking = undefined;
        if (this.again) {
          this.again = false;
          void this.recheck();
        }
      });
    return this.checking;
  }

  /** Before a batch of EC2 writes: true only if a fresh read shows us as leader under a live lease. */
  async confirm(): Promise<boolean> {
    if (!this.isLeader()) return false;
    try {
      await this.check();
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'advertiser election: cannot confirm leadership; not writing');
      return false;
    }
    return this.isLeader();
  }

  /** Resigning or stopped: no more campaigning. */
  private closed(): boolean {
    return this.current === 'resigning' || this.current === 'stopped';
  }

  private async check(): Promise<void> {
    if (this.closed()) return;
    const { client, lease, node, log } = this.options;
    let list = candidates((await readPrefix(client, this.prefix)).kvs);
    const leaseId = lease.id;
    const mine = leaseId === undefined ? undefined : `${this.prefix}${hex(leaseId)}`;
    if (this.options.standDown?.() === true) {
      if (this.current === 'leader') this.setState('follower');
      const own = list.filter((c) => c.key === mine);
      for (const c of own) await client.delete().key(c.key).exec();
      if (own.length > 0) log.info({ keys: own.map((c) => c.key) }, `${this.options.role ?? 'advertiser'} election: standing down (node drained)`);
      this.campaignLease = undefined;
      this.leaderNode = list.find((c) => !own.includes(c))?.node;
      return;
    }
    if (this.out) {
      // Our key may be back (a restart re-attached, or the delete failed): delete it again.
      if (mine !== undefined && list.some((c) => c.key === mine)) await client.delete().key(mine).exec();
      this.leaderNode = list.find((c) => c.key !== mine)?.node;
      this.setState('follower');
      return;
    }
    if (leaseId !== undefined && lease.state === 'alive' && mine !== undefined && !list.some((c) => c.key === mine) && !this.closed()) {
      await client.put(mine).value(node).lease(leaseId).exec();
      if (this.campaignLease !== leaseId) log.info({ key: mine }, 'advertiser election: candidate');
      this.campaignLease = leaseId;
      list = candidates((await readPrefix(client, this.prefix)).kvs);
    }
    if (this.closed()) return;
    // A key under our lease that we did not put in this run: a restart re-attached to the lease; keep our place.
    if (leaseId !== undefined && list.some((c) => c.key === mine)) this.campaignLease = leaseId;
    const first = list[0];
    this.leaderNode = first?.node;
    const leading = first !== undefined && first.key === mine && first.lease === leaseId && leaseId === this.campaignLease && lease.state === 'alive';
    this.setState(leading && !this.out ? 'leader' : 'follower');
  }

  private leaseChanged(state: LeaseState): void {
    if (state === 'alive') {
      void this.recheck();
    } else if (this.current === 'leader') {
      this.options.log.warn({ lease: state }, 'advertiser election: node lease not alive; stepping down');
      this.setState('follower');
    }
  }

  private setState(state: ElectionState): void {
    if (state === this.current) return;
    const was = this.current;
    this.current = state;
    this.options.log.info({ subnet: this.options.subnet, from: was, to: state }, state === 'leader' ? `became ${this.options.role ?? 'VPC advertiser of the subnet'}` : `${this.options.role ?? 'VPC advertiser'} election state`);
    this.emit('state', state);
  }

  /** Whether standing down (standDown() without standUp() since). */
  get standingDown(): boolean {
    return this.out;
  }

  /**
   * Stops being a candidate while `reason` holds: follower at once (isLeader()
   * false before this resolves), then the candidacy key is deleted so the next
   * candidate takes over; no campaigning until standUp().
   */
  async standDown(reason: string): Promise<void> {
    if (this.out || this.closed()) return;
    this.out = true;
    this.options.log.warn({ subnet: this.options.subnet, reason }, `standing down as ${this.options.role ?? 'VPC advertiser'} candidate`);
    this.setState('follower');
    await this.recheck();
  }

  /** Candidate again (at the back of the queue) after standDown(). */
  standUp(): Promise<void> {
    if (!this.out || this.closed()) return Promise.resolve();
    this.out = false;
    this.options.log.info({ subnet: this.options.subnet }, `candidate again for ${this.options.role ?? 'VPC advertiser'}`);
    return this.recheck();
  }

  /** Graceful stop: delete our candidacy key (a successor takes over at once), then stop. */
  async resign(): Promise<void> {
    if (this.current === 'stopped') return;
    this.setState('resigning');
    if (this.timer !== undefined) clearInterval(this.timer);
    this.options.lease.off('state', this.onLeaseState);
    this.options.lease.off('granted', this.onGranted);
    await this.checking?.catch(() => undefined);
    const key = this.key;
    if (key !== undefined) {
      const deadline = new Promise<void>((r) => setTimeout(r, 2000).unref());
      await Promise.race([
        this.options.client
          .delete()
          .key(key)
          .exec()
          .then(() => this.options.log.info({ key }, 'advertiser election: resigned'))
          .catch((err: unknown) => this.options.log.warn({ err: (err as Error).message }, 'advertiser election: resigning failed; the key expires with the lease')),
        deadline,
      ]);
    }
    await this.mirror?.stop();
    this.setState('stopped');
  }
}
