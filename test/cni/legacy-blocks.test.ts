// A cluster in the middle of a rolling upgrade, at scale: 300 full /26 blocks of
// other nodes still in the old layout (about 5 MB under blocks/, more than one
// etcd range answer can carry). trellisd starts (its watch of blocks/ lists in
// pages), and a real CNI ADD through the plugin gets an address from the one free
// block of the crowded subnet, writing one small record; DEL frees it.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { contains, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { needRoot } from '../../lab/netns.js';
import { cniNode, etcdAllocations, invoke } from '../../lab/cni-harness.js';
import { fullLegacyBlock } from '../../lab/legacy-blocks.js';

const skip = needRoot();

/** 300 /26 blocks: 63 of subnet-a1's 64 (100.96.0.0/20), all of subnet-a2 and subnet-b1, the rest outside any subnet. */
function legacyBlocks(): Array<{ prefix: string; subnet: string }> {
  const out: Array<{ prefix: string; subnet: string }> = [];
  for (let i = 0; i < 301 && out.length < 300; i++) {
    if (i === 40) continue; // the one block of subnet-a1 left free: 100.96.10.0/26
    const subnet = i < 64 ? 'subnet-a1' : i < 128 ? 'subnet-a2' : i < 192 ? 'subnet-b1' : 'subnet-none';
    out.push({ prefix: `100.96.${Math.floor(i / 4)}.${(i % 4) * 64}/26`, subnet });
  }
  return out;
}

t.test('CNI ADD with 300 full old-layout blocks of other nodes in etcd', { skip }, async (t) => {
  const blocks = legacyBlocks();
  const node = await cniNode(t, {
    beforeDaemon: async (endpoint) => {
      const client = new Etcd3({ hosts: endpoint });
      try {
        for (const [i, b] of blocks.entries()) {
          await client.put(`/trellis/v1/blocks/${b.prefix.replace('/', '-')}`).value(fullLegacyBlock(b.prefix, `old-${i % 40}`, b.subnet)).exec();
        }
        const whole = await client.getAll().prefix('/trellis/v1/blocks/').exec().then(() => 'fits', (err: Error) => err.message);
        t.match(whole, /RESOURCE_EXHAUSTED|larger than max/, 'blocks/ does not fit one range answer');
      } finally {
        client.close();
      }
    },
  });
  const { lab, host, path, socket } = node;
  const pod = await lab.ns('pod-legacy');
  const att = { hostNs: host.name, containerId: 'legacy01', netns: `/var/run/netns/${pod.name}`, path };
  const config = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket };
  const add = await invoke({ command: 'ADD', ...att, config });
  t.equal(add.code, 0, add.stdout + add.stderr);
  const address = (add.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
  t.ok(contains(parsePrefix('100.96.10.0/26'), parseAddress(address)), `${address} is in the one free block of subnet-a1`);
  t.match((await etcdAllocations(node.etcd.endpoint)).get(address), { containerId: 'legacy01' }, 'recorded under ipam/');
  const client = new Etcd3({ hosts: node.etcd.endpoint });
  t.teardown(() => client.close());
  const record = await client.get(`/trellis/v1/ipam/cni-node/100.96.10.0-26/${address}`).exec();
  t.ok(record.kvs[0]!.value.length < 400, `the ADD wrote ${record.kvs[0]!.value.length} bytes`);
  const claim = await client.get('/trellis/v1/blocks/100.96.10.0-26').exec();
  t.ok(claim.kvs[0]!.value.length < 300, `the claim is ${claim.kvs[0]!.value.length} bytes`);
  const del = await invoke({ command: 'DEL', ...att, config });
  t.equal(del.code, 0, del.stdout);
  t.notOk((await etcdAllocations(node.etcd.endpoint)).has(address), 'released');
  for (const b of blocks.slice(0, 3)) {
    t.match(JSON.parse((await client.get(`/trellis/v1/blocks/${b.prefix.replace('/', '-')}`).string())!), { allocations: {} }, `${b.prefix} of another node is left as it was`);
  }
});
