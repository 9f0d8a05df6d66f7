// Fuzzing the cluster view: any raw entry under any key, in any order,
// never makes it throw.
import t from 'tap';
import fc from 'fast-check';
import { ClusterView } from '../../src/state/cluster-view.js';
import { RUNS, anyText, mutate, mutationArb } from './fuzz-inputs.js';
import { keys, targets, topology } from './record-targets.js';

t.test('the cluster view takes any raw entry under any key without throwing', async (t) => {
  const view = new ClusterView(topology, keys);
  const key = fc.oneof(
    fc.constantFrom(keys.node('a'), keys.block('100.96.0.0/26'), keys.route('s1', 'a'), keys.route('s1', 'b')),
    fc.string({ maxLength: 20 }).map((s) => `${keys.routesPrefix()}${s}`),
    fc.string({ maxLength: 20 }).map((s) => `${keys.blocksPrefix()}${s}`),
    fc.string({ maxLength: 20 }).map((s) => `${keys.nodesPrefix()}${s}`),
  );
  const value = fc.oneof(
    anyText,
    ...targets.filter((x) => x.name !== 'Topology' && x.name !== 'PodAddress').map((x) => mutationArb(x.fields).map((m) => mutate(x.valid, m))),
  );
  let revision = 0;
  fc.assert(
    fc.property(key, fc.option(value, { nil: undefined }), (k, v) => {
      view.apply(k, v === undefined ? undefined : { value: v, modRevision: String(++revision) });
      view.nodes();
      view.blocks();
      view.advertisements();
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});
