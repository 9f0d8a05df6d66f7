// The one backoff policy of every retry loop: capped exponential delays,
// optionally with full jitter.
//
// A policy is data ({ initialMs, maxMs, factor, jitter }); each loop keeps its
// own numbers. The n-th consecutive failure (n ≥ 1) waits
//     ceiling(n) = min(maxMs, initialMs · factor^(n-1))
// or, with full jitter, round(random() · ceiling(n)). `Backoff` counts the
// failures of one loop; `reset()` after a success starts it again at
// initialMs. Pure: no timers here (the waiting is src/retry.ts's, or the
// caller's own timer), and the random source is injectable so schedules are
// testable.
//
// Why not cockatiel's ExponentialBackoff (used by src/etcd/client.ts for the
// client's own request retries): its generators are immutable iterators that
// need a policy context, its default is decorrelated jitter (not what any of
// these loops does), and src/core may import no package but ip-cidr and yaml.
// This schedule is a dozen lines, reproduces each loop's existing numbers
// exactly and keeps the loops' own state (reset on success, reset after a
// healthy period) in plain code.

export interface BackoffPolicy {
  /** Delay after the first failure (ms). */
  readonly initialMs: number;
  /** Cap of any delay (ms). */
  readonly maxMs: number;
  /** Growth per failure; 2 unless given. */
  readonly factor?: number;
  /** 'full': a uniform random delay in [0, ceiling]; 'none' (default): the ceiling itself. */
  readonly jitter?: 'none' | 'full';
}

/** The delay after the `attempt`-th consecutive failure (1-based). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  const factor = policy.factor ?? 2;
  // Grow step by step and stop at the cap: no overflow however many failures.
  let ceiling = Math.min(policy.initialMs, policy.maxMs);
  for (let i = 1; i < n && ceiling < policy.maxMs; i++) ceiling = Math.min(policy.maxMs, ceiling * factor);
  return policy.jitter === 'full' ? Math.round(random() * ceiling) : ceiling;
}

/** The failure count of one retry loop and the delay it calls for. */
export class Backoff {
  private failures = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive failures counted so far. */
  get attempts(): number {
    return this.failures;
  }

  /** Count one more failure; returns the delay to wait before the next try. */
  next(): number {
    this.failures++;
    return backoffDelay(this.policy, this.failures, this.random);
  }

  /** The delay the next failure would call for, without counting it. */
  peek(): number {
    return backoffDelay(this.policy, this.failures + 1, this.random);
  }

  /** A success (or a healthy period): the next failure waits initialMs again. */
  reset(): void {
    this.failures = 0;
  }
}
