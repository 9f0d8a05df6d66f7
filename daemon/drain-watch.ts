// Which nodes are drained (`trellisctl node drain`), as trellisd follows it:
// a watch of <prefix>/v1/drain/ (one small record per drained node, so the
// cost is the number of drained nodes, never the cluster's size), each record
// checked (src/state/drain-record.ts) before it counts. trellisd runs it only
// with vpc.enabled or bgp.enabled: the planners mark drained nodes draining
// (daemon/vpc/plan-input.ts), and this node, while drained, stands down as a
// candidate advertiser and exporter (daemon/election.ts).
// Invariants: `draining()` holds exactly the nodes with a valid record as of
// the last change delivered; nothing is decided from it before `synced`
// (callers fold it into the daemon's own synced); a bad or oversized record
// counts as no drain, is logged once per key revision and counted.

import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { PrefixMirror, type MirrorChange } from '../src/etcd/prefix-mirror.js';
import { checkDrain, MAX_DRAIN_BYTES } from '../src/state/drain-record.js';
import { Keys } from '../src/state/keys.js';

export interface DrainWatchOptions {
  readonly client: Etcd3;
  readonly keys: Keys;
  /** This node's name (its own drain is logged as such). */
  readonly node: string;
  readonly log: Logger;
  /** A record not believed (invalid or oversized). */
  readonly onIgnored?: (cause: 'invalid' | 'oversized') => void;
}

export class DrainWatch extends EventEmitter<{ change: [] }> {
  private readonly mirror: PrefixMirror;
  private readonly drained = new Map<string, string>();

  constructor(private readonly options: DrainWatchOptions) {
    super();
    this.mirror = new PrefixMirror(options.client, options.keys.drainPrefix(), options.log, {
      maxValueBytes: MAX_DRAIN_BYTES,
      onOversize: () => options.onIgnored?.('oversized'),
    });
    this.mirror.on('changes', (changes) => this.apply(changes));
  }

  get synced(): boolean {
    return this.mirror.synced;
  }

  /** Names of the drained nodes. */
  draining(): ReadonlySet<string> {
    return new Set(this.drained.keys());
  }

  /** True while this node is drained. */
  selfDrained(): boolean {
    return this.drained.has(this.options.node);
  }

  async start(): Promise<void> {
    await this.mirror.start();
  }

  async stop(): Promise<void> {
    await this.mirror.stop();
  }

  private apply(changes: readonly MirrorChange[]): void {
    const { log, node } = this.options;
    let changed = false;
    for (const c of changes) {
      const name = Keys.leaf(c.key);
      const was = this.drained.has(name);
      const checked = c.type === 'put' ? checkDrain(c.key, c.value as string) : undefined;
      if (checked?.ok === false) {
        log.warn({ key: c.key, modRevision: c.modRevision, reason: checked.reason }, 'ignoring drain record');
        this.options.onIgnored?.('invalid');
      }
      if (checked?.ok === true) this.drained.set(name, checked.value.since);
      else this.drained.delete(name);
      if (was === this.drained.has(name)) continue;
      changed = true;
      const self = name !== node ? '' : was ? ': this node is a candidate advertiser and exporter again' : ': this node stands down as candidate advertiser and exporter';
      log.info({ node: name, ...(checked?.ok === true ? { since: checked.value.since, by: checked.value.by, reason: checked.value.reason } : {}) }, `${was ? 'node uncordoned' : 'node drained'}${self}`);
    }
    if (changed) this.emit('change');
  }
}

/** What trellisd's drain wiring acts on when the drains change. */
export interface DrainFollowers {
  /** Plan again (VPC advertiser, BGP exporter). */
  markDirty(): void;
  /** Elections to re-check (they stand down while this node is drained). */
  elections(): ReadonlyArray<{ recheck(): Promise<void> } | undefined>;
}

/** The drain watch of trellisd when VPC or BGP mode is on (else undefined), wired to `followers`. */
export function drainWatchFor(enabled: boolean, options: DrainWatchOptions, followers: DrainFollowers): DrainWatch | undefined {
  if (!enabled) return undefined;
  const watch = new DrainWatch(options);
  watch.on('change', () => {
    followers.markDirty();
    for (const e of followers.elections()) void e?.recheck();
  });
  return watch;
}
