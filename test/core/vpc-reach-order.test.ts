// Reachability-first order: after a forwarder failure every entry it carried
// is repointed before any optimisation; after many joins a scaffold covers the
// new nodes before their specifics; full tables still make room; every step
// of the delta is kept exactly once.
import t from 'tap';
import { contains, formatPrefix, parsePrefix, supernet, type Prefix } from '../../src/core/cidr.js';
import { diffVpcEntries, type VpcEntry } from '../../src/core/vpc-diff.js';
import { orderForReach, type ReachStep } from '../../src/core/vpc-reach-order.js';
import { orderSteps } from '../../src/core/vpc-apply-order.js';

const e = (table: string, destination: string, target: string): VpcEntry => ({ table, destination: parsePrefix(destination), target });
const pod = parsePrefix('100.64.0.0/16');
const podPrefixOf = (p: Prefix): Prefix | undefined => (contains(pod, p) ? pod : undefined);
const key = (s: { kind: string; entry: VpcEntry }): string => `${s.kind} ${s.entry.table} ${formatPrefix(s.entry.destination)} ${s.entry.target}`;

/** Applies steps to `present` and says after which step every block is reachable in every table (longest match to a live target). */
function reachableAfter(present: readonly VpcEntry[], steps: readonly ReachStep[], blocks: readonly Prefix[], tables: readonly string[], live: ReadonlySet<string>): number {
  const state = new Map(present.map((x) => [`${x.table} ${formatPrefix(x.destination)}`, x]));
  const ok = (): boolean =>
    tables.every((table) =>
      blocks.every((b) => {
        for (let len = b.len; len >= 0; len--) {
          const hit = state.get(`${table} ${formatPrefix(len === b.len ? b : supernet(b, len))}`);
          if (hit !== undefined) return live.has(hit.target);
        }
        return false;
      }),
    );
  if (ok()) return 0;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i] as ReachStep;
    const k = `${s.entry.table} ${formatPrefix(s.entry.destination)}`;
    if (s.kind === 'delete') state.delete(k);
    else state.set(k, s.entry);
    if (ok()) return i + 1;
  }
  return Infinity;
}

const blocksOf = (n: number): Prefix[] => Array.from({ length: n }, (_, i) => parsePrefix(`100.64.${Math.floor(i / 4)}.${(i % 4) * 64}/26`));

t.test('a failed forwarder: every entry it carried repointed before any optimisation, in every table', async (t) => {
  const blocks = blocksOf(40);
  const tables = ['rtb-1', 'rtb-2'];
  // i-x carries every fourth block's entry; the others wait for rebalancing (on i-y, owners are i-<n>).
  const present = tables.flatMap((tb) => blocks.map((b, i) => e(tb, formatPrefix(b), i % 4 === 0 ? 'i-x' : 'i-y')));
  const planned = tables.flatMap((tb) => blocks.map((b, i) => e(tb, formatPrefix(b), `i-${i}`)));
  const live = new Set(['i-y', ...blocks.map((_, i) => `i-${i}`)]);
  const delta = diffVpcEntries({ entries: planned }, present);
  const room = new Map(tables.map((tb) => [tb, { limit: 500, total: 41 }]));
  const steps = orderForReach({ delta, room, present, live, podPrefixOf });
  t.same(steps.map(key).sort(), delta.steps.map(key).sort(), 'exactly the delta, each step once');
  const carried = present.filter((x) => x.target === 'i-x').length;
  t.equal(carried, 20);
  t.ok(steps.slice(0, carried).every((s) => s.phase === 'repoint' && present.some((p) => p.table === s.entry.table && formatPrefix(p.destination) === formatPrefix(s.entry.destination) && p.target === 'i-x')), 'the first 20 writes are the repoints');
  t.ok(steps.slice(carried).every((s) => s.phase === 'optimise'), 'then the rebalancing');
  t.equal(reachableAfter(present, steps, blocks, tables, live), carried, 'everything reachable after 20 writes');
  const naive = orderSteps(delta, room, present).map((s) => ({ ...s, phase: 'cover' as const }));
  t.ok(reachableAfter(present, naive, blocks, tables, live) > 60, 'the per-table order needs most of the 80 writes');
});

t.test('many joins: a scaffold covers the new nodes first, specifics follow, the scaffold goes last', async (t) => {
  const blocks = blocksOf(30);
  const present = [e('rtb-1', formatPrefix(blocks[0] as Prefix), 'i-0'), e('rtb-1', formatPrefix(blocks[1] as Prefix), 'i-1')];
  const planned = blocks.map((b, i) => e('rtb-1', formatPrefix(b), `i-${i}`));
  const live = new Set(blocks.map((_, i) => `i-${i}`));
  const delta = diffVpcEntries({ entries: planned }, present);
  const room = new Map([['rtb-1', { limit: 500, total: 5 }]]);
  const steps = orderForReach({ delta, room, present, live, podPrefixOf });
  const first = steps[0] as ReachStep;
  t.match(first, { kind: 'create', phase: 'scaffold', scaffold: true });
  t.equal(formatPrefix(first.entry.destination), '100.64.0.0/21', 'the smallest prefix covering the 28 new blocks');
  t.equal(first.entry.target, 'i-0', 'to a forwarder that already carries the subnet');
  t.match(steps.at(-1), { kind: 'delete', scaffold: true, entry: first.entry }, 'deleted after everything else');
  t.same(steps.filter((s) => s.scaffold !== true).map(key).sort(), delta.steps.map(key).sort(), 'the delta, each step once, plus the scaffold pair');
  t.equal(reachableAfter(present, steps, blocks, ['rtb-1'], live), 1, 'every block reachable after the first write');
  const naive = orderSteps(delta, room, present).map((s) => ({ ...s, phase: 'cover' as const }));
  t.equal(reachableAfter(present, naive, blocks, ['rtb-1'], live), 28, 'the naive order: only after the last create');

  const tight = orderForReach({ delta, room: new Map([['rtb-1', { limit: 33, total: 5 }]]), present, live, podPrefixOf });
  t.notOk(tight.some((s) => s.scaffold === true), 'no scaffold when the table has no room for it beside every create');
  const few = orderForReach({ delta, room, present, live, podPrefixOf, scaffoldMin: 29 });
  t.notOk(few.some((s) => s.scaffold === true), 'nor for fewer uncovered creates than scaffoldMin');
  t.ok(few.every((s, i) => i === 0 || s.entry.destination.len >= (few[i - 1] as ReachStep).entry.destination.len || s.kind !== 'create'), 'creates shortest prefix first');
});

t.test('aggregates before specifics; a dead entry is deleted early; a full table makes room first', async (t) => {
  const present = [e('rtb-1', '100.64.0.0/24', 'i-dead'), e('rtb-1', '100.64.1.0/24', 'i-a')];
  const planned = [e('rtb-1', '100.64.0.0/25', 'i-a'), e('rtb-1', '100.64.0.128/25', 'i-b'), e('rtb-1', '100.64.0.0/23', 'i-c')];
  const live = new Set(['i-a', 'i-b', 'i-c']);
  const delta = diffVpcEntries({ entries: planned }, present);
  const steps = orderForReach({ delta, room: new Map([['rtb-1', { limit: 3, total: 3 }]]), present, live });
  t.same(
    steps.map((s) => [s.phase, s.kind, formatPrefix(s.entry.destination), s.forced === true]),
    [
      ['unblock', 'delete', '100.64.0.0/24', false],
      ['cover', 'create', '100.64.0.0/23', false],
      ['cover', 'delete', '100.64.1.0/24', false],
      ['cover', 'create', '100.64.0.0/25', false],
      ['cover', 'create', '100.64.0.128/25', false],
    ],
    'the blackhole first, the aggregate next; the table full again: a delete whose addresses the /23 keeps',
  );
});
