// The delta that turns the VPC route entries Trellis owns now into the planned
// ones; the EC2 adapter applies it step by step.
//
// A route table holds at most one route per destination, so an entry is known
// by (table, destination). A planned entry that exists with another target is
// replaced in place (no gap). Apply order (`steps`): every create and replace
// before any delete, so no address that the plan covers is ever without a
// route: a delete only removes a route the plan no longer needs, after every
// route of the plan is in place.
// Invariants: applying `steps` to `current` yields exactly the planned
// entries; diffing again then yields no step; every list is sorted by (table,
// destination), and the result does not depend on input order.

import { comparePrefix, type Prefix } from './cidr.js';
import { compareText } from './vpc-budget.js';
import { prefixId } from './vpc-cover.js';

/** One `destination → instance` route in a VPC route table. */
export interface VpcEntry {
  readonly table: string;
  readonly destination: Prefix;
  /** Instance id of the forwarder. */
  readonly target: string;
}

export type VpcStepKind = 'create' | 'replace' | 'delete';

export interface VpcStep {
  readonly kind: VpcStepKind;
  /** For create and replace the planned entry, for delete the current one. */
  readonly entry: VpcEntry;
}

export interface VpcDelta {
  readonly create: readonly VpcEntry[];
  /** Planned entries whose destination exists with another target. */
  readonly replace: readonly VpcEntry[];
  /** Current entries no longer planned. */
  readonly delete: readonly VpcEntry[];
  /** All of the above in apply order: creates, replaces, deletes. */
  readonly steps: readonly VpcStep[];
}

export function compareEntry(a: VpcEntry, b: VpcEntry): number {
  return compareText(a.table, b.table) || comparePrefix(a.destination, b.destination) || compareText(a.target, b.target);
}

const keyOf = (e: VpcEntry): string => `${e.table}\u0000${prefixId(e.destination)}`;

/**
 * What to create, replace and delete so that `current` becomes `planned`.
 * Should `current` name a destination twice (a table cannot hold that), the
 * destination is replaced unless every copy already has the planned target.
 */
export function diffVpcEntries(planned: { readonly entries: readonly VpcEntry[] }, current: readonly VpcEntry[]): VpcDelta {
  const want = new Map<string, VpcEntry>();
  for (const e of [...planned.entries].sort(compareEntry)) if (!want.has(keyOf(e))) want.set(keyOf(e), e);
  const have = new Map<string, VpcEntry[]>();
  for (const e of current) {
    const list = have.get(keyOf(e));
    if (list === undefined) have.set(keyOf(e), [e]);
    else list.push(e);
  }
  const create: VpcEntry[] = [];
  const replace: VpcEntry[] = [];
  const remove: VpcEntry[] = [];
  for (const [key, e] of want) {
    const now = have.get(key);
    if (now === undefined) create.push(e);
    else if (now.some((n) => n.target !== e.target)) replace.push(e);
  }
  for (const [key, list] of have) if (!want.has(key)) remove.push([...list].sort(compareEntry)[0] as VpcEntry);
  const plain = (e: VpcEntry): VpcEntry => ({ table: e.table, destination: e.destination, target: e.target });
  const [c, r, d] = [create, replace, remove].map((list) => list.sort(compareEntry).map(plain)) as [
    VpcEntry[],
    VpcEntry[],
    VpcEntry[],
  ];
  const steps: VpcStep[] = [
    ...c.map((entry) => ({ kind: 'create' as const, entry })),
    ...r.map((entry) => ({ kind: 'replace' as const, entry })),
    ...d.map((entry) => ({ kind: 'delete' as const, entry })),
  ];
  return { create: c, replace: r, delete: d, steps };
}
