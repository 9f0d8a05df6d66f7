// A token bucket as EC2 throttles its API with: per action class, a bucket of
// `burst` tokens, each call takes one, and `refillPerSecond` tokens come back
// every second up to `burst`. The EC2 adapter keeps one per class so that it
// never sends a call the account's bucket would refuse (the defaults mirror
// AWS's documented values, see docs/vpc.md "AWS quotas"); the lab's
// throttling proxy enforces the same arithmetic on moto.
// Pure: time comes from the injected clock, nothing here waits.
// Invariants: 0 ≤ tokens ≤ burst at every observation; a call is admitted
// only when a whole token is present; over any interval of length d starting
// full, at most burst + floor(d · refillPerSecond) calls are admitted; time
// given to skipSince adds no token (the client side stays at or below the
// server's count whatever the calls' latency).

import { ErrorCode, TrellisError } from '../errors.js';

export interface BucketSettings {
  /** Tokens when full (the most calls in one burst). */
  readonly burst: number;
  /** Tokens returned per second. */
  readonly refillPerSecond: number;
}

/** EC2's documented buckets for the calls Trellis makes. */
export const EC2_MUTATE_BUCKET: BucketSettings = { burst: 50, refillPerSecond: 5 };
export const EC2_DESCRIBE_BUCKET: BucketSettings = { burst: 100, refillPerSecond: 20 };

/** Float slack: a refill that should make a whole token is not lost to rounding. */
const EPSILON = 1e-6;

export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    readonly settings: BucketSettings,
    private readonly now: () => number,
  ) {
    if (!(settings.burst >= 1) || !Number.isFinite(settings.burst) || !(settings.refillPerSecond > 0) || !Number.isFinite(settings.refillPerSecond)) {
      throw new TrellisError(ErrorCode.Config, `token bucket: burst must be ≥ 1 and refill > 0, got burst ${settings.burst}, refill ${settings.refillPerSecond}/s`);
    }
    this.tokens = settings.burst;
    this.at = now();
  }

  private refill(): void {
    const t = this.now();
    if (t > this.at) {
      this.tokens = Math.min(this.settings.burst, this.tokens + ((t - this.at) / 1000) * this.settings.refillPerSecond);
    }
    this.at = Math.max(this.at, t);
  }

  /** Tokens now (fractional while refilling). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Takes a token if one is there; true when the call may go. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1 - EPSILON) return false;
    this.tokens = Math.max(0, this.tokens - 1);
    return true;
  }

  /** Milliseconds until a whole token is there (0 when one is). */
  waitMs(): number {
    this.refill();
    if (this.tokens >= 1 - EPSILON) return 0;
    return Math.ceil(((1 - this.tokens) / this.settings.refillPerSecond) * 1000);
  }

  /**
   * Counts no refill for the time since `fromMs` (a call's send time, told
   * when its answer came): EC2 took the call's token at some unknown moment
   * in between, so a client that refills only between an answer and the next
   * send never counts a token EC2 does not have, whatever the latency.
   */
  skipSince(fromMs: number): void {
    const t = this.now();
    if (t <= fromMs) return;
    if (fromMs > this.at) {
      this.tokens = Math.min(this.settings.burst, this.tokens + ((fromMs - this.at) / 1000) * this.settings.refillPerSecond);
    }
    this.at = Math.max(this.at, t);
  }

  /** The server refused a call: its bucket is empty, so is ours (we start refilling from now). */
  drain(): void {
    this.refill();
    this.tokens = 0;
  }
}
