import t from 'tap';
import { assembleBlock, cloneBlock, type AddressRecord, type BlockRecord, type ClaimRecord } from '../../src/core/ipam-store.js';
import { MemoryIpamStore, type StoreOperation } from '../../src/core/memory-store.js';

const claim = (prefix: string, node = 'n1'): ClaimRecord => ({ prefix, subnet: 's', node, claimedAt: 5 });
const record = (prefix: string, node = 'n1'): BlockRecord => ({
  ...claim(prefix, node),
  allocations: { '100.64.0.1': { containerId: 'c', ifName: 'eth0', allocatedAt: 6 } },
  released: { '100.64.0.2': 7 },
});
const addr = (address: string, extra: Partial<AddressRecord> = {}): AddressRecord => ({ address, block: '100.64.0.0/28', node: 'n1', ...extra });

t.test('claims: create-if-absent; address writes guarded by their own version and the claim version', async (t) => {
  const store = new MemoryIpamStore();
  const v1 = await store.createClaim(claim('100.64.0.0/28'));
  t.ok(v1);
  t.equal(await store.createClaim(claim('100.64.0.0/28', 'n2')), undefined, 'an existing claim is not overwritten');
  t.same((await store.getClaim('100.64.0.0/28'))?.claim.node, 'n1');
  const a1 = await store.createAddress(addr('100.64.0.1', { allocation: { containerId: 'c', ifName: 'eth0', allocatedAt: 1 } }), v1!);
  t.ok(a1);
  t.equal(await store.createAddress(addr('100.64.0.1', { releasedAt: 2 }), v1!), undefined, 'create of an existing address');
  t.equal(await store.createAddress(addr('100.64.0.2', { releasedAt: 2 }), '999'), undefined, 'stale claim version');
  const a2 = await store.updateAddress(addr('100.64.0.1', { releasedAt: 3 }), a1!, v1!);
  t.ok(a2);
  t.equal(await store.updateAddress(addr('100.64.0.1', { releasedAt: 4 }), a1!, v1!), undefined, 'the version moved');
  const listed = await store.listAddresses('n1');
  t.same(listed.addresses, [{ record: addr('100.64.0.1', { releasedAt: 3 }), version: a2 }]);
  t.equal(listed.revision, String(store.writes));
  t.same((await store.listAddresses('n2')).addresses, [], 'per node');
  t.equal(await store.releaseBlock('n2', '100.64.0.0/28', v1!, listed.revision), false, 'not the owner');
  t.equal(await store.releaseBlock('n1', '100.64.0.0/28', v1!, String(Number(listed.revision) - 2)), false, 'a record written after the read');
  t.equal(await store.releaseBlock('n1', '100.64.0.0/28', v1!, listed.revision), true);
  t.equal(await store.getClaim('100.64.0.0/28'), undefined);
  t.same(store.addressRecords(), [], 'its address records went with it');
  const v3 = await store.createClaim(claim('100.64.0.0/28'), addr('100.64.0.5', { releasedAt: 1 }));
  t.not(v3, v1, 'a re-created key never gets an old version back');
  t.same((await store.listBlockAddresses('n1', '100.64.0.0/28')).addresses, [{ record: addr('100.64.0.5', { releasedAt: 1 }), version: v3 }], 'claim and first address in one write');
});

t.test('a new claim clears address records its node left in the block', async (t) => {
  const store = new MemoryIpamStore({ blocks: [record('100.64.0.0/28')] });
  const v = (await store.getClaim('100.64.0.0/28'))!;
  await store.releaseBlock('n1', '100.64.0.0/28', v.version, '0').then((ok) => t.notOk(ok, 'records newer than revision 0'));
  // Left-overs of a node (e.g. from an older release) are gone when the node claims the block again.
  const other = new MemoryIpamStore({ blocks: [record('100.64.0.16/28')] });
  t.ok(await other.createClaim(claim('100.64.0.0/28')));
  t.equal(other.addressRecords().length, 2);
});

t.test('old-layout claims keep their addresses inside; the snapshot shows them', async (t) => {
  const store = new MemoryIpamStore({ legacyBlocks: [record('100.64.0.0/28')] });
  const got = (await store.getClaim('100.64.0.0/28'))!;
  t.same(got.legacy, { allocations: record('100.64.0.0/28').allocations, released: { '100.64.0.2': 7 } });
  t.ok(store.isLegacy('100.64.0.0/28'));
  t.same(store.snapshot(), [record('100.64.0.0/28')]);
  const v = await store.rewriteClaim(got.claim, got.version);
  t.ok(v);
  t.equal(await store.rewriteClaim(got.claim, got.version), undefined, 'compare-and-swap');
  t.notOk(store.isLegacy('100.64.0.0/28'));
});

t.test('reads and writes copy: callers cannot change stored state', async (t) => {
  const mine = record('100.64.0.0/28');
  const store = new MemoryIpamStore({ blocks: [mine] });
  mine.allocations['100.64.0.3'] = { containerId: 'x', ifName: 'eth0', allocatedAt: 0 };
  const want = assembleBlock(claim('100.64.0.0/28'), [
    addr('100.64.0.1', { allocation: { containerId: 'c', ifName: 'eth0', allocatedAt: 6 } }),
    addr('100.64.0.2', { releasedAt: 7 }),
  ]);
  t.same(store.snapshot(), [want], 'the record given to the constructor was copied');
  const got = (await store.listAddresses('n1')).addresses[0]!;
  got.record.allocation!.containerId = 'changed';
  t.same(store.snapshot(), [want], 'a returned record was a copy');
  const c = (await store.getClaim('100.64.0.0/28'))!;
  const written = addr('100.64.0.9', { releasedAt: 1 });
  t.ok(await store.createAddress(written, c.version));
  written.releasedAt = 99;
  t.equal(store.snapshot()[0]?.released['100.64.0.9'], 1, 'a written record was copied');
  store.snapshot()[0]!.node = 'changed';
  t.equal(store.snapshot()[0]?.node, 'n1', 'snapshots are copies');
});

t.test('assembleBlock: emptySince is the last release (or the claim) while nothing is allocated', async (t) => {
  const c = claim('100.64.0.0/28');
  t.equal(assembleBlock(c, []).emptySince, 5);
  t.equal(assembleBlock(c, [addr('100.64.0.1', { releasedAt: 9 }), addr('100.64.0.2', { releasedAt: 8 })]).emptySince, 9);
  t.notOk('emptySince' in assembleBlock(c, [addr('100.64.0.1', { allocation: { containerId: 'c', ifName: 'e', allocatedAt: 1 } })]));
  t.same(assembleBlock(c, [addr('100.64.0.1', { releasedAt: 9, node: 'n2' })]).released, {}, 'another node’s record is not the block’s');
  const r = record('100.64.0.0/28');
  t.notOk('emptySince' in cloneBlock(r));
  t.same(JSON.parse(JSON.stringify(cloneBlock(r))), r, 'JSON round trip');
});

t.test('the hook sees every operation, can lose a CAS, delay or fail', async (t) => {
  const seen: Array<[StoreOperation, string | undefined]> = [];
  let mode: 'pass' | 'lose' | 'throw' = 'pass';
  const store = new MemoryIpamStore({
    hook: async (op, subject) => {
      seen.push([op, subject]);
      await Promise.resolve();
      if (mode === 'throw') throw new Error('store unreachable');
      return mode === 'lose' ? 'lose' : undefined;
    },
  });
  const v = (await store.createClaim(claim('100.64.0.0/28')))!;
  mode = 'lose';
  t.equal(await store.createClaim(claim('100.64.0.16/28')), undefined, 'lost create');
  t.equal(await store.createAddress(addr('100.64.0.1', { releasedAt: 1 }), v), undefined, 'lost address create');
  t.equal(await store.releaseBlock('n1', '100.64.0.0/28', v, String(store.writes)), false, 'lost release');
  t.equal((await store.claims()).length, 1, 'reads are unaffected');
  mode = 'throw';
  await t.rejects(store.listAddresses('n1'), /unreachable/);
  t.same(
    seen.map(([op]) => op),
    ['createClaim', 'createClaim', 'createAddress', 'releaseBlock', 'claims', 'listAddresses'],
  );
  t.same(seen[2], ['createAddress', '100.64.0.0/28']);
  t.same(seen[5], ['listAddresses', 'n1']);
  t.equal(store.writes, 1, 'nothing lost was written');
});
