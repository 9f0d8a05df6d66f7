// LinkCache with an injected dump: hits answer from the cache, misses dump
// once (shared by concurrent misses), unknown names stay unknown.

import t from 'tap';
import { LinkCache, type Link } from '../../src/netlink/links.js';

t.test('refresh on miss, shared dumps', async (t) => {
  let table: Link[] = [{ index: 1, name: 'lo' }, { index: 2, name: 'eth0' }];
  let dumps = 0;
  const cache = new LinkCache(async () => {
    dumps++;
    await new Promise((resolve) => setImmediate(resolve));
    return table;
  });
  t.equal(cache.cachedName(2), undefined, 'empty before the first dump');
  t.same(await Promise.all([cache.indexOf('eth0'), cache.nameOf(1), cache.indexOf('lo')]), [2, 'lo', 1]);
  t.equal(dumps, 1, 'concurrent misses share one dump');
  t.equal(await cache.indexOf('eth0'), 2);
  t.equal(dumps, 1, 'hits do not dump');
  table = [{ index: 1, name: 'lo' }, { index: 7, name: 'eth0' }, { index: 8, name: 'veth1' }];
  t.equal(await cache.indexOf('eth0'), 2, 'stale until refreshed');
  t.equal(await cache.nameOf(8), 'veth1', 'a miss refreshes');
  t.equal(await cache.indexOf('eth0'), 7);
  t.equal(await cache.indexOf('nosuch'), undefined);
  t.equal(cache.refreshes, 3);
  t.equal(cache.cachedName(2), undefined, 'gone after refresh');
});

t.test('a failed dump is reported and retried later', async (t) => {
  let fail = true;
  const cache = new LinkCache(async () => {
    if (fail) throw new Error('dump failed');
    return [{ index: 3, name: 'eth0' }];
  });
  await t.rejects(cache.indexOf('eth0'), /dump failed/);
  fail = false;
  t.equal(await cache.indexOf('eth0'), 3);
});
