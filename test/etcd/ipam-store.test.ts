// The IPAM store against a real etcd: an ADD or DEL is one small write (the etcd
// revision moves by exactly one, nothing under blocks/ changes); claiming a block
// is one write too; two allocators of one node never hand out one address twice;
// 300 full old-layout blocks of other nodes (~5 MB under blocks/) neither slow
// the node down into failure nor get read per allocation; migration rewrites the
// node's own old-layout claims and leaves the others alone; a block is given back
// only if none of its records changed since they were read.
import t from 'tap';
import pino from 'pino';
import { parsePrefix } from '../../src/core/cidr.js';
import { Ipam } from '../../src/core/ipam.js';
import type { Subnet, Topology } from '../../src/core/topology.js';
import { readClaims, etcdClaims } from '../../src/etcd/claim-reader.js';
import { connectEtcd } from '../../src/etcd/client.js';
import { EtcdIpamStore } from '../../src/etcd/ipam-store.js';
import { Keys } from '../../src/state/keys.js';
import { startEtcd } from '../../lab/etcd.js';
import { fullLegacyBlock } from '../../lab/legacy-blocks.js';

const P = parsePrefix;
const log = pino({ level: 'silent' });
const keys = new Keys('/trellis');
// subnet-a: 100.64.0.0/18 for the nodes under test; subnet-x: 100.65.0.0/16 full of old-layout blocks of others.
const subA: Subnet = { id: 'subnet-a', zone: 'z1', cidr: P('198.18.0.0/24'), podPrefix: P('100.64.0.0/18'), podPrefixExplicit: true, routeTable: undefined };
const subX: Subnet = { id: 'subnet-x', zone: 'z1', cidr: P('198.18.1.0/24'), podPrefix: P('100.65.0.0/16'), podPrefixExplicit: true, routeTable: undefined };
const topology: Topology = { network: P('100.64.0.0/10'), blockSize: 26, nodeHomeSize: 24, subnetSize: 18, zones: [{ name: 'z1', subnets: [subA, subX] }] };

t.test('IPAM records in etcd', async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  const store = new EtcdIpamStore(client, keys, log);
  const revision = async (): Promise<bigint> => BigInt((await client.get('/none').exec()).header.revision);
  const ipam = (node: string, extra: Partial<ConstructorParameters<typeof Ipam>[0]> = {}): Ipam =>
    new Ipam({ topology, subnet: subA, node, store, claims: etcdClaims(client, keys), clock: Date.now, addressRestMs: 0, ...extra });

  // 300 full /26 blocks of other nodes in the old layout.
  for (let i = 0; i < 300; i++) {
    const prefix = `100.65.${Math.floor(i / 4)}.${(i % 4) * 64}/26`;
    await client.put(keys.block(prefix)).value(fullLegacyBlock(prefix, `old-${i % 30}`, 'subnet-x')).exec();
  }
  const all = await client.getAll().prefix(keys.blocksPrefix()).exec().catch((err: Error) => err);
  t.match(String(all), /RESOURCE_EXHAUSTED|larger than max/, 'blocks/ no longer fits in one range answer');

  t.test('the claims of old-layout blocks are read in pages, as plain claims', async (t) => {
    const claims = await readClaims(client, keys);
    t.equal(claims.length, 300);
    t.ok(claims.every((c) => c.node.startsWith('old-')));
  });

  t.test('ADD and DEL each write one small record; claiming a block is one write', async (t) => {
    const n = ipam('node-a');
    let before = await revision();
    const first = await n.allocate({ containerId: 'c-0', ifName: 'eth0', podNamespace: 'default', podName: 'web-0', network: 'trellis' });
    t.equal((await revision()) - before, 1n, 'a first ADD claims a block and writes its address in one transaction');
    const claim = (await client.get(keys.block(first.block)).exec()).kvs[0]!;
    t.ok(claim.value.length < 300, `claim record is ${claim.value.length} bytes`);
    t.same(JSON.parse(claim.value.toString()).allocations, undefined, 'the claim holds no address');
    for (let i = 1; i <= 10; i++) {
      before = await revision();
      const got = await n.allocate({ containerId: `c-${i}`, ifName: 'eth0', podNamespace: 'default', podName: `web-${i}`, network: 'trellis' });
      t.equal((await revision()) - before, 1n, `ADD ${i}: one write`);
      const kv = (await client.get(keys.podAddress('node-a', got.block, got.address)).exec()).kvs[0]!;
      t.equal(String(kv.mod_revision), String(before + 1n), 'the write is the address record');
      t.ok(kv.value.length < 400, `ADD ${i}: ${kv.value.length} bytes written`);
    }
    t.equal(String((await client.get(keys.block(first.block)).exec()).kvs[0]!.mod_revision), String(claim.mod_revision), 'the claim is not rewritten by ADDs');
    const held = (await n.listAllocations()).find((a) => a.allocation.containerId === 'c-3')?.address;
    before = await revision();
    t.equal(await n.release('c-3', 'eth0'), held);
    t.equal((await revision()) - before, 1n, 'DEL: one write');
    before = await revision();
    t.equal(await n.release('c-3', 'eth0'), undefined, 'a second DEL finds nothing');
    t.equal(await revision(), before, 'and writes nothing');
    const again = await n.allocate({ containerId: 'c-1', ifName: 'eth0' });
    t.equal(await revision(), before, 'a repeated ADD writes nothing');
    t.ok(again.address);
  });

  t.test('50 concurrent allocations from two allocators of one node: 50 distinct addresses', async (t) => {
    const a = ipam('node-b');
    const b = ipam('node-b');
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).allocate({ containerId: `burst-${i}`, ifName: 'eth0' })));
    t.equal(new Set(got.map((r) => r.address)).size, 50, 'no address handed out twice');
    const stored = (await store.listAddresses('node-b')).addresses.filter((x) => x.record.allocation !== undefined);
    t.equal(stored.length, 50, '50 records');
    t.same(new Set(stored.map((x) => x.record.allocation!.containerId)), new Set(got.map((_, i) => `burst-${i}`)), 'one per container');
    t.same(new Set(stored.map((x) => x.record.address)), new Set(got.map((r) => r.address)), 'the addresses handed out');
  });

  t.test('migration: own old-layout claims become address records, foreign ones stay as they are', async (t) => {
    const mine = '100.64.32.0/26';
    await client.put(keys.block(mine)).value(fullLegacyBlock(mine, 'node-m', 'subnet-a')).exec();
    const foreign = '100.65.200.0/26';
    const foreignText = fullLegacyBlock(foreign, 'old-x', 'subnet-x');
    await client.put(keys.block(foreign)).value(foreignText).exec();
    const n = ipam('node-m');
    await n.load();
    const records = (await store.listAddresses('node-m')).addresses;
    t.equal(records.length, 64, 'every old allocation is a record');
    const claim = await store.getClaim(mine);
    t.equal(claim?.legacy, undefined, 'the claim holds no address any more');
    t.equal((await client.get(keys.block(foreign)).string()), foreignText, 'the foreign old-layout block is untouched');
    const next = await n.allocate({ containerId: 'after', ifName: 'eth0' });
    t.not(next.block, mine, 'the full migrated block hands out nothing: a new block is claimed');
    t.equal((await n.listAllocations()).length, 65);
  });

  t.test('a block is given back only if none of its records moved since they were read', async (t) => {
    const n = ipam('node-r', { blockGraceMs: 0 });
    const blocks = [await n.claimBlock(), await n.claimBlock()];
    const claim = (await store.getClaim(blocks[1]!))!;
    const read = await store.listBlockAddresses('node-r', blocks[1]!);
    t.ok(await store.createAddress({ address: blocks[1]!.replace(/\/26$/, ''), block: blocks[1]!, node: 'node-r', releasedAt: 1 }, claim.version));
    t.notOk(await store.releaseBlock('node-r', blocks[1]!, claim.version, read.revision), 'a record written after the read');
    const fresh = await store.listBlockAddresses('node-r', blocks[1]!);
    t.ok(await store.releaseBlock('node-r', blocks[1]!, claim.version, fresh.revision));
    t.same((await store.listBlockAddresses('node-r', blocks[1]!)).addresses, [], 'its records went with the claim');
    t.equal(await store.getClaim(blocks[1]!), undefined);
    t.same(await ipam('node-r').releaseNode(), [blocks[0]]);
    t.same((await client.getAll().prefix(keys.ipamPrefix('node-r')).keys()), []);
  });
});
