// Paged reads against a real etcd: more than 4 MiB under one prefix is read
// whole (one gRPC answer could not carry it), at one revision, with oversized
// values skipped and reported.
import t from 'tap';
import { connectEtcd } from '../../src/etcd/client.js';
import { rangePages, readPrefix } from '../../src/etcd/paged-range.js';
import { startEtcd } from '../../lab/etcd.js';

t.test('paged range reads', async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  const big = 'x'.repeat(1024 * 1024);
  for (let i = 0; i < 6; i++) await client.put(`/p/big/${i}`).value(big).exec();
  for (let i = 0; i < 700; i++) await client.put(`/p/small/${String(i).padStart(4, '0')}`).value(`v${i}`).exec();
  await client.put('/p0').value('outside').exec();
  await client.put('/o/x').value('outside').exec();

  await t.rejects(client.getAll().prefix('/p/').exec(), /RESOURCE_EXHAUSTED|larger than max/, 'one range of the prefix exceeds the gRPC limit');

  t.test('reads everything under the prefix, nothing beside it', async (t) => {
    const oversize: string[] = [];
    const all = await readPrefix(client, '/p/', { maxValueBytes: 2 * 1024 * 1024, onOversize: (k) => oversize.push(k) });
    t.equal(all.kvs.length, 706);
    t.same(oversize, []);
    const keys = all.kvs.map((kv) => kv.key.toString());
    t.same(keys, [...keys].sort(), 'in key order');
    t.equal(new Set(keys).size, 706, 'no key twice');
    t.notOk(keys.includes('/p0'), 'a key that only starts like the prefix is not read');
  });

  t.test('skips and reports values above the limit', async (t) => {
    const oversize: Array<[string, number]> = [];
    const all = await readPrefix(client, '/p/', { onOversize: (k, n) => oversize.push([k, n]) });
    t.equal(all.kvs.length, 700);
    t.same(oversize.map(([k]) => k), [0, 1, 2, 3, 4, 5].map((i) => `/p/big/${i}`));
    t.ok(oversize.every(([, n]) => n === big.length), 'sizes reported');
  });

  t.test('every page is read at the first page revision', async (t) => {
    const pages = rangePages(client, '/p/small/', { pageKeys: 100 });
    const first = await pages.next();
    if (first.done === true) throw new Error('no page');
    await client.put('/p/small/9999').value('late').exec();
    await client.delete().key('/p/small/0650').exec();
    const keys = first.value.kvs.map((kv) => kv.key.toString());
    for await (const page of pages) {
      t.equal(page.revision, first.value.revision, 'same revision');
      keys.push(...page.kvs.map((kv) => kv.key.toString()));
    }
    t.equal(keys.length, 700, 'the snapshot: the late put is not seen, the deleted key still is');
    t.ok(keys.includes('/p/small/0650'));
    t.notOk(keys.includes('/p/small/9999'));
  });

  t.test('an empty prefix is one empty page', async (t) => {
    const all = await readPrefix(client, '/nothing/');
    t.same(all.kvs, []);
    t.ok(Number(all.revision) > 0, 'the revision is still known');
  });
});
