// Reachability-first order of one advertiser's delta, for when writes are
// scarce (EC2 refills its mutating bucket at 5 calls per second): the writes
// that make unreachable pod addresses reachable go first, everything that
// only improves the tables (fewer extra hops, spread) after.
//
// A pod address is reachable in a table when its longest-prefix match there
// targets a live forwarder. Phases, across all tables:
//  1. repoint: replaces of entries whose target is not live (a failed
//     forwarder), shortest prefix first;
//  2. unblock: deletes of entries whose target is not live (their addresses
//     are lost anyway; a shorter live entry takes over, and room is freed);
//  3. scaffold: where a table must get many new entries of one subnet whose
//     addresses no live entry covers (many nodes joined at once), one
//     temporary covering entry first, to a live forwarder of the subnet,
//     when the table has room for it beside every create;
//  4. cover: creates, first those whose addresses are still unreachable,
//     then the others, each shortest prefix (covering aggregates) before
//     longer (per-node specifics); in a full table a delete is pulled forward to
//     make room, one whose addresses stay covered when there is one, else
//     marked forced (as vpc-apply-order.ts does);
//  5. optimise: the other replaces (from one live forwarder to another);
//  6. delete: the remaining deletes, then the scaffolds'.
// Invariants: every step of the delta appears exactly once; a scaffold
// appears as a create and a later delete of the same entry, its destination
// is no destination of the table (present or planned), lies inside the
// subnet's pod prefix and targets a live forwarder; the result depends only
// on the inputs.

import { comparePrefix, contains, equal, supernet, type Prefix } from './cidr.js';
import type { TableRoom } from './vpc-apply-order.js';
import { compareText } from './vpc-budget.js';
import { prefixId } from './vpc-cover.js';
import type { VpcDelta, VpcEntry, VpcStep } from './vpc-diff.js';

export type ReachPhase = 'repoint' | 'unblock' | 'scaffold' | 'cover' | 'optimise' | 'delete';

export interface ReachStep extends VpcStep {
  readonly phase: ReachPhase;
  /** A delete that the table's limit forced before a create (its addresses lose their route until then). */
  readonly forced?: boolean;
  /** A temporary covering entry (created in phase scaffold, deleted last). */
  readonly scaffold?: boolean;
}

export interface ReachOrderInput {
  readonly delta: VpcDelta;
  /** Limit and route count of each table (a table not listed is never full). */
  readonly room: ReadonlyMap<string, TableRoom>;
  /** Entries routing pod addresses in each table now, of every subnet. */
  readonly present: readonly VpcEntry[];
  /** Targets (instance ids) that forward now. */
  readonly live: ReadonlySet<string>;
  /** The pod prefix of the subnet holding `p`; without it no scaffold is made. */
  readonly podPrefixOf?: (p: Prefix) => Prefix | undefined;
  /** Fewest uncovered creates of one subnet in one table that earn a scaffold (default 4: it costs two writes). */
  readonly scaffoldMin?: number;
}

const byPrefixThenTable = (a: VpcEntry, b: VpcEntry): number => a.destination.len - b.destination.len || comparePrefix(a.destination, b.destination) || compareText(a.table, b.table);

/** The smallest prefix holding every one of `list` (not empty). */
function covering(list: readonly Prefix[]): Prefix {
  let p = list[0] as Prefix;
  for (const q of list) while (!contains(p, q)) p = supernet(p);
  return p;
}

class TableView {
  readonly byDest = new Map<string, VpcEntry>();
  constructor(entries: readonly VpcEntry[]) {
    for (const e of entries) this.byDest.set(prefixId(e.destination), e);
  }
  /** The entry matching `p` longest (itself or a shorter one holding it). */
  match(p: Prefix): VpcEntry | undefined {
    for (let len = p.len; len >= 0; len--) {
      const e = this.byDest.get(prefixId(len === p.len ? p : supernet(p, len)));
      if (e !== undefined) return e;
    }
    return undefined;
  }
}

export function orderForReach(input: ReachOrderInput): ReachStep[] {
  const { delta, room, live } = input;
  const scaffoldMin = input.scaffoldMin ?? 4;
  const tables = [...new Set(delta.steps.map((s) => s.entry.table))].sort(compareText);
  const views = new Map(tables.map((t) => [t, new TableView(input.present.filter((e) => e.table === t))]));
  const currentTarget = (e: VpcEntry): string | undefined => views.get(e.table)?.byDest.get(prefixId(e.destination))?.target;
  const isLive = (target: string | undefined): boolean => target !== undefined && live.has(target);
  const of = (kind: VpcStep['kind']): VpcEntry[] => delta.steps.filter((s) => s.kind === kind).map((s) => s.entry);

  const out: ReachStep[] = [];
  const replaces = of('replace');
  const optimise = replaces.filter((e) => isLive(currentTarget(e))).sort(byPrefixThenTable);
  for (const entry of replaces.filter((e) => !isLive(currentTarget(e))).sort(byPrefixThenTable)) out.push({ kind: 'replace', entry, phase: 'repoint' });
  const deletes = of('delete');
  const unblock = deletes.filter((e) => !isLive(e.target));
  for (const entry of [...unblock].sort(byPrefixThenTable)) out.push({ kind: 'delete', entry, phase: 'unblock' });
  const remaining = new Map(tables.map((t) => [t, deletes.filter((e) => e.table === t && isLive(e.target))]));

  const free = new Map(tables.map((t) => {
    const r = room.get(t);
    const deleted = unblock.filter((e) => e.table === t).length;
    return [t, r === undefined ? Infinity : r.limit - r.total + deleted];
  }));
  const creates = of('create').sort(byPrefixThenTable);

  // Scaffolds: per table and subnet, the creates whose addresses no live entry reaches now.
  const scaffolds: VpcEntry[] = [];
  if (input.podPrefixOf !== undefined) {
    for (const table of tables) {
      const view = views.get(table) as TableView;
      const mine = creates.filter((e) => e.table === table);
      const taken = new Set([...view.byDest.keys(), ...delta.steps.filter((s) => s.entry.table === table).map((s) => prefixId(s.entry.destination))]);
      const bySubnet = new Map<string, { pod: Prefix; list: VpcEntry[] }>();
      for (const e of mine) {
        const pod = input.podPrefixOf(e.destination);
        if (pod === undefined || !isLive(e.target) || isLive(view.match(e.destination)?.target)) continue;
        const key = prefixId(pod);
        bySubnet.set(key, { pod, list: [...(bySubnet.get(key)?.list ?? []), e] });
      }
      for (const { pod, list } of [...bySubnet.values()].sort((a, b) => comparePrefix(a.pod, b.pod))) {
        if (list.length < scaffoldMin || (free.get(table) as number) < mine.length + 1) continue;
        const dest = covering(list.map((e) => e.destination));
        if (!contains(pod, dest) || taken.has(prefixId(dest)) || list.some((e) => equal(e.destination, dest))) continue;
        // To a forwarder already carrying live entries of the subnet when there is one (it has been up longest).
        const carrying = [...view.byDest.values()].filter((e) => contains(pod, e.destination) && isLive(e.target)).map((e) => e.target).sort(compareText);
        const target = carrying[0] ?? (list[0] as VpcEntry).target;
        scaffolds.push({ table, destination: dest, target });
        free.set(table, (free.get(table) as number) - 1);
        taken.add(prefixId(dest));
      }
    }
  }
  for (const entry of scaffolds) out.push({ kind: 'create', entry, phase: 'scaffold', scaffold: true });

  // The tables as they are once phases 1 to 3 are written: creates that still find no live match come first.
  for (const s of out) {
    const view = views.get(s.entry.table) as TableView;
    if (s.kind === 'delete') view.byDest.delete(prefixId(s.entry.destination));
    else view.byDest.set(prefixId(s.entry.destination), s.entry);
  }
  const needed = (e: VpcEntry): boolean => !isLive(views.get(e.table)?.match(e.destination)?.target);
  const ordered = [...creates.filter(needed), ...creates.filter((e) => !needed(e))];
  for (const entry of ordered) {
    const table = entry.table;
    const left = remaining.get(table) as VpcEntry[];
    if ((free.get(table) as number) <= 0 && left.length > 0) {
      const view = views.get(table) as TableView;
      const lossless = left.findIndex((d) => [...view.byDest.values()].some((e) => !equal(e.destination, d.destination) && contains(e.destination, d.destination) && isLive(e.target)));
      const [victim] = left.splice(lossless >= 0 ? lossless : 0, 1) as [VpcEntry];
      out.push(lossless >= 0 ? { kind: 'delete', entry: victim, phase: 'cover' } : { kind: 'delete', entry: victim, phase: 'cover', forced: true });
      view.byDest.delete(prefixId(victim.destination));
      free.set(table, (free.get(table) as number) + 1);
    }
    out.push({ kind: 'create', entry, phase: 'cover' });
    views.get(table)?.byDest.set(prefixId(entry.destination), entry);
    free.set(table, (free.get(table) as number) - 1);
  }
  for (const entry of optimise) out.push({ kind: 'replace', entry, phase: 'optimise' });
  for (const table of tables) for (const entry of remaining.get(table) as VpcEntry[]) out.push({ kind: 'delete', entry, phase: 'delete' });
  for (const entry of scaffolds) out.push({ kind: 'delete', entry, phase: 'delete', scaffold: true });
  return out;
}
