// This node's advertisement: the blocks it holds and the leased records that
// tell the cluster about them (its node record and its advertisement, "these
// pod prefixes via my host IP"), written through a Publisher.
//
// Lifecycle: publishNode() → claim(ipam) (at least one block, then the first
// advertisement, flushed) → followBlocks(...) on every change of the block
// records seen in etcd → startReclaim() (periodic give-back of blocks that
// stayed empty) → stop().
// Invariants:
//  * The advertisement equals the aggregate of OwnBlocks.current(): the blocks
//    the block records in etcd assign to this node in its subnet, plus blocks
//    claimed but not yet seen, minus blocks being released. A block claimed by
//    any component is advertised as soon as its record is seen.
//  * A block is withdrawn, and the withdrawal flushed, before its record is
//    deleted (beforeRelease); a release that did not happen is advertised again.
//  * ensureAdvertised(block) resolves only after the block is in the published
//    advertisement (or the publisher gave up on this round and retries).
//  * An empty set of blocks is never published (the last advertisement stays),
//    except when blocks were taken from the node (collected or removed while
//    it held them): those are withdrawn at once, and onLost is told.
//  * The node record is first written together with the first advertisement
//    (one batch: one transaction), never before: peers accept an
//    advertisement only under its node record's lease, so a restart under a
//    new lease must not put the node record under the new lease while the
//    previous run's advertisement still stands under the old one.
// Contact with the allocator is the narrow `BlockHolder` below plus the
// `beforeRelease` callback the allocator is constructed with.

import type { Logger } from 'pino';
import { aggregate, formatPrefix, parsePrefix } from '../src/core/cidr.js';
import { OwnBlocks } from '../src/core/own-blocks.js';
import type { Subnet } from '../src/core/topology.js';
import { AdvertisementSchema, NodeSchema, type Advertisement, type Node } from '../src/gen/trellis/v1/records_pb.js';
import type { Keys } from '../src/state/keys.js';
import { makeRecord, msToTimestamp } from '../src/state/records.js';
import type { BlockInfo } from '../src/state/validate.js';

/** What the advertisement needs of the allocator (Ipam fits). */
export interface BlockHolder {
  /** Claims a block if this node holds none; returns the blocks held. */
  ensureBlock(): Promise<string[]>;
  /** Gives back blocks empty for the grace period (calling beforeRelease first); returns them. */
  releaseEmptyBlocks(): Promise<string[]>;
  /** The blocks whose records name this node. */
  listBlocks(): Promise<string[]>;
}

/** Where the records go (Publisher fits). */
export interface AdvertisementSink {
  setNode(key: string, record: Node): void;
  setAdvertisement(key: string, record: Advertisement): void;
  flush(): Promise<boolean>;
  /** Writes the changes `fn` makes together (optional; Publisher has it). */
  batch?(fn: () => void): void;
  verify(key: string, current: { value: string; lease: string } | undefined): void;
}

export interface ReclaimTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface NodeAdvertisementOptions {
  readonly node: string;
  readonly hostIP: string;
  readonly instanceId: string;
  readonly subnet: Subnet;
  /** host:port peers and the VPC advertiser probe ('' when none). */
  readonly healthEndpoint: string;
  readonly agentVersion: string;
  readonly keys: Keys;
  readonly sink: AdvertisementSink;
  readonly log: Logger;
  /** How long a block stays empty before it is given back; the reclaim period derives from it. */
  readonly blockGraceMs: number;
  readonly now?: () => number;
  readonly timers?: ReclaimTimers;
  /** Blocks taken from this node while it held them (collected or removed): already withdrawn. */
  readonly onLost?: (blocks: string[]) => void;
}

const realTimers: ReclaimTimers = {
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** How often empty blocks are looked for: a quarter of the grace, within [1 s, 60 s]. */
export function reclaimPeriodMs(blockGraceMs: number): number {
  return Math.max(1000, Math.min(60_000, blockGraceMs / 4));
}

export class NodeAdvertisement {
  private readonly own = new OwnBlocks();
  private readonly now: () => number;
  private readonly timers: ReclaimTimers;
  private ipam: BlockHolder | undefined;
  private reclaimTimer: unknown;
  /** The node record, until it is written with the first advertisement. */
  private pendingNode: Node | undefined;
  private advertised = false;
  readonly nodeKey: string;
  readonly routeKey: string;

  constructor(private readonly o: NodeAdvertisementOptions) {
    this.now = o.now ?? Date.now;
    this.timers = o.timers ?? realTimers;
    this.nodeKey = o.keys.node(o.node);
    this.routeKey = o.keys.route(o.subnet.id, o.node);
  }

  /** The blocks advertised now, sorted. */
  blocks(): string[] {
    return this.own.current();
  }

  /** Puts this node's record (its start time is now), with the first advertisement if none was published yet. */
  publishNode(): void {
    const { o } = this;
    const record = makeRecord(NodeSchema, {
      name: o.node,
      subnet: o.subnet.id,
      zone: o.subnet.zone,
      hostIp: o.hostIP,
      instanceId: o.instanceId,
      healthEndpoint: o.healthEndpoint,
      startedAt: msToTimestamp(this.now()),
      agentVersion: o.agentVersion,
    });
    if (this.advertised) o.sink.setNode(this.nodeKey, record);
    else this.pendingNode = record;
  }

  /** The allocator's beforeRelease hook: withdraw the block and wait for the withdrawal to be written. */
  readonly beforeRelease = async (block: string): Promise<void> => {
    this.own.release(block);
    this.advertiseOwn();
    await this.o.sink.flush();
  };

  /** Holds at least one block and publishes the first advertisement; returns the blocks held. */
  async claim(ipam: BlockHolder): Promise<string[]> {
    this.ipam = ipam;
    const blocks = await ipam.ensureBlock();
    this.o.log.info({ blocks }, 'holding blocks');
    this.own.setView(blocks);
    this.advertiseOwn();
    await this.o.sink.flush();
    return blocks;
  }

  /** The block records of this node seen in etcd (any subnet; only this node's subnet counts). */
  followBlocks(mine: readonly BlockInfo[]): void {
    const blocks = mine.filter((b) => b.subnet.id === this.o.subnet.id).map((b) => formatPrefix(b.prefix));
    const lost = this.own.lost(blocks);
    // Blocks taken from us are withdrawn at once, even when none is left to advertise.
    if (this.own.setView(blocks)) this.advertiseOwn(lost.length > 0);
    if (lost.length > 0) this.o.onLost?.(lost);
  }

  /** Whether `key` is one of the records this node publishes. */
  owns(key: string): boolean {
    return key === this.nodeKey || key === this.routeKey;
  }

  /** What etcd now holds for one of our keys (after a watch event): repaired if it differs. */
  verify(key: string, current: { value: string; lease: string } | undefined): void {
    if (this.owns(key)) this.o.sink.verify(key, current);
  }

  /** Resolves once `block` (just allocated from) is in the published advertisement. */
  async ensureAdvertised(block: string): Promise<void> {
    this.own.claim(block);
    this.advertiseOwn();
    await this.o.sink.flush();
  }

  /** Gives back blocks that stayed empty for the grace period (never the last one). */
  async reclaim(): Promise<void> {
    const ipam = this.ipam;
    if (ipam === undefined) return;
    const before = new Set(this.own.current());
    try {
      const released = await ipam.releaseEmptyBlocks();
      if (released.length > 0) this.o.log.info({ released }, 'gave empty blocks back to the subnet');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'giving back empty blocks failed');
    }
    // A block withdrawn for release that is still ours (lost race, error) is advertised again.
    const records = new Set(await ipam.listBlocks().catch(() => [...before]));
    for (const b of before) if (records.has(b)) this.own.keep(b);
    this.advertiseOwn();
  }

  startReclaim(): void {
    if (this.reclaimTimer !== undefined) return;
    this.reclaimTimer = this.timers.setInterval(() => void this.reclaim(), reclaimPeriodMs(this.o.blockGraceMs));
  }

  stop(): void {
    if (this.reclaimTimer !== undefined) this.timers.clearInterval(this.reclaimTimer);
    this.reclaimTimer = undefined;
  }

  private advertiseOwn(evenEmpty = false): void {
    const blocks = this.own.current();
    if (blocks.length === 0 && !evenEmpty) return;
    const { o } = this;
    const write = (): void => {
      if (this.pendingNode !== undefined) o.sink.setNode(this.nodeKey, this.pendingNode);
      this.pendingNode = undefined;
      this.advertised = true;
      o.sink.setAdvertisement(
        this.routeKey,
        makeRecord(AdvertisementSchema, {
          node: o.node,
          subnet: o.subnet.id,
          nextHop: o.hostIP,
          prefixes: aggregate(blocks.map((b) => parsePrefix(b))).map(formatPrefix),
          instanceId: o.instanceId,
        }),
      );
    };
    if (o.sink.batch !== undefined) o.sink.batch(write);
    else write();
  }
}
