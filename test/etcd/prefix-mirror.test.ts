import t from 'tap';
import { pino } from 'pino';
import { connectEtcd } from '../../src/etcd/client.js';
import { PrefixMirror, type MirrorChange } from '../../src/etcd/prefix-mirror.js';
import { startEtcd } from '../../lab/etcd.js';
import { startTcpProxy } from '../../lab/tcp-proxy.js';
import { delay, until } from '../../lab/pids.js';

const log = pino({ level: 'silent' });


const snapshot = (m: PrefixMirror): Record<string, string> =>
  Object.fromEntries([...m.entries()].map(([k, v]) => [k, v.value]).sort());

t.test('prefix mirror', async (t) => {
  const etcd = await startEtcd(t);
  const port = Number(new URL(etcd.endpoint).port);
  const proxy = await startTcpProxy(t, { host: '127.0.0.1', port });
  const direct = connectEtcd({ endpoints: [etcd.endpoint] });
  const viaProxy = connectEtcd({ endpoints: [`http://127.0.0.1:${proxy.port}`], requestTimeoutMs: 1000 });
  t.teardown(() => {
    direct.close();
    viaProxy.close();
  });

  await direct.put('/m/a').value('1').exec();
  await direct.put('/m/b').value('2').exec();
  await direct.put('/other/x').value('no').exec();

  const mirror = new PrefixMirror(viaProxy, '/m/', log);
  const seen: MirrorChange[] = [];
  mirror.on('changes', (c) => seen.push(...c));
  t.teardown(() => mirror.stop());
  await mirror.start();
  t.ok(mirror.synced, 'synced after start');
  t.same(snapshot(mirror), { '/m/a': '1', '/m/b': '2' }, 'initial list, only the prefix');

  t.test('puts and deletes arrive in order', async (t) => {
    seen.length = 0;
    await direct.put('/m/c').value('3').exec();
    await direct.put('/m/a').value('1b').exec();
    await direct.delete().key('/m/b').exec();
    await until('three changes', () => seen.length >= 3);
    t.same(
      seen.map((c) => [c.type, c.key, c.value]),
      [
        ['put', '/m/c', '3'],
        ['put', '/m/a', '1b'],
        ['delete', '/m/b', '2'],
      ],
    );
    t.same(snapshot(mirror), { '/m/a': '1b', '/m/c': '3' });
  });

  t.test('after a partition the watch resumes from its revision: nothing lost, nothing twice', async (t) => {
    seen.length = 0;
    const listsBefore = mirror.lists;
    proxy.cut();
    await direct.put('/m/d').value('4').exec();
    await direct.delete().key('/m/c').exec();
    await delay(300);
    proxy.restore();
    await until('resumed changes', () => seen.length >= 2);
    await delay(300);
    t.same(
      seen.map((c) => [c.type, c.key]),
      [
        ['put', '/m/d'],
        ['delete', '/m/c'],
      ],
      'exactly the missed changes',
    );
    t.equal(mirror.lists, listsBefore, 'no re-list was needed');
    t.same(snapshot(mirror), { '/m/a': '1b', '/m/d': '4' });
  });

  t.test('after compaction of the resume revision it lists again and converges', async (t) => {
    seen.length = 0;
    const listsBefore = mirror.lists;
    proxy.cut();
    await direct.put('/m/e').value('5').exec();
    await direct.delete().key('/m/a').exec();
    await direct.put('/m/d').value('4b').exec();
    await etcd.compact();
    await delay(200);
    proxy.restore();
    await until('re-list', () => mirror.lists > listsBefore, 15_000);
    await until('converged', () => JSON.stringify(snapshot(mirror)) === JSON.stringify({ '/m/d': '4b', '/m/e': '5' }));
    t.pass('converged to etcd contents');
    const kinds = seen.map((c) => `${c.type} ${c.key}`).sort();
    t.same(kinds, ['delete /m/a', 'put /m/d', 'put /m/e'], 'the difference was emitted as changes');
    seen.length = 0;
    await direct.put('/m/f').value('6').exec();
    await until('watch works after re-list', () => seen.some((c) => c.key === '/m/f'));
    t.pass('watching again after the re-list');
  });
});

t.test('prefix mirror: paged lists, oversized values skipped and counted once, compacted values', async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  for (let i = 0; i < 25; i++) await client.put(`/big/k${String(i).padStart(2, '0')}`).value(`value-${i}`.padEnd(200, '.')).exec();
  await client.put('/big/huge').value('h'.repeat(5000)).exec();
  const reported: string[] = [];
  const mirror = new PrefixMirror(client, '/big/', log, {
    pageKeys: 4,
    maxValueBytes: 1000,
    onOversize: (key) => reported.push(key),
    compact: (_key, value) => value.replace(/\.+$/, ''),
  });
  const seen: MirrorChange[] = [];
  mirror.on('changes', (c) => seen.push(...c));
  t.teardown(() => mirror.stop());
  await mirror.start();
  t.equal(mirror.entries().size, 25, 'every key listed across pages, the oversized one left out');
  t.equal(mirror.get('/big/k07')?.value, 'value-7', 'values held compacted');
  t.ok(seen.every((c) => c.value === undefined || !c.value.endsWith('.')), 'changes carry compacted values');
  t.same(reported, ['/big/huge']);
  t.equal(mirror.oversized, 1);

  await mirror.relist();
  t.same(reported, ['/big/huge'], 'a relist does not report the same revision again');

  seen.length = 0;
  await client.put('/big/k03').value('x'.repeat(2000)).exec();
  await until('k03 gone', () => mirror.get('/big/k03') === undefined);
  t.match(seen, [{ type: 'delete', key: '/big/k03' }], 'a value that grows past the limit reads as a delete');
  t.same(reported, ['/big/huge', '/big/k03']);
  await client.put('/big/k03').value('back').exec();
  await until('k03 back', () => mirror.get('/big/k03')?.value === 'back');
  t.equal(mirror.oversized, 2);
});
