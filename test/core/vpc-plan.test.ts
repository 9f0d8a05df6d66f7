// Table-driven tests of the VPC route planner, its budget split and its diff.
import t, { type Test } from 'tap';
import { contains, formatPrefix, parsePrefix, type Prefix } from '../../src/core/cidr.js';
import type { Topology } from '../../src/core/topology.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';
import { splitBudget } from '../../src/core/vpc-budget.js';
import {
  diffVpcEntries,
  extraHopShare,
  planVpcRoutes,
  type Plan,
  type PlanInput,
  type PlanNode,
  type PlannedEntry,
  type VpcEntry,
} from '../../src/core/vpc-plan.js';

const P = parsePrefix;

interface SubnetSpec {
  id: string;
  pod: string;
  table?: string;
}

function topology(specs: SubnetSpec[]): Topology {
  return {
    network: P('100.64.0.0/10'),
    blockSize: 26,
    nodeHomeSize: 24,
    subnetSize: 20,
    zones: [
      {
        name: 'zone-a',
        subnets: specs.map((s, i) => ({
          id: s.id,
          zone: 'zone-a',
          cidr: P(`198.18.${i}.0/24`),
          podPrefix: P(s.pod),
          podPrefixExplicit: true,
          routeTable: s.table,
        })),
      },
    ],
  };
}

function node(name: string, subnet: string, blocks: string[], healthy = true): PlanNode {
  return { name, subnet, instanceId: `i-${name}`, blocks: blocks.map(P), healthy };
}

/** Four /26 blocks: the /24 whose third octet is `octet`. */
function home(octet: number): string[] {
  return [0, 64, 128, 192].map((o) => `100.64.${octet}.${o}/26`);
}

/** Subnets a, b, c (pod prefixes 100.64.0.0/20, .16.0/20, .32.0/20), four nodes each in its own /24. */
const abc: SubnetSpec[] = [
  { id: 'a', pod: '100.64.0.0/20' },
  { id: 'b', pod: '100.64.16.0/20' },
  { id: 'c', pod: '100.64.32.0/20' },
];
function cluster(perSubnet = 4): PlanNode[] {
  return abc.flatMap((s, i) => Array.from({ length: perSubnet }, (_, n) => node(`${s.id}-${n}`, s.id, home(16 * i + n))));
}

const show = (entries: readonly VpcEntry[]): string[] =>
  entries.map((e) => `${e.table} ${formatPrefix(e.destination)} ${e.target}`);

/** The longest-prefix match of a whole block in one table (no entry may split the block). */
function routeOf(plan: Plan, table: string, block: Prefix): PlannedEntry | undefined {
  const entries = plan.entries.filter((e) => e.table === table);
  const inside = entries.filter((e) => e.destination.len > block.len && contains(block, e.destination));
  if (inside.length > 0) throw new Error(`an entry splits ${formatPrefix(block)}`);
  return entries.filter((e) => contains(e.destination, block)).sort((a, b) => b.destination.len - a.destination.len)[0];
}

/** Every claimed block of every node routes, in every table, to a healthy host of its subnet. */
function checkCovered(t: Test, input: PlanInput, plan: Plan): void {
  const healthy = new Map(input.nodes.filter((n) => n.healthy).map((n) => [n.instanceId, n.subnet]));
  for (const { table } of plan.perTable) {
    for (const n of input.nodes) {
      for (const b of n.blocks) {
        const e = routeOf(plan, table, b);
        t.ok(e !== undefined && e.subnet === n.subnet && healthy.get(e.target) === n.subnet, `${table}: ${formatPrefix(b)} of ${n.name}`);
      }
    }
  }
}

t.test('small cluster: one entry per node in every table, each to its owner', async (t) => {
  const topo = topology([{ ...abc[0]!, table: 'rtb-a' }, { ...abc[1]!, table: 'rtb-bc' }, { ...abc[2]!, table: 'rtb-bc' }]);
  const input: PlanInput = { topology: topo, nodes: cluster(), tables: [{ id: 'rtb-a', limit: 50, foreign: 3 }] };
  const plan = planVpcRoutes(input);
  t.same(
    plan.perTable.map((p) => [p.table, p.budget, p.used, p.shares]),
    [
      ['rtb-a', 47, 12, { a: 4, b: 4, c: 4 }],
      ['rtb-bc', 500, 12, { a: 4, b: 4, c: 4 }],
    ],
    'tables in topology order; a table not listed gets the default limit of 500 (DEFAULT_ROUTE_LIMIT)',
  );
  for (const e of plan.entries) {
    t.equal(e.target, `i-${e.node}`);
    t.equal(formatPrefix(e.destination), `100.64.${16 * 'abc'.indexOf(e.subnet) + Number(e.node.slice(2))}.0/24`, 'the node aggregate');
  }
  t.same(show(plan.entries).slice(0, 2), ['rtb-a 100.64.0.0/24 i-a-0', 'rtb-a 100.64.1.0/24 i-a-1'], 'sorted by table, destination');
  t.equal(plan.extraHopAddresses, 0n);
  t.equal(plan.extraHopShare, 0);
  t.equal(plan.claimedAddresses, 12n * 256n);
  t.same(plan.uncovered, []);
  t.equal(plan.budgetExceeded, false);
  checkCovered(t, input, plan);
});

t.test('limit 8 with 2 foreign entries: two entries per subnet, spread over distinct forwarders', async (t) => {
  const input: PlanInput = { topology: topology(abc), nodes: cluster(), tables: [{ id: 'main', limit: 8, foreign: 2 }] };
  const plan = planVpcRoutes(input);
  t.same(show(plan.entries), [
    'main 100.64.0.0/23 i-a-0',
    'main 100.64.2.0/23 i-a-2',
    'main 100.64.16.0/23 i-b-0',
    'main 100.64.18.0/23 i-b-2',
    'main 100.64.32.0/23 i-c-0',
    'main 100.64.34.0/23 i-c-2',
  ]);
  t.same(plan.perTable[0]?.shares, { a: 2, b: 2, c: 2 });
  t.equal(plan.perTable[0]?.used, 6);
  t.equal(plan.extraHopShare, 0.5, 'each entry saves the hop for one of its two nodes');
  checkCovered(t, input, plan);
});

t.test('an unhealthy owner is covered through a healthy host of its subnet', async (t) => {
  const nodes = [node('a-0', 'a', home(0)), node('a-1', 'a', home(1), false), node('a-2', 'a', home(2)), node('a-3', 'a', home(3))];
  const input: PlanInput = { topology: topology([abc[0]!]), nodes, tables: [] };
  const plan = planVpcRoutes(input);
  t.same(show(plan.entries), [
    'main 100.64.0.0/24 i-a-0',
    'main 100.64.1.0/24 i-a-0',
    'main 100.64.2.0/24 i-a-2',
    'main 100.64.3.0/24 i-a-3',
  ], 'least loaded healthy host, then first by name');
  t.equal(plan.extraHopAddresses, 256n);
  t.equal(plan.extraHopShare, 0.25);
  checkCovered(t, input, plan);
  const current = [{ table: 'main', destination: P('100.64.1.0/24'), target: 'i-a-3' }];
  const again = planVpcRoutes({ ...input, current });
  t.equal(show(again.entries)[1], 'main 100.64.1.0/24 i-a-3', 'among equally loaded forwarders the current one stays');

  // Aggregated: the entry over a-0 and a-1 goes to a-1, the healthy owner with the most below it.
  const a0down = nodes.map((n) => ({ ...n, healthy: n.name !== 'a-0' }));
  const tight = planVpcRoutes({ ...input, nodes: a0down, tables: [{ id: 'main', limit: 2, foreign: 0 }] });
  t.same(show(tight.entries), ['main 100.64.0.0/23 i-a-1', 'main 100.64.2.0/23 i-a-2']);
});

t.test('entries of owners that are all down are spread over the healthy hosts', async (t) => {
  const nodes = [
    ...[0, 1, 2, 3].map((i) => node(`down-${i}`, 'a', home(i), false)),
    node('up-0', 'a', []),
    node('up-1', 'a', []),
  ];
  const plan = planVpcRoutes({ topology: topology([abc[0]!]), nodes, tables: [] });
  t.same(show(plan.entries), [
    'main 100.64.0.0/24 i-up-0',
    'main 100.64.1.0/24 i-up-1',
    'main 100.64.2.0/24 i-up-0',
    'main 100.64.3.0/24 i-up-1',
  ]);
  t.equal(plan.extraHopShare, 1);
});

t.test('budget below the number of subnets: the first subnets by id, the rest listed', async (t) => {
  const input: PlanInput = { topology: topology(abc), nodes: cluster(), tables: [{ id: 'main', limit: 3, foreign: 1 }] };
  const plan = planVpcRoutes(input);
  t.same(show(plan.entries), ['main 100.64.0.0/22 i-a-0', 'main 100.64.16.0/22 i-b-0']);
  t.equal(plan.budgetExceeded, true);
  t.match(plan.uncovered, [{ subnet: 'c', table: 'main', reason: 'over-budget', message: /room for 2 of the 3 subnets/ }]);
  t.equal(plan.uncovered.length, 1);
  const down = planVpcRoutes({ ...input, nodes: input.nodes.map((n) => ({ ...n, healthy: n.subnet !== 'c' })) });
  t.same(down.uncovered.map((u) => [u.subnet, u.table, u.reason]), [
    ['c', undefined, 'no-healthy-host'],
    ['c', 'main', 'over-budget'],
  ], 'both reasons, the one for every table first');
  const none = planVpcRoutes({ ...input, tables: [{ id: 'main', limit: 4, foreign: 9 }] });
  t.same(none.entries, []);
  t.equal(none.perTable[0]?.budget, 0, 'foreign entries beyond the limit leave a budget of 0');
  t.same(none.uncovered.map((u) => u.subnet), ['a', 'b', 'c']);
});

t.test('a subnet with claims but no healthy host is uncovered; one without claims needs nothing', async (t) => {
  const topo = topology([...abc, { id: 'd', pod: '100.64.48.0/20' }]);
  const nodes = cluster().map((n) => (n.subnet === 'b' ? { ...n, healthy: false } : n));
  const plan = planVpcRoutes({ topology: topo, nodes: [...nodes, node('d-0', 'd', [])], tables: [] });
  t.same(plan.uncovered.map((u) => [u.subnet, u.table, u.reason]), [['b', undefined, 'no-healthy-host']]);
  t.equal(plan.budgetExceeded, false);
  t.notOk(plan.entries.some((e) => e.subnet === 'b' || e.subnet === 'd'));
  t.same(plan.perTable[0]?.shares, { a: 4, b: 4, c: 4, d: 0 }, 'the split ignores health: every advertiser computes the same');
  t.equal(plan.claimedAddresses, 12n * 256n);
  t.equal(plan.extraHopAddresses, 0n);
});

t.test('nodes whose blocks are not contiguous', async (t) => {
  const topo = topology([{ id: 'a', pod: '100.64.0.0/24' }]);
  const x = node('x', 'a', ['100.64.0.128/26', '100.64.0.0/26']);
  const alone = planVpcRoutes({ topology: topo, nodes: [x], tables: [] });
  t.same(show(alone.entries), ['main 100.64.0.0/24 i-x'], 'one covering entry over its own blocks and free space');
  const y = node('y', 'a', ['100.64.0.64/26']);
  const both = planVpcRoutes({ topology: topo, nodes: [x, y], tables: [] });
  t.same(show(both.entries), ['main 100.64.0.0/26 i-x', 'main 100.64.0.64/26 i-y', 'main 100.64.0.128/26 i-x']);
  t.equal(both.perTable[0]?.shares.a, 3, 'x needs two entries, y one');
  t.equal(both.extraHopAddresses, 0n);
  const two = planVpcRoutes({ topology: topo, nodes: [x, y], tables: [{ id: 'main', limit: 2, foreign: 0 }] });
  t.same(show(two.entries), ['main 100.64.0.0/24 i-x'], 'as little extra hop as {/25 → y, /26 → x}, with fewer entries');
  t.equal(two.extraHopAddresses, 64n, 'the least possible with two disjoint entries');
});

t.test('stability: a current destination that is still valid is kept', async (t) => {
  const topo = topology([{ id: 'a', pod: '100.64.0.0/20' }]);
  const input: PlanInput = { topology: topo, nodes: [node('x', 'a', ['100.64.0.0/26'])], tables: [] };
  t.same(show(planVpcRoutes(input).entries), ['main 100.64.0.0/26 i-x']);
  const current = [
    { table: 'main', destination: P('100.64.0.0/24'), target: 'i-gone' },
    { table: 'main', destination: P('100.64.0.0/23'), target: 'i-x' },
    { table: 'other', destination: P('100.64.0.0/26'), target: 'i-x' },
  ];
  const plan = planVpcRoutes({ ...input, current });
  t.same(show(plan.entries), ['main 100.64.0.0/24 i-x'], 'the tightest current destination over the same claims, retargeted');
  const steps = diffVpcEntries(plan, current).steps;
  t.same(steps.map((s) => [s.kind, s.entry.table, formatPrefix(s.entry.destination), s.entry.target]), [
    ['replace', 'main', '100.64.0.0/24', 'i-x'],
    ['delete', 'main', '100.64.0.0/23', 'i-x'],
    ['delete', 'other', '100.64.0.0/26', 'i-x'],
  ]);
  const outside = planVpcRoutes({ ...input, current: [{ table: 'main', destination: P('100.64.0.0/19'), target: 'i-x' }] });
  t.same(show(outside.entries), ['main 100.64.0.0/26 i-x'], 'never beyond the pod prefix');
});

t.test('stability: among equally good covers, the one keeping current entries wins', async (t) => {
  // x owns 100.64.0.0/25; u1 and u2 (down) own 100.64.2.0/24 and 100.64.3.0/24; h forwards.
  const topo = topology([{ id: 'a', pod: '100.64.0.0/20' }]);
  const nodes = [
    node('x', 'a', ['100.64.0.0/26', '100.64.0.64/26']),
    node('u1', 'a', ['100.64.2.0/24'], false),
    node('u2', 'a', ['100.64.3.0/24'], false),
    node('h', 'a', []),
  ];
  const input: PlanInput = { topology: topo, nodes, tables: [{ id: 'main', limit: 3, foreign: 0 }] };
  t.same(show(planVpcRoutes(input).entries), ['main 100.64.0.0/25 i-x', 'main 100.64.2.0/24 i-h', 'main 100.64.3.0/24 i-h']);
  const current = [
    { table: 'main', destination: P('100.64.0.0/26'), target: 'i-x' },
    { table: 'main', destination: P('100.64.0.64/26'), target: 'i-x' },
    { table: 'main', destination: P('100.64.2.0/23'), target: 'i-h' },
  ];
  const plan = planVpcRoutes({ ...input, current });
  t.same(show(plan.entries), show(current), 'same extra hop (512 addresses), no change');
  t.equal(plan.extraHopAddresses, 512n);
  t.same(diffVpcEntries(plan, current).steps, []);
});

t.test('stability: adding a node', async (t) => {
  const input: PlanInput = { topology: topology(abc), nodes: cluster(), tables: [{ id: 'main', limit: 50, foreign: 0 }] };
  const before = planVpcRoutes(input);
  const grown = { ...input, nodes: [...input.nodes, node('a-4', 'a', home(4))], current: before.entries };
  const delta = diffVpcEntries(planVpcRoutes(grown), before.entries);
  t.same(show(delta.create), ['main 100.64.4.0/24 i-a-4'], 'one entry per node: the new node gets one');
  t.same([delta.replace, delta.delete], [[], []]);
  t.same(diffVpcEntries(planVpcRoutes({ ...input, current: before.entries }), before.entries).steps, [], 'no churn on restart');

  // Aggregated (two entries for subnet a): the least extra hop now needs a different split of a.
  const tight: PlanInput = { ...input, tables: [{ id: 'main', limit: 6, foreign: 0 }] };
  const small = planVpcRoutes(tight);
  const after = planVpcRoutes({ ...tight, nodes: grown.nodes, current: small.entries });
  const steps = diffVpcEntries(after, small.entries).steps;
  t.same(steps.map((s) => `${s.kind} ${formatPrefix(s.entry.destination)} ${s.entry.target}`), [
    'create 100.64.0.0/22 i-a-0',
    'create 100.64.4.0/24 i-a-4',
    'delete 100.64.0.0/23 i-a-0',
    'delete 100.64.2.0/23 i-a-2',
  ]);
  t.same(after.perTable[0]?.shares, small.perTable[0]?.shares, 'same shares: subnets b and c keep every entry');
});

t.test('diffVpcEntries: creates and replaces before deletes, sorted, idempotent', async (t) => {
  const e = (table: string, dst: string, target: string): VpcEntry => ({ table, destination: P(dst), target });
  const planned = {
    entries: [e('rtb-2', '100.64.0.0/24', 'i-1'), e('rtb-1', '100.64.1.0/24', 'i-2'), e('rtb-1', '100.64.0.0/24', 'i-1')],
  };
  const current = [
    e('rtb-1', '100.64.0.0/23', 'i-1'),
    e('rtb-1', '100.64.1.0/24', 'i-3'),
    e('rtb-2', '100.64.0.0/24', 'i-1'),
    e('rtb-2', '100.64.2.0/24', 'i-7'),
    e('rtb-2', '100.64.2.0/24', 'i-8'),
  ];
  const delta = diffVpcEntries(planned, current);
  t.same(show(delta.create), ['rtb-1 100.64.0.0/24 i-1']);
  t.same(show(delta.replace), ['rtb-1 100.64.1.0/24 i-2']);
  t.same(show(delta.delete), ['rtb-1 100.64.0.0/23 i-1', 'rtb-2 100.64.2.0/24 i-7'], 'a destination found twice is deleted once');
  const twice = diffVpcEntries(planned, [...current, e('rtb-2', '100.64.0.0/24', 'i-9')]);
  t.same(show(twice.replace), ['rtb-1 100.64.1.0/24 i-2', 'rtb-2 100.64.0.0/24 i-1'], 'replaced unless every copy has the planned target');
  t.same(delta.steps.map((s) => s.kind), ['create', 'replace', 'delete', 'delete']);
  t.same(diffVpcEntries(planned, [...current].reverse()), delta, 'input order does not matter');
  t.same(diffVpcEntries(planned, planned.entries).steps, []);
  const plan = planVpcRoutes({ topology: topology(abc), nodes: cluster(), tables: [] });
  t.same(Object.keys(diffVpcEntries(plan, []).create[0] ?? {}), ['table', 'destination', 'target'], 'steps carry plain entries');
});

t.test('splitBudget: one each, then by node count (largest remainder), capped by demand', async (t) => {
  const d = (subnet: string, nodes: number, demand: number) => ({ subnet, nodes, demand });
  const cases: Array<[string, number, ReturnType<typeof d>[], Record<string, number>, string[]]> = [
    ['one each, the rest by node count', 10, [d('a', 6, 9), d('b', 2, 9), d('c', 2, 9)], { a: 5, b: 3, c: 2 }, []],
    ['remainder ties by id', 7, [d('b', 1, 9), d('a', 1, 9), d('c', 1, 9)], { a: 3, b: 2, c: 2 }, []],
    ['largest remainder', 9, [d('a', 5, 9), d('b', 3, 9), d('c', 1, 9)], { a: 4, b: 3, c: 2 }, []],
    ['cap redistributes', 20, [d('a', 10, 2), d('b', 1, 30), d('c', 1, 5)], { a: 2, b: 13, c: 5 }, []],
    ['all capped leaves budget unused', 50, [d('a', 4, 4), d('b', 4, 4)], { a: 4, b: 4 }, []],
    ['no demand, no share', 5, [d('a', 3, 0), d('b', 1, 2)], { b: 2 }, []],
    ['starved last by id', 2, [d('c', 9, 9), d('a', 1, 9), d('b', 1, 9)], { a: 1, b: 1, c: 0 }, ['c']],
    ['zero budget', 0, [d('a', 1, 1)], { a: 0 }, ['a']],
  ];
  for (const [name, budget, demands, shares, starved] of cases) {
    const split = splitBudget(budget, demands);
    t.same(Object.fromEntries(split.shares), shares, name);
    t.same(split.starved, starved, `${name}: starved`);
  }
});

t.test('extraHopShare', async (t) => {
  t.equal(extraHopShare(0n, 0n), 0);
  t.equal(extraHopShare(1n, 4n), 0.25);
  t.equal(extraHopShare(1n << 100n, 1n << 102n), 0.25, 'exact beyond 2^53');
  t.equal(extraHopShare(1n, 3n), 1 / 3);
});

t.test('invalid input is refused with a stable code', async (t) => {
  const topo = topology([abc[0]!, abc[1]!]);
  const cases: Array<[string, Partial<PlanInput>, string, RegExp]> = [
    ['unknown subnet', { nodes: [node('x', 'nope', [])] }, ErrorCode.BadRecord, /unknown subnet "nope"/],
    ['block outside its pod prefix', { nodes: [node('x', 'a', ['100.64.16.0/26'])] }, ErrorCode.BadRecord, /outside the pod prefix of subnet a/],
    [
      'block owned twice',
      { nodes: [node('x', 'a', ['100.64.0.0/24']), node('y', 'a', ['100.64.0.64/26'])] },
      ErrorCode.BadRecord,
      /x and y both own 100\.64\.0\.64\/26/,
    ],
    ['node listed twice', { nodes: [node('x', 'a', []), node('x', 'b', [])] }, ErrorCode.BadRecord, /listed twice/],
    ['negative limit', { tables: [{ id: 'main', limit: -1, foreign: 0 }] }, ErrorCode.Config, /limit must be a whole number/],
    ['fractional foreign', { tables: [{ id: 'main', limit: 50, foreign: 0.5 }] }, ErrorCode.Config, /foreign must be a whole number/],
    [
      'table listed twice',
      { tables: [{ id: 'main', limit: 50, foreign: 0 }, { id: 'main', limit: 9, foreign: 0 }] },
      ErrorCode.Config,
      /listed twice/,
    ],
  ];
  for (const [name, patch, code, message] of cases) {
    const input: PlanInput = { topology: topo, nodes: [], tables: [], ...patch };
    t.throws(() => planVpcRoutes(input), { code, message }, name);
    t.throws(() => planVpcRoutes(input), TrellisError, `${name}: a TrellisError`);
  }
  const x = node('x', 'a', ['100.64.0.0/24', '100.64.0.64/26', '100.64.0.0/24']);
  const nested = planVpcRoutes({ topology: topo, nodes: [x], tables: [] });
  t.same(show(nested.entries), ['main 100.64.0.0/24 i-x'], "a node's own overlapping blocks are merged, not refused");
  t.equal(nested.claimedAddresses, 256n);
});
