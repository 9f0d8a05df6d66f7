// The pure parts of the VPC advertiser: which described routes are Trellis's
// (table-state.ts), the order of the writes (apply-order.ts), and the planner
// input built from the cluster view (plan-input.ts).
import t from 'tap';
import { formatPrefix, parsePrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { diffVpcEntries, planVpcRoutes, type VpcEntry } from '../../src/core/vpc-plan.js';
import type { BlockInfo, NodeInfo } from '../../src/state/validate.js';
import { parseAddress } from '../../src/core/cidr.js';
import { orderSteps } from '../../src/core/vpc-apply-order.js';
import { planNodes, subnetExtraHopShare } from '../../daemon/vpc/plan-input.js';
import { classifyTable, entryKey, ownedBy, subnetEntries, type DescribedRoute } from '../../src/core/vpc-table-state.js';

const topology = loadTopology(
  `network: 100.96.0.0/16
blockSize: 26
subnetSize: 20
zones:
  - name: a
    subnets:
      - { id: subnet-a, cidr: 198.18.1.0/24, routeTable: rtb-1 }
      - { id: subnet-b, cidr: 198.18.2.0/24, routeTable: rtb-1 }
`,
  'test',
);

const route = (destination: string | undefined, target: { instanceId?: string; other?: string }): DescribedRoute => ({
  destination,
  instanceId: target.instanceId,
  otherTarget: target.other,
  state: 'active',
});
const entry = (destination: string, target: string, table = 'rtb-1'): VpcEntry => ({ table, destination: parsePrefix(destination), target });

t.test('classifyTable: Trellis owns instance routes inside a subnet pod prefix, nothing else', async (t) => {
  const state = classifyTable(topology, {
    name: 'rtb-1',
    id: 'rtb-0abc',
    routes: [
      route('198.18.0.0/16', { other: 'local' }),
      route('0.0.0.0/0', { other: 'igw-1' }),
      route('198.19.0.0/16', { other: 'nat-1' }),
      route(undefined, { other: 'igw-1' }), // IPv6 or prefix list
      route('100.96.0.0/26', { instanceId: 'i-a0' }),
      route('100.96.16.0/24', { instanceId: 'i-b0' }),
      route('100.96.1.0/24', { other: 'pcx-1' }), // in subnet-a's prefix, not an instance
      route('100.96.128.0/24', { instanceId: 'i-x' }), // in the network, in no subnet's prefix
      route('10.0.0.0/8', { instanceId: 'i-y' }), // outside the pod network
    ],
  });
  t.same(
    state.owned.map((e) => [e.subnet, `${e.destination.len}`, e.target]),
    [['subnet-a', '26', 'i-a0'], ['subnet-b', '24', 'i-b0']],
    'two owned entries, each with its subnet',
  );
  t.equal(state.foreign, 7, 'everything else is foreign, the local route included');
  t.equal(state.total, 9);
  t.same(
    state.unmanaged.map((u) => [u.destination, u.target, u.subnet]),
    [['100.96.1.0/24', 'pcx-1', 'subnet-a'], ['100.96.128.0/24', 'i-x', undefined]],
    'routes in the pod network Trellis did not make are reported',
  );
  t.same(subnetEntries([state], 'subnet-b').map((e) => e.target), ['i-b0']);
});

t.test('classifyTable with a history: only instance routes Trellis recorded are its own', async (t) => {
  const history = new Set([entryKey('subnet-a', 'rtb-1', '100.96.0.0/26', 'i-a0')]);
  const state = classifyTable(
    topology,
    {
      name: 'rtb-1',
      id: 'rtb-0abc',
      routes: [
        route('100.96.0.0/26', { instanceId: 'i-a0' }), // recorded: Trellis's
        route('100.96.0.64/26', { instanceId: 'i-a0' }), // same target, not recorded
        route('100.96.16.0/24', { instanceId: 'i-b0' }), // not recorded
      ],
    },
    ownedBy(history),
  );
  t.same(state.owned.map((e) => formatPrefix(e.destination)), ['100.96.0.0/26']);
  t.equal(state.foreign, 2, 'routes Trellis did not record count against the budget');
  t.same(
    state.unmanaged.map((u) => [u.destination, u.instanceId, u.subnet]),
    [['100.96.0.64/26', 'i-a0', 'subnet-a'], ['100.96.16.0/24', 'i-b0', 'subnet-b']],
    'and are reported, with the instance they target',
  );
  const other = classifyTable(topology, { name: 'rtb-2', id: 'rtb-0def', routes: [route('100.96.0.0/26', { instanceId: 'i-a0' })] }, ownedBy(history));
  t.equal(other.owned.length, 0, 'the history names the table too');
});

t.test('orderSteps: replaces, then creates, then deletes; a full table deletes first, losslessly when it can', async (t) => {
  const delta = diffVpcEntries(
    { entries: [entry('100.96.0.0/24', 'i-2'), entry('100.96.4.0/22', 'i-3'), entry('100.96.8.0/26', 'i-1')] },
    [entry('100.96.0.0/24', 'i-1'), entry('100.96.4.0/24', 'i-3'), entry('100.96.12.0/24', 'i-3'), entry('100.96.8.0/26', 'i-1')],
  );
  const free = orderSteps(delta, new Map([['rtb-1', { limit: 50, total: 7 }]]), []);
  t.same(free.map((s) => s.kind), ['replace', 'create', 'delete', 'delete'], 'room: nothing is deleted early');
  t.notOk(free.some((s) => s.forced), 'nothing forced');

  const present = [entry('100.96.0.0/24', 'i-1'), entry('100.96.4.0/24', 'i-3'), entry('100.96.12.0/24', 'i-3'), entry('100.96.8.0/26', 'i-1'), entry('100.96.0.0/20', 'i-9')];
  const full = orderSteps(delta, new Map([['rtb-1', { limit: 7, total: 7 }]]), present);
  t.same(full.map((s) => s.kind), ['replace', 'delete', 'create', 'delete'], 'full table: a delete makes room for the create');
  t.notOk(full[1]?.forced, 'the delete is lossless: a shorter entry still covers it');

  const bare = orderSteps(delta, new Map([['rtb-1', { limit: 4, total: 4 }]]), present.slice(0, 4));
  t.equal(bare[1]?.kind, 'delete');
  t.equal(bare[1]?.forced, true, 'no covering entry left: the early delete is marked forced');
  t.equal(bare.length, delta.steps.length, 'every step once');
});

t.test('planNodes: the whole cluster, own subnet judged by health, dead owners keep their blocks', async (t) => {
  const a = topology.zones[0]!.subnets[0]!;
  const b = topology.zones[0]!.subnets[1]!;
  const node = (name: string, subnet: typeof a, instanceId: string, healthEndpoint = ''): NodeInfo => ({
    name,
    subnet,
    hostIP: parseAddress(subnet === a ? '198.18.1.10' : '198.18.2.10'),
    instanceId,
    healthEndpoint,
  });
  const block = (prefix: string, n: string, subnet: typeof a): BlockInfo => ({ prefix: parsePrefix(prefix), node: n, subnet });
  const nodes = new Map([
    ['a0', node('a0', a, 'i-a0')],
    ['a1', node('a1', a, 'i-a1')],
    ['a2', node('a2', a, '')],
    ['b0', node('b0', b, 'i-b0')],
  ]);
  const blocksByNode = new Map([
    ['a0', [block('100.96.0.0/26', 'a0', a)]],
    ['a1', [block('100.96.1.0/26', 'a1', a)]],
    ['dead', [block('100.96.2.0/26', 'dead', a)]],
    ['b0', [block('100.96.16.0/26', 'b0', b)]],
  ]);
  const list = planNodes({ topology, nodes, blocksByNode }, 'subnet-a', (n) => n !== 'a1');
  t.same(
    list.map((n) => [n.name, n.subnet, n.instanceId, n.healthy, n.blocks.length]),
    [
      ['a0', 'subnet-a', 'i-a0', true, 1],
      ['a1', 'subnet-a', 'i-a1', false, 1],
      ['a2', 'subnet-a', '', false, 0],
      ['b0', 'subnet-b', 'i-b0', true, 1],
      ['dead', 'subnet-a', '', false, 1],
    ],
    'a1 failed its probes, a2 has no instance id, dead has no node record, b0 (other subnet) counts healthy',
  );
  const plan = planVpcRoutes({ topology, nodes: list, tables: [{ id: 'rtb-1', limit: 3, foreign: 0 }] });
  const mine = plan.entries.filter((e) => e.subnet === 'subnet-a');
  t.ok(mine.every((e) => e.node === 'a0'), 'every entry of subnet-a goes to its only healthy forwarder');
  t.equal(subnetExtraHopShare(mine, list, 'subnet-a'), 2 / 3, "two of subnet-a's three blocks take an extra hop");
});
