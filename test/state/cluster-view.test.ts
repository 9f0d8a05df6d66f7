// Validation of records read from etcd: malformed or hostile records are
// ignored, counted once, and never reach the view that routes are made from.
import t from 'tap';
import { formatPrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { ClusterView, type IgnoredRecord } from '../../src/state/cluster-view.js';
import { Keys } from '../../src/state/keys.js';
import { encodeRecord, makeRecord } from '../../src/state/records.js';

const topology = loadTopology(
  `
network: 100.96.0.0/16
subnetSize: 20
zones:
  - name: z
    subnets:
      - { id: s1, cidr: 198.18.1.0/24 }
      - { id: s2, cidr: 198.18.2.0/24 }
`,
  'test',
);
const keys = new Keys();
let rev = 1;
// Node records and advertisements share their node's lease (here one lease for all).
const entry = (value: string): { value: string; modRevision: string; lease: string } => ({ value, modRevision: String(rev++), lease: '7' });
const block = (prefix: string, node: string, subnet = 's1'): string => encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, node, subnet }));
const advert = (node: string, prefixes: string[], nextHop = '198.18.1.10', subnet = 's1'): string =>
  encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node, subnet, nextHop, prefixes }));
const node = (name: string, hostIp: string, subnet = 's1'): string => encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, hostIp, subnet }));

function fresh(): { view: ClusterView; ignored: IgnoredRecord[] } {
  const ignored: IgnoredRecord[] = [];
  const view = new ClusterView(topology, keys, (r) => ignored.push(r));
  view.apply(keys.block('100.96.0.0/26'), entry(block('100.96.0.0/26', 'a')));
  view.apply(keys.block('100.96.0.64/26'), entry(block('100.96.0.64/26', 'a')));
  view.apply(keys.block('100.96.1.0/26'), entry(block('100.96.1.0/26', 'b')));
  view.apply(keys.node('a'), entry(node('a', '198.18.1.10')));
  view.apply(keys.node('b'), entry(node('b', '198.18.1.11')));
  return { view, ignored };
}

t.test('valid records pass', async (t) => {
  const { view, ignored } = fresh();
  view.apply(keys.route('s1', 'a'), entry(advert('a', ['100.96.0.0/25'])));
  view.apply(keys.route('s1', 'b'), entry(advert('b', ['100.96.1.0/26'], '198.18.1.11')));
  t.equal(view.nodes().size, 2);
  t.equal(view.blocks().size, 3);
  t.same([...view.advertisements().values()].map((a) => [a.node, a.prefixes.map(formatPrefix)]), [
    ['a', ['100.96.0.0/25']],
    ['b', ['100.96.1.0/26']],
  ]);
  t.same(ignored, []);
});

t.test('hostile and malformed records are ignored and counted', async (t) => {
  const cases: Array<{ name: string; key: string; value: string; kind: IgnoredRecord['kind']; reason: RegExp; prefixesOfA?: string[] }> = [
    { name: 'bad JSON', key: keys.route('s1', 'a'), value: '{"schemaVersion":1,', kind: 'advertisement', reason: /not a valid Advertisement/ },
    { name: 'unknown schema version', key: keys.route('s1', 'a'), value: '{"schemaVersion":7,"node":"a"}', kind: 'advertisement', reason: /unknown schemaVersion 7/ },
    { name: 'no schema version', key: keys.route('s1', 'a'), value: '{"node":"a"}', kind: 'advertisement', reason: /no schemaVersion/ },
    { name: 'key/node mismatch', key: keys.route('s1', 'a'), value: advert('b', ['100.96.1.0/26']), kind: 'advertisement', reason: /names s1\/b/ },
    { name: 'next hop outside the subnet', key: keys.route('s1', 'a'), value: advert('a', ['100.96.0.0/26'], '198.18.2.5'), kind: 'advertisement', reason: /outside subnet s1/ },
    { name: 'bad next hop', key: keys.route('s1', 'a'), value: advert('a', ['100.96.0.0/26'], 'nowhere'), kind: 'advertisement', reason: /bad nextHop/ },
    { name: 'unknown subnet', key: keys.route('s9', 'a'), value: advert('a', ['100.96.0.0/26'], '198.18.1.10', 's9'), kind: 'advertisement', reason: /unknown subnet/ },
    { name: "another node's block", key: keys.route('s1', 'a'), value: advert('a', ['100.96.0.0/25', '100.96.1.0/26']), kind: 'advertised-prefix', reason: /100\.96\.1\.0\/26: not covered exactly by blocks that a owns/, prefixesOfA: ['100.96.0.0/25'] },
    { name: 'an unclaimed block', key: keys.route('s1', 'a'), value: advert('a', ['100.96.0.0/24']), kind: 'advertised-prefix', reason: /100\.96\.0\.0\/24: not covered exactly/, prefixesOfA: [] },
    { name: 'outside the pod prefix', key: keys.route('s1', 'a'), value: advert('a', ['100.64.0.0/26']), kind: 'advertised-prefix', reason: /outside the pod prefix/, prefixesOfA: [] },
    { name: 'not canonical', key: keys.route('s1', 'a'), value: advert('a', ['100.96.0.5/26']), kind: 'advertised-prefix', reason: /not a canonical prefix/, prefixesOfA: [] },
    { name: 'node with host IP outside its subnet', key: keys.node('c'), value: node('c', '198.18.2.9'), kind: 'node', reason: /outside subnet s1/ },
    { name: 'node record under another name', key: keys.node('c'), value: node('d', '198.18.1.9'), kind: 'node', reason: /names "d"/ },
    { name: 'block outside its subnet', key: keys.block('100.96.16.0/26'), value: block('100.96.16.0/26', 'a'), kind: 'block', reason: /outside the pod prefix/ },
    { name: 'block of the wrong size', key: keys.block('100.96.2.0/25'), value: block('100.96.2.0/25', 'a'), kind: 'block', reason: /differs from the topology block size/ },
    { name: 'block under another key', key: keys.block('100.96.2.0/26'), value: block('100.96.3.0/26', 'a'), kind: 'block', reason: /names 100\.96\.3\.0\/26/ },
    { name: 'block without owner', key: keys.block('100.96.2.0/26'), value: block('100.96.2.0/26', ''), kind: 'block', reason: /no owner/ },
  ];
  for (const c of cases) {
    const { view, ignored } = fresh();
    view.apply(c.key, entry(c.value));
    view.nodes();
    view.blocks();
    const adverts = view.advertisements();
    t.equal(ignored.length, 1, `${c.name}: reported once`);
    t.equal(ignored[0]?.kind, c.kind, `${c.name}: kind`);
    t.match(ignored[0]?.reason, c.reason, `${c.name}: reason`);
    t.equal(view.ignoredCounts[c.kind], 1, `${c.name}: counted`);
    const a = adverts.get('a');
    if (c.prefixesOfA === undefined) t.equal(a, undefined, `${c.name}: no advertisement accepted`);
    else t.same(a?.prefixes.map(formatPrefix), c.prefixesOfA, `${c.name}: only valid prefixes kept`);
    // asking again does not report or count again
    view.advertisements();
    view.blocks();
    view.nodes();
    t.equal(ignored.length, 1, `${c.name}: not reported twice`);
  }
});

t.test('an advertisement follows block ownership', async (t) => {
  const { view } = fresh();
  view.apply(keys.route('s1', 'b'), entry(advert('b', ['100.96.1.0/26'], '198.18.1.11')));
  t.equal(view.advertisements().get('b')?.prefixes.length, 1);
  // the block is re-assigned to a: b's advertisement of it must stop counting
  view.apply(keys.block('100.96.1.0/26'), entry(block('100.96.1.0/26', 'a')));
  t.same(view.advertisements().get('b')?.prefixes, [], 'prefix dropped once the block records say otherwise');
  view.apply(keys.block('100.96.1.0/26'), undefined);
  t.same(view.advertisements().get('b')?.prefixes, [], 'an unclaimed block is not routed either');
  view.apply(keys.route('s1', 'b'), undefined);
  t.equal(view.advertisements().get('b'), undefined, 'deleted advertisement is gone');
  t.equal(view.advertisementCount(), 0);
});

t.test('keys outside the layout are ignored', async (t) => {
  const { view, ignored } = fresh();
  view.apply('/elsewhere/x', entry('{}'));
  view.apply(`${keys.routesPrefix()}only-one-segment`, entry(advert('a', [])));
  view.apply(`${keys.blocksPrefix()}not-a-prefix`, entry(block('100.96.0.0/26', 'a')));
  view.advertisements();
  t.same(ignored.map((i) => i.kind).sort(), ['advertisement', 'block']);
});
