// Fuzzing the topology parser: random text and near-valid mutations of a
// valid topology never throw out of parseTopology; every issue has a
// non-empty message, and a field set to a wrong value is named by an issue's
// path or message. loadTopology throws only TrellisError(E_TOPOLOGY).
import t from 'tap';
import fc from 'fast-check';
import { loadTopology, parseTopology } from '../../src/core/topology-parse.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';
import { RUNS, anyText, mutate, mutationArb, spellings } from './fuzz-inputs.js';

const valid = {
  network: '100.96.0.0/16',
  blockSize: 26,
  subnetSize: 20,
  zones: [{ name: 'z', subnets: [{ id: 's1', cidr: '198.18.1.0/24' }, { id: 's2', cidr: '198.18.2.0/24', podPrefix: '100.96.128.0/20' }] }],
};
const fields = ['network', 'blockSize', 'nodeHomeSize', 'subnetSize', 'zones', 'zones.0', 'zones.0.name', 'zones.0.subnets', 'zones.0.subnets.0', 'zones.0.subnets.0.cidr', 'zones.0.subnets.1.podPrefix', 'zones.0.subnets.0.id'];

function issues(text: string): Array<{ path: string; message: string }> {
  let r: ReturnType<typeof parseTopology>;
  try {
    r = parseTopology(text, 'topology.yaml');
  } catch (err) {
    throw new Error(`parseTopology threw on ${JSON.stringify(text).slice(0, 200)}: ${String(err)}`, { cause: err });
  }
  if (!('errors' in r)) return [];
  if (r.errors.length === 0) throw new Error('rejected with no issue');
  for (const e of r.errors) if (typeof e.message !== 'string' || e.message.trim() === '' || typeof e.path !== 'string') throw new Error(`bad issue ${JSON.stringify(e)}`);
  try {
    loadTopology(text, 'topology.yaml');
    throw new Error('loadTopology accepted what parseTopology refused');
  } catch (err) {
    if (!(err instanceof TrellisError) || err.code !== ErrorCode.Topology) throw new Error(`loadTopology threw ${String(err)}`, { cause: err });
  }
  return r.errors;
}

t.test('the valid topology parses', async (t) => {
  t.same(issues(JSON.stringify(valid)), []);
});

t.test('random text never throws out of the parser', async (t) => {
  fc.assert(fc.property(anyText, (text) => void issues(text)), { numRuns: RUNS });
  t.pass(`${RUNS} inputs`);
});

t.test('near-valid topologies never throw; a wrong field is named', async (t) => {
  fc.assert(
    fc.property(mutationArb(fields), (m) => {
      const found = issues(mutate(valid as unknown as Record<string, unknown>, m));
      if (m.kind !== 'set' || found.length === 0) return;
      const leaf = m.field.split('.').filter((s) => !/^\d+$/.test(s));
      const named = found.some((e) => leaf.some((s) => spellings(s).some((x) => e.path.includes(x) || e.message.includes(x))));
      if (!named && !found.some((e) => /overlap|too small|outside|pod prefix|subnet/.test(e.message))) {
        throw new Error(`${m.field} = ${JSON.stringify(m.value)?.slice(0, 60)}: no issue names it: ${JSON.stringify(found)}`);
      }
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});
