// Fuzzing the node record decoder and check (see record-targets.ts).
import t from 'tap';
import { NodeSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { decodeRecord } from '../../src/state/records.js';
import { fuzzRecord } from './record-targets.js';

fuzzRecord(t, 'Node');

t.test('regression: a bad timestamp is rejected with the name of its field', async (t) => {
  const d = decodeRecord(NodeSchema, '{"schemaVersion":1,"name":"a","startedAt":false}');
  t.match(d, { ok: false, reason: /Node record: field "startedAt": / });
  const long = decodeRecord(NodeSchema, `{"schemaVersion":1,"startedAt":"${'x'.repeat(10_000)}"}`);
  t.ok(!long.ok && long.reason.length < 400, 'the reason is bounded whatever the value');
});
