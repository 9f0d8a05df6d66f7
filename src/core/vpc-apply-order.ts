// The order in which one advertiser applies its delta to the route tables.
//
// Per table: replaces first (they move entries off failed forwarders and never
// change the route count), then creates, then deletes, so that no covered
// address loses its route. A table that is full (its limit reached) takes a
// create only after a delete: the delete chosen first is one whose addresses
// stay covered by a shorter entry that remains (lossless); only when there is
// none is a delete forced ahead of its turn, and it is marked `forced` so the
// caller can say so. Creates that no delete can make room for stay in the
// order: the table refuses them and the pass reports the error.
// Invariants: the output holds exactly the delta's steps, each once; tables
// appear in name order; the result depends only on the inputs.

import { contains, equal } from './cidr.js';
import { compareText } from './vpc-budget.js';
import type { VpcDelta, VpcEntry, VpcStep } from './vpc-diff.js';

export interface TableRoom {
  /** Most routes the table may hold. */
  readonly limit: number;
  /** Routes in it now, foreign ones included. */
  readonly total: number;
}

export interface OrderedStep extends VpcStep {
  /** A delete that the table's limit forced before a create. */
  readonly forced?: boolean;
}

/**
 * Orders `delta` for application. `room` gives each table's limit and current
 * route count (a table not listed is never full); `present` lists the entries
 * that route pod addresses in each table now (of every subnet).
 */
export function orderSteps(delta: VpcDelta, room: ReadonlyMap<string, TableRoom>, present: readonly VpcEntry[]): OrderedStep[] {
  const tables = [...new Set(delta.steps.map((s) => s.entry.table))].sort(compareText);
  const out: OrderedStep[] = [];
  for (const table of tables) {
    const mine = (kind: VpcStep['kind']): VpcEntry[] => delta.steps.filter((s) => s.kind === kind && s.entry.table === table).map((s) => s.entry);
    const deletes = mine('delete');
    const live = present.filter((e) => e.table === table);
    const r = room.get(table);
    let free = r === undefined ? Infinity : r.limit - r.total;
    for (const entry of mine('replace')) out.push({ kind: 'replace', entry });
    const coveredByOther = (d: VpcEntry): boolean =>
      live.some((e) => !equal(e.destination, d.destination) && contains(e.destination, d.destination));
    for (const entry of mine('create')) {
      if (free <= 0 && deletes.length > 0) {
        const lossless = deletes.findIndex(coveredByOther);
        const i = lossless >= 0 ? lossless : 0;
        const [victim] = deletes.splice(i, 1) as [VpcEntry];
        out.push(lossless >= 0 ? { kind: 'delete', entry: victim } : { kind: 'delete', entry: victim, forced: true });
        const gone = live.findIndex((e) => equal(e.destination, victim.destination));
        if (gone >= 0) live.splice(gone, 1);
        free++;
      }
      out.push({ kind: 'create', entry });
      live.push(entry);
      free--;
    }
    for (const entry of deletes) out.push({ kind: 'delete', entry });
  }
  return out;
}
