// Claim conflicts seen by this node (src/core/claim-trust.ts): each is
// alarmed (trellis_claim_conflicts_total, one log line within the daemon's
// log budget), and when this node is the block's rightful holder its claim is
// written again from its hold (trellis_claim_repairs_total), one block at a
// time, retried after a failure while the conflict stands.
//
// Invariants: only the node's own blocks are ever rewritten (repairClaim
// compares the hold and never undoes a release); nothing is written once the
// daemon is stopping.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { LogBudget } from '../src/core/log-budget.js';
import { repairClaim } from '../src/etcd/claim-holds.js';
import type { ClaimConflict } from '../src/state/cluster-view.js';
import type { Keys } from '../src/state/keys.js';

export interface ClaimRepairOptions {
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly node: string;
  readonly log: Logger;
  readonly logBudget: LogBudget;
  readonly conflicts: Counter;
  readonly repairs: Counter<'result'>;
  /** Whether `block` is still in conflict (a failed repair is retried only then). */
  readonly stillInConflict: (block: string) => boolean;
  readonly stopping: () => boolean;
}

export class ClaimRepair {
  private readonly toRepair = new Set<string>();
  private repairing: Promise<void> | undefined;

  constructor(private readonly o: ClaimRepairOptions) {}

  /** A block's claim disagrees with its holds: alarm; when this node is the rightful holder, repair the claim. */
  onConflict(c: ClaimConflict): void {
    const { o } = this;
    o.conflicts.inc();
    const suppressed = o.logBudget.take();
    if (suppressed !== undefined) {
      o.log.error({ block: c.prefix, claimed: c.claimed, holder: c.holder, reason: c.reason, ...(suppressed > 0 ? { suppressed } : {}) }, 'block claim conflict');
    }
    if (c.holder !== o.node || o.stopping()) return;
    this.schedule(c.prefix);
  }

  private schedule(block: string): void {
    this.toRepair.add(block);
    this.repairing ??= this.repairAll().finally(() => (this.repairing = undefined));
  }

  /** Writes this node's claims found rewritten or deleted again (from its holds), until none is left. */
  private async repairAll(): Promise<void> {
    const { o } = this;
    while (this.toRepair.size > 0 && !o.stopping()) {
      const block = this.toRepair.values().next().value as string;
      this.toRepair.delete(block);
      try {
        const result = await repairClaim(o.client, o.keys, o.node, block);
        o.repairs.inc({ result: result === 'lost' ? 'lost' : 'ok' });
        if (result === 'repaired') o.log.warn({ block }, 'wrote my claim again (it was rewritten or deleted by someone else)');
        // A lost compare means the claim moved again: the view reports the next state if it is still wrong.
      } catch (err) {
        o.repairs.inc({ result: 'error' });
        o.log.warn({ block, err: (err as Error).message }, 'repairing my claim failed; will retry');
        const retry = setTimeout(() => {
          if (o.stillInConflict(block)) this.schedule(block);
        }, 1000);
        retry.unref();
      }
    }
  }
}
