// Whether EC2 answers this node, as its own calls see it: the input of the
// rule "an advertiser that cannot reach EC2 resigns" (docs/vpc.md, "EC2
// unreachable").
//
// Every EC2 attempt reports whether EC2 answered it. Any HTTP answer counts,
// a refusal (RequestLimitExceeded) or an error answer included; a connect
// timeout, a request timeout or a broken connection does not. EC2 becomes
// unreachable once attempts have gone unanswered, with no answer in between,
// for `unreachableAfterMs` since the first of them; it is reachable again at
// the next answer. While unreachable, `probe()` (one cheap call) runs every
// `probeIntervalMs`, since a node that resigned makes no other call.
//
// Invariants: a throttling storm never makes EC2 unreachable (refusals are
// answers); with no attempt at all nothing changes (an idle node keeps its
// verdict); `change` is emitted only when the verdict flips.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export interface Ec2ReachOptions {
  readonly unreachableAfterMs: number;
  readonly probeIntervalMs: number;
  /** One call to EC2; resolves true when EC2 answered it (whatever the answer). */
  readonly probe: () => Promise<boolean>;
  readonly log: Logger;
  readonly now?: () => number;
}

export class Ec2Reach extends EventEmitter<{ change: [reachable: boolean] }> {
  private ok = true;
  /** First unanswered attempt since the last answer. */
  private missSince: number | undefined;
  private misses = 0;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private lastProbeAt = 0;
  private readonly now: () => number;

  constructor(private readonly options: Ec2ReachOptions) {
    super();
    this.now = options.now ?? Date.now;
  }

  get reachable(): boolean {
    return this.ok;
  }

  /** One attempt's outcome: `answered` when EC2 sent any HTTP answer. */
  answered(answered: boolean): void {
    if (answered) {
      this.missSince = undefined;
      this.misses = 0;
      this.flip(true);
      return;
    }
    this.misses++;
    this.missSince ??= this.now();
    this.check();
  }

  /** Judges the attempts so far (also run every second once started); probes when unreachable and due. */
  check(): void {
    if (this.ok && this.missSince !== undefined && this.now() - this.missSince >= this.options.unreachableAfterMs) this.flip(false);
    if (!this.ok && this.probing === undefined && this.now() - this.lastProbeAt >= this.options.probeIntervalMs) {
      this.lastProbeAt = this.now();
      this.probing = this.options
        .probe()
        .catch(() => false)
        .then((a) => this.answered(a))
        .finally(() => {
          this.probing = undefined;
        });
    }
  }

  /** Resolves when the probe in flight (if any) is over (for tests). */
  settled(): Promise<void> {
    return this.probing ?? Promise.resolve();
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), 1000);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private flip(ok: boolean): void {
    if (ok === this.ok) return;
    this.ok = ok;
    if (ok) this.options.log.info('EC2 answers again');
    else this.options.log.warn({ unansweredAttempts: this.misses, forMs: this.now() - (this.missSince ?? this.now()) }, 'EC2 does not answer');
    this.emit('change', ok);
  }
}
