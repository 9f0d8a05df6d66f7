// Fuzzing the block claim decoder and check (see record-targets.ts), and the
// compaction of block records in the mirror: it never changes the verdict.
import t from 'tap';
import fc from 'fast-check';
import { BlockSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { compactBlockRecord } from '../../src/state/block-claim.js';
import { decodeRecord, encodeRecord, makeRecord } from '../../src/state/records.js';
import { RUNS, anyText, mutate, mutationArb } from './fuzz-inputs.js';
import { fuzzRecord, targets, type Target } from './record-targets.js';

fuzzRecord(t, 'Block');

t.test('a cut or spliced block record keeps its verdict through compaction', async (t) => {
  const base = targets.find((x) => x.name === 'Block') as Target;
  const read = (text: string): boolean => base.read(text).ok;
  const long = fc.record({ pad: fc.integer({ min: 0, max: 700 }), m: mutationArb(base.fields) }).map(({ pad, m }) => {
    const text = mutate(base.valid, m);
    return pad % 2 === 0 ? text + ' '.repeat(pad) + (pad % 4 === 0 ? 'x' : '') : text.replace('{', `{"pad":"${'y'.repeat(pad)}",`);
  });
  fc.assert(
    fc.property(fc.oneof(long, anyText), (text) => {
      const before = read(text);
      const after = read(compactBlockRecord(text));
      if (before !== after) throw new Error(`compaction changed the verdict from ${before} to ${after} for ${JSON.stringify(text).slice(0, 200)}`);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});

t.test('regression: a valid claim followed by trailing garbage past 512 characters stays undecodable when compacted', async (t) => {
  const claim = encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: '100.96.0.0/26', node: 'a', subnet: 's1' }));
  const hostile = `${claim}${' '.repeat(600)}x`;
  t.equal(decodeRecord(BlockSchema, hostile).ok, false);
  t.equal(decodeRecord(BlockSchema, compactBlockRecord(hostile)).ok, false);
});

