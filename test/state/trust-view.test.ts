// The attacks on routing state, at the level of the validated cluster view:
// a forged claim and advertisement with no node record or lease, an
// advertisement with a wrong next hop or another lease, a claim rewritten (or
// deleted and re-created) to another owner. None reaches the view the routes
// are made from; rewritten claims are reported as conflicts, and the block
// stays with its rightful holder. Plus: one report per bad record, whatever
// its size.
import t from 'tap';
import { formatPrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { AdvertisementSchema, BlockSchema, NodeSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { ClusterView, type ClaimConflict, type IgnoredRecord, type RawEntry } from '../../src/state/cluster-view.js';
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
`,
  'test',
);
const keys = new Keys();
let rev = 100;
const at = (value: string, o: { lease?: string; created?: string } = {}): RawEntry => {
  const r = String(rev++);
  return { value, modRevision: r, createRevision: o.created ?? r, lease: o.lease ?? '0' };
};
const block = (prefix: string, node: string): string => encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, node, subnet: 's1' }));
const advert = (node: string, prefixes: string[], nextHop: string): string =>
  encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node, subnet: 's1', nextHop, prefixes }));
const nodeRec = (name: string, hostIp: string): string => encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, hostIp, subnet: 's1' }));

/** Node a (lease 5) holding 100.96.0.0/26 (claim and hold in one revision) and advertising it; node y (lease 9) holding 100.96.0.64/26. */
function cluster(): { view: ClusterView; ignored: IgnoredRecord[]; conflicts: ClaimConflict[]; created: string } {
  const ignored: IgnoredRecord[] = [];
  const conflicts: ClaimConflict[] = [];
  const view = new ClusterView(topology, keys, (r) => ignored.push(r), (c) => conflicts.push(c));
  const claimA = at(block('100.96.0.0/26', 'a'));
  view.apply(keys.block('100.96.0.0/26'), claimA);
  view.apply(keys.hold('a', '100.96.0.0/26'), { ...claimA });
  const claimY = at(block('100.96.0.64/26', 'y'));
  view.apply(keys.block('100.96.0.64/26'), claimY);
  view.apply(keys.hold('y', '100.96.0.64/26'), { ...claimY });
  view.apply(keys.node('a'), at(nodeRec('a', '198.18.1.10'), { lease: '5' }));
  view.apply(keys.node('y'), at(nodeRec('y', '198.18.1.11'), { lease: '9' }));
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.0/26'], '198.18.1.10'), { lease: '5' }));
  return { view, ignored, conflicts, created: claimA.createRevision as string };
}

/** [node, prefixes] of each accepted advertisement, by node. */
const routed = (view: ClusterView): string[][] =>
  [...view.advertisements().values()].map((a) => [a.node, a.prefixes.map(formatPrefix).join(' ')]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1));

t.test('the honest cluster routes', async (t) => {
  const { view, ignored, conflicts } = cluster();
  t.same(routed(view), [['a', '100.96.0.0/26']]);
  t.same(ignored, []);
  t.same(conflicts, []);
});

t.test('a forged claim and advertisement with no node record and no lease are not routed', async (t) => {
  const { view, ignored } = cluster();
  view.apply(keys.block('100.96.0.192/26'), at(block('100.96.0.192/26', 'ghost')));
  view.apply(keys.route('s1', 'ghost'), at(advert('ghost', ['100.96.0.192/26'], '198.18.1.99')));
  t.same(routed(view), [['a', '100.96.0.0/26']]);
  t.match(ignored.map((i) => i.reason), [/advertisement of ghost: no valid node record/]);
});

t.test('an advertisement under another lease than its node record is not routed', async (t) => {
  const { view, ignored } = cluster();
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.0/26'], '198.18.1.10'), { lease: '9' }));
  t.same(routed(view), []);
  t.match(ignored.map((i) => i.reason), [/lease 9 is not the lease 5/]);
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.0/26'], '198.18.1.10')));
  t.same(routed(view), [], 'nor one with no lease');
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.0/26'], '198.18.1.10'), { lease: '5' }));
  t.same(routed(view), [['a', '100.96.0.0/26']], 'the honest one again');
  view.apply(keys.node('a'), undefined);
  t.same(routed(view), [], 'a node record gone takes its advertisement with it');
});

t.test('an advertisement whose next hop is not its node\'s host IP is not routed', async (t) => {
  const { view, ignored } = cluster();
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.0/26'], '198.18.1.99'), { lease: '5' }));
  t.same(routed(view), []);
  t.match(ignored.map((i) => i.reason), [/next hop 198\.18\.1\.99 is not the host IP 198\.18\.1\.10/]);
});

t.test('a claim rewritten to another owner: a conflict, the block stays with its holder', async (t) => {
  const { view, conflicts, created } = cluster();
  const claimKey = keys.block('100.96.0.0/26');
  // y rewrites a's claim in place (the key keeps its create revision) and writes a hold of its own.
  view.apply(claimKey, at(block('100.96.0.0/26', 'y'), { created }));
  view.apply(keys.hold('y', '100.96.0.0/26'), at(block('100.96.0.0/26', 'y')));
  view.apply(keys.route('s1', 'y'), at(advert('y', ['100.96.0.0/26', '100.96.0.64/26'], '198.18.1.11'), { lease: '9' }));
  t.equal(view.blocks().get('100.96.0.0/26')?.node, 'a', 'attributed to a, not to the node the claim names');
  t.same(routed(view), [['a', '100.96.0.0/26'], ['y', '100.96.0.64/26']], "y's advertisement of a's block is not routed");
  t.match(conflicts.map((c) => [c.prefix, c.claimed, c.holder]), [['100.96.0.0/26', 'y', 'a']]);
  t.equal(view.conflicts().size, 1, 'listed');

  // y deletes the claim and creates it afresh (new create revision): a's older hold still wins.
  view.apply(claimKey, undefined);
  t.match(view.conflicts().get('100.96.0.0/26')?.reason, /claim missing/);
  view.apply(claimKey, at(block('100.96.0.0/26', 'y')));
  t.equal(view.blocks().get('100.96.0.0/26')?.node, 'a');
  t.same(routed(view), [['a', '100.96.0.0/26'], ['y', '100.96.0.64/26']]);

  // a repairs its claim: y's stray hold is still a conflict, the block stays a's.
  view.apply(claimKey, at(block('100.96.0.0/26', 'a')));
  t.match(view.conflicts().get('100.96.0.0/26')?.reason, /y also holds the block/);
  t.equal(view.blocks().get('100.96.0.0/26')?.node, 'a');
});

t.test('the protocol\'s own path (release, then a fresh claim) is no conflict', async (t) => {
  const { view, conflicts } = cluster();
  view.apply(keys.route('s1', 'a'), at(advert('a', ['100.96.0.64/26'], '198.18.1.10'), { lease: '5' }));
  // a releases: claim and hold go in one transaction.
  view.apply(keys.block('100.96.0.0/26'), undefined);
  view.apply(keys.hold('a', '100.96.0.0/26'), undefined);
  const claim = at(block('100.96.0.0/26', 'y'));
  view.apply(keys.block('100.96.0.0/26'), claim);
  view.apply(keys.hold('y', '100.96.0.0/26'), { ...claim });
  view.apply(keys.route('s1', 'y'), at(advert('y', ['100.96.0.0/25'], '198.18.1.11'), { lease: '9' }));
  t.equal(view.blocks().get('100.96.0.0/26')?.node, 'y');
  t.same(conflicts, []);
  t.same(routed(view), [['a', ''], ['y', '100.96.0.0/25']], "y routes its blocks; a's stale advertisement carries none");
});

t.test('an advertisement with 4,096 bogus prefixes is reported once', async (t) => {
  const { view, ignored } = cluster();
  const bogus = Array.from({ length: 4096 }, (_, i) => `100.96.${(i >> 2) & 15}.${(i & 3) * 64}/26`).concat(['100.96.0.0/26']);
  view.apply(keys.route('s1', 'a'), at(advert('a', bogus, '198.18.1.10'), { lease: '5' }));
  t.same(routed(view), [['a', '100.96.0.0/26']]);
  t.equal(ignored.length, 1, 'one report');
  t.ok((ignored[0]?.reason.length ?? 0) < 1000, 'of bounded size');
  view.advertisements();
  t.equal(ignored.length, 1, 'not reported again');
});
