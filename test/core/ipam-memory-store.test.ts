import t from 'tap';
import { cloneBlock, type BlockRecord } from '../../src/core/ipam-store.js';
import { MemoryIpamStore, type StoreOperation } from '../../src/core/memory-store.js';

const record = (prefix: string, node = 'n1'): BlockRecord => ({
  prefix,
  subnet: 's',
  node,
  claimedAt: 5,
  allocations: { '100.64.0.1': { containerId: 'c', ifName: 'eth0', allocatedAt: 6 } },
  released: { '100.64.0.2': 7 },
  emptySince: 8,
});

t.test('create, get, update and delete are compare-and-swap by version', async (t) => {
  const store = new MemoryIpamStore();
  t.ok(await store.createBlock(record('100.64.0.0/28')));
  t.notOk(await store.createBlock(record('100.64.0.0/28', 'n2')), 'an existing key is not overwritten');
  const v1 = (await store.getBlock('100.64.0.0/28'))!;
  t.equal(v1.record.node, 'n1');
  t.ok(await store.updateBlock({ ...v1.record, node: 'n3' }, v1.version));
  t.notOk(await store.updateBlock({ ...v1.record, node: 'n4' }, v1.version), 'the version moved');
  const v2 = (await store.getBlock('100.64.0.0/28'))!;
  t.not(v2.version, v1.version);
  t.notOk(await store.deleteBlock('100.64.0.0/28', v1.version), 'stale delete');
  t.ok(await store.deleteBlock('100.64.0.0/28', v2.version));
  t.equal(await store.getBlock('100.64.0.0/28'), undefined);
  t.notOk(await store.updateBlock(v2.record, v2.version), 'update of a deleted key');
  t.notOk(await store.deleteBlock('100.64.0.0/28', v2.version), 'delete of a deleted key');
  t.ok(await store.createBlock(record('100.64.0.0/28')));
  const v3 = (await store.getBlock('100.64.0.0/28'))!;
  t.not(v3.version, v2.version, 'a re-created key never gets an old version back');
  t.not(v3.version, v1.version);
  t.equal(store.writes, 4, 'create, update, delete, create');
});

t.test('reads and writes copy: callers cannot change stored state', async (t) => {
  const mine = record('100.64.0.0/28');
  const store = new MemoryIpamStore({ blocks: [mine] });
  mine.allocations['100.64.0.3'] = { containerId: 'x', ifName: 'eth0', allocatedAt: 0 };
  mine.released['100.64.0.4'] = 1;
  const got = (await store.listBlocks())[0]!;
  t.same(got.record, record('100.64.0.0/28'), 'the record given to the constructor was copied');
  got.record.allocations['100.64.0.1']!.containerId = 'changed';
  got.record.released['100.64.0.9'] = 1;
  const again = (await store.getBlock('100.64.0.0/28'))!;
  t.same(again.record, record('100.64.0.0/28'), 'a returned record was a copy');
  const update = cloneBlock(again.record);
  t.ok(await store.updateBlock(update, again.version));
  update.node = 'changed';
  t.equal(store.snapshot()[0]?.node, 'n1', 'a written record was copied');
  store.snapshot()[0]!.node = 'changed';
  t.equal(store.snapshot()[0]?.node, 'n1', 'snapshots are copies');
});

t.test('cloneBlock keeps an absent emptySince absent', async (t) => {
  const r = record('100.64.0.0/28');
  delete r.emptySince;
  t.notOk('emptySince' in cloneBlock(r));
  t.same(JSON.parse(JSON.stringify(cloneBlock(r))), r, 'JSON round trip');
});

t.test('the hook sees every operation, can lose a CAS, delay or fail', async (t) => {
  const seen: Array<[StoreOperation, string | undefined]> = [];
  let mode: 'pass' | 'lose' | 'throw' = 'pass';
  const store = new MemoryIpamStore({
    hook: async (op, prefix) => {
      seen.push([op, prefix]);
      await Promise.resolve();
      if (mode === 'throw') throw new Error('store unreachable');
      return mode === 'lose' ? 'lose' : undefined;
    },
  });
  t.ok(await store.createBlock(record('100.64.0.0/28')));
  const v = (await store.getBlock('100.64.0.0/28'))!;
  mode = 'lose';
  t.notOk(await store.createBlock(record('100.64.0.16/28')), 'lost create');
  t.notOk(await store.updateBlock(v.record, v.version), 'lost update');
  t.notOk(await store.deleteBlock(v.record.prefix, v.version), 'lost delete');
  t.equal((await store.listBlocks()).length, 1, 'reads are unaffected');
  mode = 'throw';
  await t.rejects(store.listBlocks(), /unreachable/);
  t.same(
    seen.map(([op]) => op),
    ['create', 'get', 'create', 'update', 'delete', 'list', 'list'],
  );
  t.same(seen[1], ['get', '100.64.0.0/28']);
  t.same(seen[5], ['list', undefined]);
  t.equal(store.writes, 1, 'nothing lost was written');
});
