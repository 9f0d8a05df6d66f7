// Retrying an async step until it succeeds, waiting between tries by a
// BackoffPolicy (src/core/backoff.ts). The waiting lives here, outside the
// pure core; loops driven by their own timers (publisher, route agent, VPC
// advertiser, route watch) use `Backoff` directly.
//
// Invariants: the step is never run again once `stopped()` is true; a failure
// is reported to `onError` with the delay that follows it before waiting.

import { Backoff, type BackoffPolicy } from './core/backoff.js';

export interface RetryOptions {
  readonly policy: BackoffPolicy;
  /** Checked before each try and after each wait; true ends the loop. */
  readonly stopped?: () => boolean;
  /** Called after each failure with the delay about to be waited (ms) and the failure count. */
  readonly onError?: (err: unknown, delayMs: number, attempt: number) => void;
  /** Decides whether a failure is retried; a failure it refuses is thrown. Default: every failure. */
  readonly retryable?: (err: unknown, attempt: number) => boolean;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Run `step` until it resolves; resolves with its value, or with undefined if
 * stopped first. Throws what `step` threw when `retryable` refuses it.
 */
export async function retryUntil<T>(step: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T | undefined> {
  const backoff = new Backoff(o.policy, o.random);
  const wait = o.sleep ?? sleep;
  while (o.stopped?.() !== true) {
    try {
      return await step(backoff.attempts + 1);
    } catch (err) {
      if (o.retryable !== undefined && !o.retryable(err, backoff.attempts + 1)) throw err;
      const delay = backoff.next();
      o.onError?.(err, delay, backoff.attempts);
      await wait(delay);
    }
  }
  return undefined;
}
