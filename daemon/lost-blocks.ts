// Blocks taken from this node while it held them: collected by the cluster's
// node collector or removed by `trellisctl node remove --force` (typically
// while the node was cut off from etcd). NodeAdvertisement has already
// withdrawn them from the advertisement when this is told.
//
// Invariants:
//  * Each taken block is logged (error) and counted in
//    trellis_blocks_lost_total; the allocator drops its state and never
//    chooses those blocks again in this run (pods may still hold addresses in
//    them), and since every address write is guarded by its block's claim, no
//    address of a taken block is handed out.
//  * The node is not ready, /readyz naming the taken blocks, until it holds a
//    block again; it claims one at once (retrying with backoff).

import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { describeError } from '../src/errors.js';
import { retryUntil } from '../src/retry.js';
import { FIRST_BLOCK_BACKOFF } from './first-block.js';

/** What this needs of the allocator (Ipam fits). */
export interface LosingAllocator {
  lost(blocks: readonly string[]): void;
  ensureBlock(): Promise<string[]>;
}

export interface LostBlocksOptions {
  readonly ipam: LosingAllocator;
  readonly log: Logger;
  /** trellis_blocks_lost_total */
  readonly counter: Counter;
  /** Called with the blocks held once the node holds one again. */
  readonly reclaimed: (blocks: string[]) => Promise<void>;
  readonly stopping: () => boolean;
}

export class LostBlocks {
  private taken: string[] = [];
  private recovering: Promise<void> | undefined;

  constructor(private readonly o: LostBlocksOptions) {}

  /** Why the node is not ready, while it recovers from taken blocks. */
  notReadyReason(): string | undefined {
    if (this.recovering === undefined) return undefined;
    return `blocks ${this.taken.join(' ')} were taken from this node while it held them (collected or removed): ` +
      'no longer advertised; pods with addresses in them must be restarted; claiming a new block';
  }

  /** NodeAdvertisement's onLost. */
  readonly onLost = (blocks: string[]): void => {
    for (const block of blocks) {
      this.o.log.error({ block }, 'block taken from this node while it held it (collected or removed); withdrawn, its addresses are not handed out');
    }
    this.o.counter.inc(blocks.length);
    this.taken = [...new Set([...this.taken, ...blocks])].sort();
    this.o.ipam.lost(blocks);
    this.recovering ??= this.recover().finally(() => (this.recovering = undefined));
  };

  private async recover(): Promise<void> {
    const blocks = await retryUntil(() => this.o.ipam.ensureBlock(), {
      policy: FIRST_BLOCK_BACKOFF,
      stopped: this.o.stopping,
      onError: (err, delayMs) => this.o.log.warn({ err: describeError(err), retryInMs: delayMs }, 'cannot claim a block after losing blocks; retrying'),
    });
    if (blocks === undefined) return;
    await this.o.reclaimed(blocks);
    this.o.log.info({ blocks, taken: this.taken }, 'holding blocks again after blocks were taken');
  }
}
