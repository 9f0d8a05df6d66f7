// The validated view of the cluster that controllers act on.
//
// It is fed raw key/value changes (from PrefixMirror watches of nodes/,
// blocks/ and routes/) and answers with checked NodeInfo, BlockInfo and
// AdvertisementInfo values. Invariants:
//  * Only checked records are ever returned; a record that fails a check is
//    left out, logged once per (key, revision) and counted by reason kind.
//  * Advertisements are re-checked whenever blocks change, so a prefix is
//    accepted only while the block records say the advertiser owns it.
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
  readonly reason: string;
}

export class ClusterView {
  private readonly rawNodes = new Map<string, RawEntry>();
  private readonly rawBlocks = new Map<string, RawEntry>();
  private readonly rawRoutes = new Map<string, RawEntry>();
  private nodesCache: Map<string, NodeInfo> | undefined;
  private blocksCache: Map<string, BlockInfo> | undefined;
  private advertsCache: Map<string, AdvertisementInfo> | undefined;
  private readonly reported = new Set<string>();
  /** Ignored records by kind, counted once per key revision. */
  readonly ignoredCounts = { node: 0, block: 0, advertisement: 0, 'advertised-prefix': 0 };

  constructor(
    private topology: Topology,
    private readonly keys: Keys,
    private readonly onIgnored: (record: IgnoredRecord) => void = () => undefined,
  ) {}

  setTopology(topology: Topology): void {
    this.topology = topology;
    this.invalidate();
  }

  getTopology(): Topology {
    return this.topology;
  }

  /** Apply one raw change; `value` undefined means the key was deleted. */
  apply(key: string, entry: RawEntry | undefined): void {
    const map = key.startsWith(this.keys.nodesPrefix())
      ? this.rawNodes
      : key.startsWith(this.keys.blocksPrefix())
        ? this.rawBlocks
        : key.startsWith(this.keys.routesPrefix())
          ? this.rawRoutes
          : undefined;
    if (map === undefined) return;
    if (entry === undefined) map.delete(key);
    else map.set(key, entry);
    if (map === this.rawNodes) this.nodesCache = undefined;
    else this.invalidate();
  }

  private invalidate(): void {
    this.nodesCache = undefined;
    this.blocksCache = undefined;
    this.advertsCache = undefined;
  }

  private ignore(key: string, entry: RawEntry, kind: IgnoredRecord['kind'], reason: string): void {
    const id = `${kind}\u0000${key}\u0000${entry.modRevision}\u0000${reason}`;
    if (this.reported.has(id)) return;
    if (this.reported.size > 100_000) this.reported.clear();
    this.reported.add(id);
    this.ignoredCounts[kind]++;
    this.onIgnored({ key, modRevision: entry.modRevision, kind, reason });
  }

  /** Live nodes by name. */
  nodes(): ReadonlyMap<string, NodeInfo> {
    if (this.nodesCache !== undefined) return this.nodesCache;
    const out = new Map<string, NodeInfo>();
    for (const [key, entry] of this.rawNodes) {
      const decoded = decodeRecord(NodeSchema, entry.value);
      const checked = decoded.ok ? checkNode(decoded.value, Keys.leaf(key), this.topology) : decoded;
      if (checked.ok) out.set(checked.value.name, checked.value);
      else this.ignore(key, entry, 'node', checked.reason);
    }
    this.nodesCache = out;
    return out;
  }

  /** Claimed blocks by prefix text. */
  blocks(): ReadonlyMap<string, BlockInfo> {
    if (this.blocksCache !== undefined) return this.blocksCache;
    const out = new Map<string, BlockInfo>();
    for (const [key, entry] of this.rawBlocks) {
      const keyPrefix = this.keys.blockFromKey(key);
      if (keyPrefix === undefined) {
        this.ignore(key, entry, 'block', 'key does not name a prefix');
        continue;
      }
      const decoded = decodeRecord(BlockSchema, entry.value);
      const checked = decoded.ok ? checkBlock(decoded.value, keyPrefix, this.topology) : decoded;
      if (checked.ok) out.set(formatPrefix(checked.value.prefix), checked.value);
      else this.ignore(key, entry, 'block', checked.reason);
    }
    this.blocksCache = out;
    return out;
  }

  /** Blocks grouped by owner node. */
  blocksByNode(): Map<string, BlockInfo[]> {
    const out = new Map<string, BlockInfo[]>();
    for (const b of this.blocks().values()) {
      const list = out.get(b.node);
      if (list === undefined) out.set(b.node, [b]);
      else list.push(b);
    }
    return out;
  }

  /** Checked advertisements by node name (only accepted prefixes inside). */
  advertisements(): ReadonlyMap<string, AdvertisementInfo> {
    if (this.advertsCache !== undefined) return this.advertsCache;
    const byNode = this.blocksByNode();
    const out = new Map<string, AdvertisementInfo>();
    for (const [key, entry] of this.rawRoutes) {
      const where = this.keys.routeFromKey(key);
      if (where === undefined) {
        this.ignore(key, entry, 'advertisement', 'key is not <subnet>/<node>');
        continue;
      }
      const decoded = decodeRecord(AdvertisementSchema, entry.value);
      const checked = decoded.ok ? checkAdvertisement(decoded.value, where, this.topology, byNode.get(where.node) ?? []) : decoded;
      if (!checked.ok) {
        this.ignore(key, entry, 'advertisement', checked.reason);
        continue;
      }
      for (const r of checked.value.rejected) this.ignore(key, entry, 'advertised-prefix', `${r.prefix}: ${r.reason}`);
      out.set(where.node, checked.value);
    }
    this.advertsCache = out;
    return out;
  }

  /** Number of raw advertisement records present (valid or not). */
  advertisementCount(): number {
    return this.rawRoutes.size;
  }
}
