// Holds in etcd: a claim creates its hold in the same revision, a release
// deletes both; a claim from before holds gets one (only while it still names
// the node); a rewritten or deleted claim is written back from the hold, and
// a repair never undoes a release. Start-up shares one read of the claims.
import t from 'tap';
import pino from 'pino';
import { connectEtcd } from '../../src/etcd/client.js';
import { repairClaim, writeMissingHolds } from '../../src/etcd/claim-holds.js';
import { StartupClaims } from '../../src/etcd/claim-reader.js';
import { EtcdIpamStore } from '../../src/etcd/ipam-store.js';
import { Keys } from '../../src/state/keys.js';
import { startEtcd } from '../../lab/etcd.js';

const keys = new Keys('/trellis');
const claimText = (prefix: string, node: string): string => JSON.stringify({ schemaVersion: 1, prefix, subnet: 's1', node });

t.test('holds follow claims', async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  const store = new EtcdIpamStore(client, keys, pino({ level: 'silent' }));
  const kv = async (key: string) => (await client.get(key).exec()).kvs[0];

  const version = await store.createClaim({ prefix: '100.96.0.0/26', subnet: 's1', node: 'a', claimedAt: 1 });
  t.ok(version);
  const [claim, hold] = [await kv(keys.block('100.96.0.0/26')), await kv(keys.hold('a', '100.96.0.0/26'))];
  t.equal(String(hold?.create_revision), String(claim?.create_revision), 'claim and hold created in one revision');
  t.equal(hold?.value.toString(), claim?.value.toString(), 'the hold is the claim');

  t.equal(await repairClaim(client, keys, 'a', '100.96.0.0/26'), 'ok', 'nothing to repair');
  await client.put(keys.block('100.96.0.0/26')).value(claimText('100.96.0.0/26', 'y')).exec();
  t.equal(await repairClaim(client, keys, 'a', '100.96.0.0/26'), 'repaired');
  t.match((await kv(keys.block('100.96.0.0/26')))?.value.toString(), /"node":"a"/, 'a rewritten claim written back');
  await client.delete().key(keys.block('100.96.0.0/26')).exec();
  t.equal(await repairClaim(client, keys, 'a', '100.96.0.0/26'), 'repaired');
  t.ok(await kv(keys.block('100.96.0.0/26')), 'a deleted claim created again');
  t.equal(await repairClaim(client, keys, 'y', '100.96.0.0/26'), 'not-held', 'a node without a hold repairs nothing');

  const current = await store.getClaim('100.96.0.0/26');
  const revision = String((await client.get(keys.block('100.96.0.0/26')).exec()).header.revision);
  t.ok(await store.releaseBlock('a', '100.96.0.0/26', current?.version as string, revision));
  t.notOk(await kv(keys.hold('a', '100.96.0.0/26')), 'a release deletes the hold with the claim');
  t.equal(await repairClaim(client, keys, 'a', '100.96.0.0/26'), 'not-held', 'and nothing brings a released claim back');
  t.notOk(await kv(keys.block('100.96.0.0/26')));

  // Claims from before holds: a hold each, only for claims still naming the node.
  await client.put(keys.block('100.96.1.0/26')).value(claimText('100.96.1.0/26', 'a')).exec();
  await client.put(keys.block('100.96.2.0/26')).value(claimText('100.96.2.0/26', 'b')).exec();
  t.same(await writeMissingHolds(client, keys, 'a'), ['100.96.1.0-26']);
  t.ok(await kv(keys.hold('a', '100.96.1.0/26')));
  t.notOk(await kv(keys.hold('a', '100.96.2.0/26')), "never a hold of another node's claim");
  t.same(await writeMissingHolds(client, keys, 'a'), [], 'idempotent');
});

t.test("start-up's claim reads: one snapshot serves them while young; the hold migration from it writes only while the claim is unchanged", async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  let now = 1_000;
  const startup = new StartupClaims(client, keys, 5_000, () => now);
  await client.put(keys.block('100.96.1.0/26')).value(claimText('100.96.1.0/26', 'a')).exec();
  await client.put(keys.block('100.96.2.0/26')).value(claimText('100.96.2.0/26', 'b')).exec();
  const first = await startup.snapshot();
  t.same(first.claims, [{ prefix: '100.96.1.0/26', node: 'a' }, { prefix: '100.96.2.0/26', node: 'b' }], 'every claim, as prefix and owner');
  t.equal(first.records.length, 2, 'with its records');

  await client.put(keys.block('100.96.3.0/26')).value(claimText('100.96.3.0/26', 'a')).exec();
  now += 5_000;
  t.equal(await startup.snapshot(), first, 'a snapshot 5 s old is served again (no read)');
  now += 1;
  const second = await startup.snapshot();
  t.not(second, first, 'an older one is read again');
  t.equal(second.claims.length, 3, 'and sees the claim written since');
  startup.drop();
  t.not(await startup.snapshot(), second, 'dropped: the next call reads');

  // The migration from a snapshot: a claim rewritten since the read gets no hold.
  await client.put(keys.block('100.96.1.0/26')).value(claimText('100.96.1.0/26', 'x')).exec();
  t.same(await writeMissingHolds(client, keys, 'a', second.records), ['100.96.3.0-26'], 'a hold for the unchanged claim only');
  t.notOk((await client.get(keys.hold('a', '100.96.1.0/26')).exec()).kvs[0], 'none for the claim rewritten after the snapshot');
});
