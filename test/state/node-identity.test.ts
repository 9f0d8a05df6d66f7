// Identity records are checked like every record read from etcd: a record
// that does not name its key, has no valid host IP, an instance id that is not
// EC2's, or an unknown schema version is a reason, never an instance to ask
// EC2 about.
import t from 'tap';
import { checkIdentity, encodeIdentity, sameIdentity } from '../../src/state/node-identity.js';

const good = { name: 'node-a', subnet: 'subnet-a1', hostIP: '198.18.1.10', instanceId: 'i-0123456789abcdef0' };

t.test('a valid record round-trips', async (t) => {
  const text = encodeIdentity(good, Date.UTC(2026, 11, 4));
  t.match(text, /"registeredAt":"2026-12-04T00:00:00Z"/);
  t.same(checkIdentity(text, 'node-a'), { ok: true, value: good });
  t.same(checkIdentity(encodeIdentity({ ...good, instanceId: '' }, 0), 'node-a'), { ok: true, value: { ...good, instanceId: '' } }, 'off the cloud: no instance id');
  t.same(checkIdentity(encodeIdentity({ ...good, instanceId: 'i-0123abcd' }, 0), 'node-a').ok, true, 'the short form of instance ids');
  t.ok(sameIdentity(good, { ...good }));
  t.notOk(sameIdentity(good, { ...good, instanceId: 'i-0123456789abcdef1' }));
  t.notOk(sameIdentity(good, { ...good, hostIP: '198.18.1.11' }));
  t.notOk(sameIdentity(good, { ...good, subnet: 'subnet-a2' }));
});

t.test('bad records give reasons', async (t) => {
  const bad: Array<[string, string, RegExp]> = [
    [encodeIdentity(good, 0), 'node-b', /identity record under key node-b names "node-a"/],
    [encodeIdentity({ ...good, hostIP: 'nope' }, 0), 'node-a', /bad hostIp "nope"/],
    [encodeIdentity({ ...good, instanceId: 'i-; rm -rf /' }, 0), 'node-a', /is not an EC2 instance id/],
    [encodeIdentity({ ...good, instanceId: `i-${'a'.repeat(5000)}` }, 0), 'node-a', /^.{0,200}$/],
    ['{"name":"node-a"}', 'node-a', /has no schemaVersion/],
    ['{"schemaVersion":2,"name":"node-a"}', 'node-a', /unknown schemaVersion 2/],
    ['not json', 'node-a', /not a valid .*NodeIdentity record/],
  ];
  for (const [text, key, reason] of bad) {
    const checked = checkIdentity(text, key);
    t.equal(checked.ok, false, text.slice(0, 60));
    if (!checked.ok) t.match(checked.reason, reason);
  }
});
