// A budget of log lines (pure): at most `burst` lines at once, refilled at
// `perSecond`; what is refused is counted and reported with the next line
// allowed, so a flood of bad records costs a bounded number of log lines
// while the counters (metrics) still see every one.
// Invariant: over any window of T seconds at most burst + T * perSecond lines
// are allowed.

export interface LogBudgetOptions {
  readonly burst: number;
  readonly perSecond: number;
  readonly now: () => number;
}

export class LogBudget {
  private tokens: number;
  private last: number;
  /** Lines refused since the last allowed one. */
  private suppressed = 0;

  constructor(private readonly o: LogBudgetOptions) {
    this.tokens = o.burst;
    this.last = o.now();
  }

  /**
   * Whether a line may be written now; when it may, the number of lines
   * refused before it (to be mentioned in it), otherwise undefined.
   */
  take(): number | undefined {
    const now = this.o.now();
    this.tokens = Math.min(this.o.burst, this.tokens + ((now - this.last) / 1000) * this.o.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.suppressed++;
      return undefined;
    }
    this.tokens -= 1;
    const before = this.suppressed;
    this.suppressed = 0;
    return before;
  }
}
