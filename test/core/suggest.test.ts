// editDistance and suggest: the "did you mean" of both programs.
import t from 'tap';
import fc from 'fast-check';
import { didYouMean, editDistance, suggest } from '../../src/core/suggest.js';

t.test('edit distance, table', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['', '', 0],
    ['', 'abc', 3],
    ['abc', '', 3],
    ['node', 'nodes', 1],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
    ['etcd-endpoint', 'etcd-endpoints', 1],
    ['vpc-enabel', 'vpc-enabled', 2],
  ];
  for (const [a, b, d] of cases) t.equal(editDistance(a, b), d, `${a} → ${b}`);
});

t.test('edit distance is a metric', async (t) => {
  const word = fc.string({ maxLength: 8 });
  fc.assert(
    fc.property(word, word, word, (a, b, c) => {
      t.equal(editDistance(a, b), editDistance(b, a));
      if ((editDistance(a, b) === 0) !== (a === b)) throw new Error('zero only for equal strings');
      if (editDistance(a, c) > editDistance(a, b) + editDistance(b, c)) throw new Error('triangle inequality');
      if (editDistance(a, b) > Math.max(a.length, b.length)) throw new Error('bounded by the longer length');
    }),
    { numRuns: 300 },
  );
});

t.test('suggest picks a close candidate or nothing', async (t) => {
  const commands = ['topology', 'nodes', 'blocks', 'ipam', 'routes', 'vpc', 'help'];
  t.equal(suggest('node', commands), 'nodes');
  t.equal(suggest('rutes', commands), 'routes');
  t.equal(suggest('Blocks', commands), 'blocks');
  t.equal(suggest('topo', commands), 'topology', 'a prefix of a command');
  t.equal(suggest('zzzzzz', commands), undefined);
  t.equal(suggest('x', commands), undefined);
  t.equal(suggest('etcd.endpoint', ['etcd.prefix', 'etcd.endpoints']), 'etcd.endpoints');
  t.equal(didYouMean('node', commands), ' (did you mean "nodes"?)');
  t.equal(didYouMean('qqq', commands), '');
  t.equal(didYouMean('hostip', ['hostIP'], (s) => s), ' (did you mean hostIP?)');
});
