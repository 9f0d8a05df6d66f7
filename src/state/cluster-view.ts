// The validated view of the cluster that controllers act on.
//
// It is fed raw key/value changes (from PrefixMirror watches of nodes/,
// blocks/ and routes/) and answers with checked NodeInfo, BlockInfo and
// AdvertisementInfo values. Invariants:
//  * Only checked records are ever returned; a record that fails a check is
//    left out, reported once per (key, revision, reason) and counted by kind
//    and cause: one report per record, however many of its prefixes fail.
//  * An advertisement is re-checked whenever its node's blocks change, so a
//    prefix is accepted only while the block records say the advertiser owns it.
//  * Work is incremental: a change re-checks only the records it can affect
//    (the changed record, and the advertisement of a node whose blocks
//    changed); a topology change re-checks everything.
//  * Pure state: no IO; the caller owns watching and scheduling.

import { formatPrefix } from '../core/cidr.js';
import type { Topology } from '../core/topology.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../gen/trellis/v1/records_pb.js';
import { Keys } from './keys.js';
import { decodeRecord } from './records.js';
import { checkAdvertisement, checkBlock, checkNode, type AdvertisementInfo, type BlockInfo, type NodeInfo } from './validate.js';

export interface RawEntry {
  readonly value: string;
  readonly modRevision: string;
}

export interface IgnoredRecord {
  readonly key: string;
  readonly modRevision: string;
  readonly kind: 'node' | 'block' | 'advertisement' | 'advertised-prefix';
  /** What is wrong, in a few words (a metric label): see IgnoreCause. */
  readonly cause: IgnoreCause;
  readonly reason: string;
}

/**
 * undecodable: not a record of this schema version; invalid: decodes but
 * fails a check; oversized: too large to be read as a record (reported by
 * the readers, before decoding).
 */
export type IgnoreCause = 'undecodable' | 'invalid' | 'oversized';

/** At most this many rejected prefixes are named in one report. */
const NAMED_PREFIXES = 5;

type Kind = 'nodes' | 'blocks' | 'routes';

export class ClusterView {
  private readonly raw = { nodes: new Map<string, RawEntry>(), blocks: new Map<string, RawEntry>(), routes: new Map<string, RawEntry>() };
  private readonly dirty = { nodes: new Set<string>(), blocks: new Set<string>(), routes: new Set<string>() };
  /** Checked results, by key. */
  private readonly nodeByKey = new Map<string, NodeInfo>();
  private readonly blockByKey = new Map<string, BlockInfo>();
  private readonly advertByKey = new Map<string, AdvertisementInfo>();
  /** Outputs, maintained from the per-key results. */
  private readonly nodesOut = new Map<string, NodeInfo>();
  private readonly blocksOut = new Map<string, BlockInfo>();
  private readonly byNode = new Map<string, Map<string, BlockInfo>>();
  private readonly advertsOut = new Map<string, AdvertisementInfo>();
  /** Advertisement key of each node (for re-checks when its blocks change). */
  private readonly advertKeyOfNode = new Map<string, string>();
  private readonly reported = new Set<string>();
  /** Nodes whose accepted advertisement changed since takeChangedAdvertisers(). */
  private readonly changedAdvertisers = new Set<string>();
  /** Ignored records by kind, counted once per key revision. */
  readonly ignoredCounts = { node: 0, block: 0, advertisement: 0, 'advertised-prefix': 0 };

  constructor(
    private topology: Topology,
    private readonly keys: Keys,
    private readonly onIgnored: (record: IgnoredRecord) => void = () => undefined,
  ) {}

  setTopology(topology: Topology): void {
    this.topology = topology;
    for (const kind of ['nodes', 'blocks', 'routes'] as const) for (const key of this.raw[kind].keys()) this.dirty[kind].add(key);
  }

  getTopology(): Topology {
    return this.topology;
  }

  private kindOf(key: string): Kind | undefined {
    if (key.startsWith(this.keys.nodesPrefix())) return 'nodes';
    if (key.startsWith(this.keys.blocksPrefix())) return 'blocks';
    if (key.startsWith(this.keys.routesPrefix())) return 'routes';
    return undefined;
  }

  /** Apply one raw change; `entry` undefined means the key was deleted. */
  apply(key: string, entry: RawEntry | undefined): void {
    const kind = this.kindOf(key);
    if (kind === undefined) return;
    if (entry === undefined) this.raw[kind].delete(key);
    else this.raw[kind].set(key, entry);
    this.dirty[kind].add(key);
  }

  private ignore(key: string, entry: RawEntry, kind: IgnoredRecord['kind'], reason: string, cause: IgnoreCause = 'invalid'): void {
    const id = `${kind}\u0000${key}\u0000${entry.modRevision}\u0000${reason}`;
    if (this.reported.has(id)) return;
    if (this.reported.size > 100_000) this.reported.clear();
    this.reported.add(id);
    this.ignoredCounts[kind]++;
    this.onIgnored({ key, modRevision: entry.modRevision, kind, cause, reason });
  }

  /** Live nodes by name. */
  nodes(): ReadonlyMap<string, NodeInfo> {
    for (const key of this.dirty.nodes) {
      const old = this.nodeByKey.get(key);
      if (old !== undefined) {
        this.nodeByKey.delete(key);
        if (this.nodesOut.get(old.name) === old) this.nodesOut.delete(old.name);
      }
      const entry = this.raw.nodes.get(key);
      if (entry === undefined) continue;
      const decoded = decodeRecord(NodeSchema, entry.value);
      const checked = decoded.ok ? checkNode(decoded.value, Keys.leaf(key), this.topology) : decoded;
      if (checked.ok) {
        this.nodeByKey.set(key, checked.value);
        this.nodesOut.set(checked.value.name, checked.value);
      } else this.ignore(key, entry, 'node', checked.reason, decoded.ok ? 'invalid' : 'undecodable');
    }
    this.dirty.nodes.clear();
    return this.nodesOut;
  }

  private unindexBlock(b: BlockInfo): void {
    const text = formatPrefix(b.prefix);
    if (this.blocksOut.get(text) === b) this.blocksOut.delete(text);
    const mine = this.byNode.get(b.node);
    mine?.delete(text);
    if (mine?.size === 0) this.byNode.delete(b.node);
    this.touchNodeAdvert(b.node);
  }

  private touchNodeAdvert(node: string): void {
    const key = this.advertKeyOfNode.get(node);
    if (key !== undefined) this.dirty.routes.add(key);
  }

  /** Claimed blocks by prefix text. */
  blocks(): ReadonlyMap<string, BlockInfo> {
    for (const key of this.dirty.blocks) {
      const old = this.blockByKey.get(key);
      if (old !== undefined) {
        this.blockByKey.delete(key);
        this.unindexBlock(old);
      }
      const entry = this.raw.blocks.get(key);
      if (entry === undefined) continue;
      const keyPrefix = this.keys.blockFromKey(key);
      if (keyPrefix === undefined) {
        this.ignore(key, entry, 'block', 'key does not name a prefix');
        continue;
      }
      const decoded = decodeRecord(BlockSchema, entry.value);
      const checked = decoded.ok ? checkBlock(decoded.value, keyPrefix, this.topology) : decoded;
      if (!checked.ok) {
        this.ignore(key, entry, 'block', checked.reason, decoded.ok ? 'invalid' : 'undecodable');
        continue;
      }
      const b = checked.value;
      const text = formatPrefix(b.prefix);
      this.blockByKey.set(key, b);
      this.blocksOut.set(text, b);
      let mine = this.byNode.get(b.node);
      if (mine === undefined) this.byNode.set(b.node, (mine = new Map()));
      mine.set(text, b);
      this.touchNodeAdvert(b.node);
    }
    this.dirty.blocks.clear();
    return this.blocksOut;
  }

  /** Blocks grouped by owner node. */
  blocksByNode(): Map<string, BlockInfo[]> {
    this.blocks();
    return new Map([...this.byNode].map(([node, blocks]) => [node, [...blocks.values()]]));
  }

  /** The blocks of one node. */
  blocksOf(node: string): BlockInfo[] {
    this.blocks();
    return [...(this.byNode.get(node)?.values() ?? [])];
  }

  /** Checked advertisements by node name (only accepted prefixes inside). */
  advertisements(): ReadonlyMap<string, AdvertisementInfo> {
    this.blocks(); // block changes mark the affected advertisements dirty
    for (const key of this.dirty.routes) {
      const old = this.advertByKey.get(key);
      if (old !== undefined) {
        this.advertByKey.delete(key);
        if (this.advertsOut.get(old.node) === old) {
          this.advertsOut.delete(old.node);
          this.changedAdvertisers.add(old.node);
        }
      }
      const entry = this.raw.routes.get(key);
      const where = this.keys.routeFromKey(key);
      if (where !== undefined && this.advertKeyOfNode.get(where.node) === key && entry === undefined) this.advertKeyOfNode.delete(where.node);
      if (entry === undefined) continue;
      if (where === undefined) {
        this.ignore(key, entry, 'advertisement', 'key is not <subnet>/<node>');
        continue;
      }
      this.advertKeyOfNode.set(where.node, key);
      const decoded = decodeRecord(AdvertisementSchema, entry.value);
      const owned = [...(this.byNode.get(where.node)?.values() ?? [])];
      const checked = decoded.ok ? checkAdvertisement(decoded.value, where, this.topology, owned) : decoded;
      if (!checked.ok) {
        this.ignore(key, entry, 'advertisement', checked.reason, decoded.ok ? 'invalid' : 'undecodable');
        continue;
      }
      const rejected = checked.value.rejected;
      if (rejected.length > 0) {
        const named = rejected.slice(0, NAMED_PREFIXES).map((r) => `${r.prefix}: ${r.reason}`);
        if (rejected.length > NAMED_PREFIXES) named.push(`and ${rejected.length - NAMED_PREFIXES} more`);
        this.ignore(key, entry, 'advertised-prefix', named.join('; '));
      }
      this.advertByKey.set(key, checked.value);
      this.advertsOut.set(where.node, checked.value);
      this.changedAdvertisers.add(where.node);
    }
    this.dirty.routes.clear();
    return this.advertsOut;
  }

  /**
   * Nodes whose accepted advertisement may have changed since the last call
   * (set, replaced or gone): what an incremental consumer must look at again.
   */
  takeChangedAdvertisers(): string[] {
    this.advertisements();
    const out = [...this.changedAdvertisers];
    this.changedAdvertisers.clear();
    return out;
  }

  /** Number of raw advertisement records present (valid or not). */
  advertisementCount(): number {
    return this.raw.routes.size;
  }
}
