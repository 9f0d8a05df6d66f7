// Which blocks this node advertises.
//
// The advertisement must follow the block records, but never run ahead of
// them in the wrong direction: a block is advertised from the moment it is
// claimed (before the watch delivers its record), and withdrawn before its
// record is deleted. Watch events that are older than a claim or a release
// must not undo it. So the advertised set is
//     blocks the view assigns to us  ∪ claimed-but-not-yet-seen
//                                    − being-released
// and the pending sets are cleared once the view has caught up.

export class OwnBlocks {
  private fromView = new Set<string>();
  private readonly claimed = new Set<string>();
  private readonly releasing = new Set<string>();

  /** The blocks to advertise, sorted. */
  current(): string[] {
    const out = new Set([...this.fromView, ...this.claimed]);
    for (const b of this.releasing) out.delete(b);
    return [...out].sort();
  }

  /** The view's blocks of this node changed; returns whether current() changed. */
  setView(blocks: Iterable<string>): boolean {
    const before = this.current().join();
    this.fromView = new Set(blocks);
    for (const b of this.claimed) if (this.fromView.has(b)) this.claimed.delete(b);
    for (const b of this.releasing) if (!this.fromView.has(b)) this.releasing.delete(b);
    return this.current().join() !== before;
  }

  /**
   * The blocks the view gave this node that `next` (the view's new blocks of
   * this node) no longer does, though this node did not give them back: taken
   * by another writer (collected, removed).
   */
  lost(next: Iterable<string>): string[] {
    const keep = new Set(next);
    return [...this.fromView].filter((b) => !keep.has(b) && !this.releasing.has(b)).sort();
  }

  /** A block was just claimed (its record exists in etcd). */
  claim(block: string): void {
    this.releasing.delete(block);
    if (!this.fromView.has(block)) this.claimed.add(block);
  }

  /** A block is about to be given back. */
  release(block: string): void {
    this.claimed.delete(block);
    if (this.fromView.has(block)) this.releasing.add(block);
  }

  /** A release did not happen after all (its record is still ours). */
  keep(block: string): void {
    this.releasing.delete(block);
  }
}
