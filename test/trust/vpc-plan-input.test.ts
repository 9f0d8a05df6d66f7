// What the VPC advertiser plans from is the same checked view as the routes:
// a claim rewritten to another node (with a hold of its own) leaves the block
// with its rightful holder and that holder's instance; a forged advertisement
// plays no part.
import t from 'tap';
import { formatPrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { planNodes } from '../../daemon/vpc/plan-input.js';
import { BlockSchema, NodeSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { ClusterView, type RawEntry } from '../../src/state/cluster-view.js';
import { Keys } from '../../src/state/keys.js';
import { encodeRecord, makeRecord } from '../../src/state/records.js';

const topology = loadTopology(
  `network: 100.96.0.0/16
blockSize: 26
subnetSize: 20
zones:
  - name: a
    subnets:
      - { id: s1, cidr: 198.18.1.0/24, routeTable: rtb-1 }
`,
  'test',
);
const keys = new Keys();
let rev = 10;
const at = (value: string, lease = '0', created?: string): RawEntry => {
  const r = String(rev++);
  return { value, modRevision: r, createRevision: created ?? r, lease };
};
const block = (prefix: string, node: string): string => encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, node, subnet: 's1' }));

t.test('a rewritten claim does not move the VPC entry of a block', async (t) => {
  const view = new ClusterView(topology, keys);
  for (const [name, ip, b, lease] of [['a', '198.18.1.10', '100.96.0.0/26', '5'], ['y', '198.18.1.11', '100.96.0.64/26', '9']] as const) {
    const claim = at(block(b, name));
    view.apply(keys.block(b), claim);
    view.apply(keys.hold(name, b), { ...claim });
    view.apply(keys.node(name), at(encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, hostIp: ip, subnet: 's1', instanceId: `i-${name}` })), lease));
  }
  const planned = (): string[][] =>
    planNodes({ topology, nodes: view.nodes(), blocksByNode: view.blocksByNode() }, 's1', () => true).map((n) => [n.name, n.instanceId, n.blocks.map(formatPrefix).join(' ')]);
  const before = planned();
  t.same(before, [['a', 'i-a', '100.96.0.0/26'], ['y', 'i-y', '100.96.0.64/26']]);
  const created = String(10);
  view.apply(keys.block('100.96.0.0/26'), at(block('100.96.0.0/26', 'y'), '0', created));
  view.apply(keys.hold('y', '100.96.0.0/26'), at(block('100.96.0.0/26', 'y')));
  t.same(planned(), before, 'the block stays with a and its instance');
  t.equal(view.conflicts().size, 1);
});
