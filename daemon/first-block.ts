// Start-up: hold a block before registering. A node puts nothing under its
// lease (node record, advertisement) until it holds at least one block of its
// subnet, so a node that cannot claim one (its subnet's pod prefix is full,
// etcd refuses, races lost) is never registered half-way: it stays not ready,
// says why on /readyz, counts each failed try in
// trellis_block_claim_failures_total{reason} and logs it, and tries again with
// capped backoff until a block frees up (another node gives one back, the
// topology grows) or the daemon is stopped. It never exits for this.

import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { BackoffPolicy } from '../src/core/backoff.js';
import { describeError, ErrorCode, TrellisError } from '../src/errors.js';
import { retryUntil } from '../src/retry.js';

/** 1 s doubling to 30 s between tries. */
export const FIRST_BLOCK_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000 };

/** What start-up needs of the allocator (Ipam fits). */
export interface FirstBlockHolder {
  ensureBlock(): Promise<string[]>;
}

export interface FirstBlockOptions {
  readonly log: Logger;
  /** trellis_block_claim_failures_total, by reason. */
  readonly failures: Counter<'reason'>;
  /** Tells /readyz what start-up is waiting for. */
  readonly setPhase: (reason: string) => void;
  readonly stopping: () => boolean;
  readonly policy?: BackoffPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The reason label of a failed claim. */
export function claimFailureReason(err: unknown): string {
  if (err instanceof TrellisError) {
    if (err.code === ErrorCode.Exhausted) return 'exhausted';
    if (err.code === ErrorCode.Conflict) return 'conflict';
    if (err.code === ErrorCode.Unavailable) return 'unavailable';
  }
  return 'error';
}

/** Resolves with the blocks held once there is one; throws the last error once stopping. */
export async function holdFirstBlock(ipam: FirstBlockHolder, o: FirstBlockOptions): Promise<string[]> {
  const blocks = await retryUntil(() => ipam.ensureBlock(), {
    policy: o.policy ?? FIRST_BLOCK_BACKOFF,
    retryable: () => !o.stopping(),
    stopped: o.stopping,
    ...(o.sleep === undefined ? {} : { sleep: o.sleep }),
    onError: (err, delayMs, attempt) => {
      const reason = claimFailureReason(err);
      o.failures.inc({ reason });
      const why = `cannot claim a block (${describeError(err)}); not registered, retrying in ${Math.round(delayMs / 1000)} s (attempt ${attempt})`;
      o.setPhase(why);
      o.log.warn({ reason, err: describeError(err), retryInMs: delayMs, attempt }, 'cannot claim a block; not registering until one is held');
    },
  });
  if (blocks === undefined) throw new Error('stopped while claiming a block');
  return blocks;
}
