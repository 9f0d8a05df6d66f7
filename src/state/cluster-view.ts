// The validated view of the cluster that controllers act on.
//
// It is fed raw key/value changes (from PrefixMirror watches of nodes/,
// blocks/ and routes/) and answers with checked NodeInfo, BlockInfo and
// AdvertisementInfo values. Invariants:
//  * Only checked records are ever returned; a record that fails a check is
//    left out, reported once per (key, revision, reason) and counted by kind
//    and cause: one report per record, however many of its prefixes fail.
//  * An advertisement is re-checked whenever its node's blocks or node record
//    change, so a prefix is accepted only while the claims say the advertiser
//    holds it, and the advertisement only while it shares the lease of its
//    node's live node record and names that record's host IP as next hop
//    (src/core/claim-trust.ts checkAdvertiser).
//  * A block is attributed by judgeClaim (src/core/claim-trust.ts) from its
//    claim (blocks/) and the holds of it (blocks-held/): to its rightful
//    holder, never to a node a rewritten claim names. Each conflict is
//    reported to onConflict each time the claim or a hold of the block changes and listed by conflicts().
//  * Work is incremental: a change re-checks only the records it can affect
//    (the changed record, and the advertisement of a node whose blocks
//    changed); a topology change re-checks everything.
//  * Pure state: no IO; the caller owns watching and scheduling.

import { formatAddress, formatPrefix } from '../core/cidr.js';
import { checkAdvertiser, judgeClaim, type HoldFact } from '../core/claim-trust.js';
import type { Topology } from '../core/topology.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../gen/trellis/v1/records_pb.js';
import { Keys } from './keys.js';
import { decodeRecord } from './records.js';
import { checkAdvertisement, checkBlock, checkNode, type AdvertisementInfo, type BlockInfo, type NodeInfo } from './validate.js';

export interface RawEntry {
  readonly value: string;
  readonly modRevision: string;
  /** Revision that created the key (claims and holds are judged by it); '0' when unknown. */
  readonly createRevision?: string;
  /** etcd lease of the key, '0' for none (node records and advertisements must share one). */
  readonly lease?: string;
}

/** A block whose claim and holds disagree (see judgeClaim). */
export interface ClaimConflict {
  readonly prefix: string;
  /** The owner the claim record names ('' when missing or unreadable). */
  readonly claimed: string;
  /** The rightful holder, to whom the block is attributed. */
  readonly holder: string;
  readonly reason: string;
}

export interface IgnoredRecord {
  readonly key: string;
  readonly modRevision: string;
  readonly kind: 'node' | 'block' | 'hold' | 'advertisement' | 'advertised-prefix' | 'drain';
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

type Kind = 'nodes' | 'blocks' | 'holds' | 'routes';

export interface ClusterViewOptions {
  /**
   * An advertisement not bound to its node record is reported (onIgnored)
   * only once it has stayed so this long (reportUnbound); 0: at once. Until
   * then it is not used either way.
   */
  readonly unboundGraceMs?: number;
  readonly now?: () => number;
}

export class ClusterView {
  private readonly raw = { nodes: new Map<string, RawEntry>(), blocks: new Map<string, RawEntry>(), holds: new Map<string, RawEntry>(), routes: new Map<string, RawEntry>() };
  private readonly dirty = { nodes: new Set<string>(), blocks: new Set<string>(), holds: new Set<string>(), routes: new Set<string>() };
  /** Checked claims and holds by block prefix text (holds by node). */
  private readonly claimAt = new Map<string, { info: BlockInfo; createRevision: bigint }>();
  private readonly holdsAt = new Map<string, Map<string, { info: BlockInfo; createRevision: bigint }>>();
  /** Prefix text of the checked claim or hold under each key. */
  private readonly prefixOfKey = new Map<string, string>();
  private readonly conflictsOut = new Map<string, ClaimConflict>();
  /** Lease of each valid node record, by node name. */
  private readonly nodeLease = new Map<string, string>();
  /** Checked results, by key. */
  private readonly nodeByKey = new Map<string, NodeInfo>();
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
  readonly ignoredCounts = { node: 0, block: 0, hold: 0, advertisement: 0, 'advertised-prefix': 0, drain: 0 };
  /** Conflicts reported (each new conflict state of a block once). */
  conflictCount = 0;

  /** Advertisements waiting for their node record (unboundGraceMs > 0), by key. */
  private readonly unbound = new Map<string, { entry: RawEntry; reason: string; since: number }>();

  constructor(
    private topology: Topology,
    private readonly keys: Keys,
    private readonly onIgnored: (record: IgnoredRecord) => void = () => undefined,
    private readonly onConflict: (conflict: ClaimConflict) => void = () => undefined,
    private readonly options: ClusterViewOptions = {},
  ) {}

  /**
   * Advertisements not bound to their node record (none, another lease, host
   * IP or subnet) for longer than unboundGraceMs are reported now. A node
   * writes both in one transaction, but they reach a watcher on two watches,
   * so a moment apart: within the grace the advertisement is only not used.
   */
  reportUnbound(): void {
    const now = (this.options.now ?? Date.now)();
    for (const [key, u] of this.unbound) {
      if (now - u.since < (this.options.unboundGraceMs ?? 0)) continue;
      const entry = this.raw.routes.get(key);
      if (entry === undefined || entry.modRevision !== u.entry.modRevision) continue;
      this.ignore(key, entry, 'advertisement', u.reason, 'invalid');
    }
  }

  setTopology(topology: Topology): void {
    this.topology = topology;
    for (const kind of ['nodes', 'blocks', 'holds', 'routes'] as const) for (const key of this.raw[kind].keys()) this.dirty[kind].add(key);
  }

  getTopology(): Topology {
    return this.topology;
  }

  private kindOf(key: string): Kind | undefined {
    if (key.startsWith(this.keys.nodesPrefix())) return 'nodes';
    if (key.startsWith(this.keys.blocksPrefix())) return 'blocks';
    if (key.startsWith(this.keys.holdsPrefix())) return 'holds';
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
        if (this.nodesOut.get(old.name) === old) {
          this.nodesOut.delete(old.name);
          this.nodeLease.delete(old.name);
        }
      }
      this.touchNodeAdvert(Keys.leaf(key));
      const entry = this.raw.nodes.get(key);
      if (entry === undefined) continue;
      const decoded = decodeRecord(NodeSchema, entry.value);
      const checked = decoded.ok ? checkNode(decoded.value, Keys.leaf(key), this.topology) : decoded;
      if (checked.ok) {
        this.nodeByKey.set(key, checked.value);
        this.nodesOut.set(checked.value.name, checked.value);
        this.nodeLease.set(checked.value.name, entry.lease ?? '0');
      } else this.ignore(key, entry, 'node', checked.reason, decoded.ok ? 'invalid' : 'undecodable');
    }
    this.dirty.nodes.clear();
    return this.nodesOut;
  }

  private touchNodeAdvert(node: string): void {
    const key = this.advertKeyOfNode.get(node);
    if (key !== undefined) this.dirty.routes.add(key);
  }

  /** Checks the claim or hold under `key`; the prefix text it is about (also when it is gone or invalid). */
  private checkClaimKey(key: string, kind: 'blocks' | 'holds'): string | undefined {
    const before = this.prefixOfKey.get(key);
    if (before !== undefined) {
      this.prefixOfKey.delete(key);
      if (kind === 'blocks') this.claimAt.delete(before);
      else {
        const at = this.holdsAt.get(before);
        at?.delete(this.keys.holdFromKey(key)?.node ?? '');
        if (at?.size === 0) this.holdsAt.delete(before);
      }
    }
    const entry = this.raw[kind].get(key);
    const named = kind === 'blocks' ? this.keys.blockFromKey(key) : this.keys.holdFromKey(key)?.prefix;
    const text = named === undefined ? before : formatPrefix(named);
    if (entry === undefined) return text;
    if (named === undefined) {
      this.ignore(key, entry, kind === 'blocks' ? 'block' : 'hold', kind === 'blocks' ? 'key does not name a prefix' : 'key is not <node>/<block>');
      return text;
    }
    const decoded = decodeRecord(BlockSchema, entry.value);
    let checked = decoded.ok ? checkBlock(decoded.value, named, this.topology) : decoded;
    const holder = kind === 'holds' ? this.keys.holdFromKey(key)?.node : undefined;
    if (checked.ok && holder !== undefined && checked.value.node !== holder) checked = { ok: false, reason: `hold under ${holder} names ${checked.value.node}` };
    if (!checked.ok) {
      this.ignore(key, entry, kind === 'blocks' ? 'block' : 'hold', checked.reason, decoded.ok ? 'invalid' : 'undecodable');
      return text;
    }
    const fact = { info: checked.value, createRevision: BigInt(entry.createRevision ?? '0') };
    const t = formatPrefix(named);
    this.prefixOfKey.set(key, t);
    if (kind === 'blocks') this.claimAt.set(t, fact);
    else {
      let at = this.holdsAt.get(t);
      if (at === undefined) this.holdsAt.set(t, (at = new Map()));
      at.set(checked.value.node, fact);
    }
    return t;
  }

  /** Judge one block from its claim and holds; update the outputs. */
  private judge(text: string): void {
    const old = this.blocksOut.get(text);
    if (old !== undefined) {
      this.blocksOut.delete(text);
      const mine = this.byNode.get(old.node);
      mine?.delete(text);
      if (mine?.size === 0) this.byNode.delete(old.node);
      this.touchNodeAdvert(old.node);
    }
    const claim = this.claimAt.get(text);
    const holds = this.holdsAt.get(text) ?? new Map<string, { info: BlockInfo; createRevision: bigint }>();
    const facts: HoldFact[] = [...holds].map(([node, h]) => ({ node, createRevision: h.createRevision }));
    const verdict = judgeClaim(claim === undefined ? undefined : { owner: claim.info.node, createRevision: claim.createRevision }, facts);
    if (verdict.holder === undefined || verdict.conflict === undefined) this.conflictsOut.delete(text);
    if (verdict.holder === undefined) return;
    const b = claim !== undefined && claim.info.node === verdict.holder ? claim.info : (holds.get(verdict.holder)?.info as BlockInfo);
    if (verdict.conflict !== undefined) {
      const conflict: ClaimConflict = { prefix: text, claimed: claim?.info.node ?? '', holder: verdict.holder, reason: verdict.conflict };
      this.conflictsOut.set(text, conflict);
      // Judged again only when the claim or a hold changed: each report is a new state.
      this.conflictCount++;
      this.onConflict(conflict);
    }
    this.blocksOut.set(text, b);
    let mine = this.byNode.get(b.node);
    if (mine === undefined) this.byNode.set(b.node, (mine = new Map()));
    mine.set(text, b);
    this.touchNodeAdvert(b.node);
  }

  /** Blocks by prefix text, each attributed to its holder (see judgeClaim). */
  blocks(): ReadonlyMap<string, BlockInfo> {
    const touched = new Set<string>();
    for (const kind of ['blocks', 'holds'] as const) {
      for (const key of this.dirty[kind]) {
        const text = this.checkClaimKey(key, kind);
        if (text !== undefined) touched.add(text);
      }
      this.dirty[kind].clear();
    }
    for (const text of touched) this.judge(text);
    return this.blocksOut;
  }

  /** Blocks whose claim and holds disagree, by prefix text. */
  conflicts(): ReadonlyMap<string, ClaimConflict> {
    this.blocks();
    return this.conflictsOut;
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
    this.nodes(); // node record changes mark the affected advertisements dirty
    this.blocks(); // so do block changes
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
      if (entry === undefined) {
        this.unbound.delete(key);
        continue;
      }
      if (where === undefined) {
        this.ignore(key, entry, 'advertisement', 'key is not <subnet>/<node>');
        continue;
      }
      this.advertKeyOfNode.set(where.node, key);
      const decoded = decodeRecord(AdvertisementSchema, entry.value);
      const owned = [...(this.byNode.get(where.node)?.values() ?? [])];
      let checked = decoded.ok ? checkAdvertisement(decoded.value, where, this.topology, owned) : decoded;
      if (checked.ok) {
        const a = checked.value;
        const n = this.nodesOut.get(where.node);
        const nodeFacts = n === undefined ? undefined : { subnet: n.subnet.id, hostIP: formatAddress(n.hostIP), lease: this.nodeLease.get(where.node) ?? '0' };
        const unbound = checkAdvertiser({ node: a.node, subnet: a.subnet.id, nextHop: formatAddress(a.nextHop), lease: entry.lease ?? '0' }, nodeFacts);
        // Only what the two-watch race can cause waits: no node record yet, or the node record's lease not yet seen.
        const racing = nodeFacts === undefined || nodeFacts.lease !== (entry.lease ?? '0');
        if (unbound !== undefined && racing && (this.options.unboundGraceMs ?? 0) > 0) {
          const since = this.unbound.get(key)?.since ?? (this.options.now ?? Date.now)();
          this.unbound.set(key, { entry, reason: unbound, since });
          continue;
        }
        if (unbound !== undefined) checked = { ok: false, reason: unbound };
      }
      this.unbound.delete(key);
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
