// Holds peers' withdrawals for the damping policy (src/core/withdraw-damping.ts):
// the route index is told a peer's advertisement is gone only when the
// policy says so; while held, the peer's last advertisement still counts for
// the routes (RouteInputs.desired merges held() in, so a full reconcile pass
// keeps them too).
//
// Invariants:
//  * A held withdrawal is applied by `onDue` no later than the policy's bound
//    (one timer, re-armed for the next due time), unless the peer advertises
//    again first.
//  * Logs: one warning per mass event, one line per batch of withdrawals
//    applied after a hold; never one per prefix.

import type { Logger } from 'pino';
import { DEFAULT_DAMPING, WithdrawDamping } from '../src/core/withdraw-damping.js';
import type { AdvertisementInfo } from '../src/state/validate.js';

export class WithdrawHold {
  private readonly damping: WithdrawDamping<AdvertisementInfo>;
  /** The last advertisement seen of each advertiser still known. */
  private readonly last = new Map<string, AdvertisementInfo>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;

  constructor(
    graceMs: number,
    private readonly log: Logger,
    /** Withdrawals whose hold ended: apply them (the peers have not come back). */
    private readonly onDue: (nodes: readonly string[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.damping = new WithdrawDamping({ ...DEFAULT_DAMPING, graceMs });
  }

  /**
   * `node`'s advertisement is now `a` (undefined: gone). Returns true when the
   * change is to be applied now, false when it is held (the index is left as is).
   */
  change(node: string, a: AdvertisementInfo | undefined): boolean {
    if (a !== undefined) {
      this.last.set(node, a);
      if (this.damping.back(node)) this.log.info({ node }, 'peer advertises again: its held withdrawal is dropped, no route changed');
      return true;
    }
    const had = this.last.get(node);
    if (had === undefined || !this.damping.enabled) {
      this.last.delete(node);
      return true;
    }
    const known = this.last.size;
    this.last.delete(node);
    const mass = this.damping.vanish(node, had, this.now(), known);
    if (mass !== undefined) {
      this.log.warn(
        { withdrawn: mass.withdrawn, known: mass.known, holdMs: mass.until - this.now() },
        'mass withdrawal (an etcd-side event, not nodes dying): keeping the routes while the nodes re-register',
      );
    }
    this.arm();
    return false;
  }

  /** Advertisements whose withdrawal is held: node → its last advertisement. */
  held(): ReadonlyMap<string, AdvertisementInfo> {
    return this.damping.held();
  }

  private arm(): void {
    const next = this.damping.nextDue();
    if (next === undefined || next === this.armedFor) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = next;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - this.now()));
    this.timer.unref?.();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = undefined;
    const due = this.damping.due(this.now());
    if (due.length > 0) {
      if (due.length > 1) this.log.info({ nodes: due.slice(0, 20), count: due.length }, 'held withdrawals applied: these peers did not come back');
      this.onDue(due);
    }
    this.arm();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
