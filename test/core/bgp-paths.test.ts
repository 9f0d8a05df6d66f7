// src/core/bgp-paths.ts: per-peer plans merged into tagged paths, and the
// make-before-break diff against the speaker's paths.
import t from 'tap';
import { parsePrefix } from '../../src/core/cidr.js';
import { diffPaths, FIRST_HOP_PREF, mergePeerPlans, OTHER_HOP_PREF, type OwnPath } from '../../src/core/bgp-paths.js';

const P = parsePrefix;
const agg = P('100.96.0.0/24');
const n1 = P('100.96.0.0/26');
const n2 = P('100.96.0.64/26');

t.test('each peer is tagged on its own plan only, at most multipath hops', async (t) => {
  const want = mergePeerPlans([
    { peer: 0, multipath: 1, routes: [{ prefix: n1, nextHops: ['198.18.1.10'] }, { prefix: n2, nextHops: ['198.18.1.11'] }] },
    { peer: 1, multipath: 1, routes: [{ prefix: agg, nextHops: ['198.18.1.10'] }] },
    { peer: 2, multipath: 3, routes: [{ prefix: agg, nextHops: ['198.18.1.10', '198.18.1.11', '198.18.1.12'] }] },
  ]);
  t.same(
    want.map((w) => [w.prefix.len, w.nextHop, w.localPref, w.peers]),
    [
      [24, '198.18.1.10', FIRST_HOP_PREF, [1, 2]],
      [24, '198.18.1.11', OTHER_HOP_PREF, [2]],
      [24, '198.18.1.12', OTHER_HOP_PREF, [2]],
      [26, '198.18.1.10', FIRST_HOP_PREF, [0]],
      [26, '198.18.1.11', FIRST_HOP_PREF, [0]],
    ],
  );
});

t.test('a later peer naming another first hop takes the first one, keeping its count', async (t) => {
  const want = mergePeerPlans([
    { peer: 0, multipath: 1, routes: [{ prefix: agg, nextHops: ['198.18.1.10'] }] },
    { peer: 1, multipath: 2, routes: [{ prefix: agg, nextHops: ['198.18.1.11', '198.18.1.12'] }] },
  ]);
  t.same(want.map((w) => [w.nextHop, w.localPref, w.peers]), [
    ['198.18.1.10', FIRST_HOP_PREF, [0, 1]],
    ['198.18.1.11', OTHER_HOP_PREF, [1]],
  ]);
});

t.test('diff: unchanged paths stay, changed ones are added under a fresh identifier and the old deleted', async (t) => {
  const have: OwnPath[] = [
    { prefix: agg, nextHop: '198.18.1.10', localPref: FIRST_HOP_PREF, peers: [0, 1], identifier: 1 },
    { prefix: agg, nextHop: '198.18.1.11', localPref: OTHER_HOP_PREF, peers: [1], identifier: 2 },
    { prefix: n1, nextHop: '198.18.1.10', localPref: FIRST_HOP_PREF, peers: [0], identifier: 1 },
  ];
  const want = mergePeerPlans([
    { peer: 0, multipath: 1, routes: [{ prefix: agg, nextHops: ['198.18.1.10'] }] },
    { peer: 1, multipath: 1, routes: [{ prefix: agg, nextHops: ['198.18.1.10'] }] },
    { peer: 2, multipath: 1, routes: [{ prefix: n2, nextHops: ['198.18.1.11'] }] },
  ]);
  const d = diffPaths(have, want);
  t.same(d.add.map((a) => [a.prefix.len, a.nextHop, a.identifier, a.peers]), [[26, '198.18.1.11', 1, [2]]], 'only the new prefix is added');
  t.same(d.remove, [have[1], have[2]], 'the dropped hop and prefix are deleted');

  const moved = diffPaths(have.slice(0, 1), mergePeerPlans([{ peer: 0, multipath: 1, routes: [{ prefix: agg, nextHops: ['198.18.1.10'] }] }]));
  t.same(moved.add.map((a) => [a.nextHop, a.identifier, a.peers]), [['198.18.1.10', 2, [0]]], 'peer 1 dropped: a fresh identifier, the old path deleted after');
  t.same(moved.remove, [have[0]]);
  t.same([...moved.perPeer], [[0, [{ prefix: '100.96.0.0/24', nextHops: ['198.18.1.10'] }]]]);
});
