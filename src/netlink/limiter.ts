// A counting semaphore for netlink requests: at most `max` tasks run at once,
// the rest wait in FIFO order. The netlink package aborts the whole process
// when a socket's receive queue overruns, so every request to the kernel goes
// through one of these; `peak` records the highest concurrency ever reached.

export class Limiter {
  private running = 0;
  private highest = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`Limiter: max must be a positive integer, got ${max}`);
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /** The most tasks that ever ran at once. */
  get peak(): number {
    return this.highest;
  }

  /** Runs `task` once a slot is free; the slot is released when it settles. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    this.highest = Math.max(this.highest, this.running);
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // Hand the slot straight to the next waiter; `running` stays the same.
      if (next === undefined) this.running--;
      else next();
    }
  }
}
