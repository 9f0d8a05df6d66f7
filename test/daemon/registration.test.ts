// trellisd against a real etcd: registration, block claims, advertisements
// under the hold-time lease, restarts, SIGKILL, etcd restarts, many nodes.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../../lab/etcd.js';
import { daemon, seedTopology, type Daemon } from '../../lab/trellis.js';
import { delay, until } from '../../lab/pids.js';
import { parsePrefix, overlaps } from '../../src/core/cidr.js';

interface KV {
  key: string;
  value: unknown;
}

async function getPrefix(etcd: EtcdServer, prefix: string): Promise<KV[]> {
  const out = await etcd.etcdctl(['get', '--prefix', prefix, '-w', 'json']);
  const parsed = JSON.parse(out) as { kvs?: Array<{ key: string; value: string }> };
  return (parsed.kvs ?? []).map((kv) => ({
    key: Buffer.from(kv.key, 'base64').toString(),
    value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) as unknown,
  }));
}


/** Number of overlapping pairs among the block records' prefixes. */
function overlapsAmong(blocks: KV[]): number {
  const prefixes = blocks.map((b) => parsePrefix((b.value as { prefix: string }).prefix));
  let clash = 0;
  for (let i = 0; i < prefixes.length; i++) {
    for (let j = i + 1; j < prefixes.length; j++) if (overlaps(prefixes[i]!, prefixes[j]!)) clash++;
  }
  return clash;
}

t.test('two daemons register, claim, advertise; SIGKILL and restart', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const a = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-a', hostIP: '198.18.1.10', holdTime: '3s' });
  const b = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-b', hostIP: '198.18.1.11', holdTime: '3s' });
  await Promise.all([a.start(), b.start()]);

  const routes = await getPrefix(etcd, '/trellis/v1/routes/');
  t.same(
    routes.map((r) => r.key),
    ['/trellis/v1/routes/subnet-a1/node-a', '/trellis/v1/routes/subnet-a1/node-b'],
    'etcdctl lists both advertisements',
  );
  for (const r of routes) {
    t.match(r.value, { schemaVersion: 1, subnet: 'subnet-a1', prefixes: [/^100\.96\./] }, `${r.key} is readable JSON`);
  }
  const blocks = await getPrefix(etcd, '/trellis/v1/blocks/');
  t.equal(blocks.length, 2, 'one block each');
  t.equal(overlapsAmong(blocks), 0, `${blocks.length} blocks, pairwise disjoint`);
  t.same(new Set(blocks.map((b) => (b.value as { node: string }).node)), new Set(['node-a', 'node-b']));

  t.test('a restart within the hold time keeps the lease: watchers see no delete', async (t) => {
    const client = new Etcd3({ hosts: etcd.endpoint });
    t.teardown(() => client.close());
    const deletes: string[] = [];
    const watcher = await client.watch().prefix('/trellis/v1/').create();
    watcher.on('delete', (kv) => deletes.push(kv.key.toString()));
    t.teardown(() => watcher.cancel());
    for (let i = 0; i < 3; i++) {
      await a.stop();
      await a.start();
      t.match(a.logs, /kept the lease of the previous run/);
    }
    await delay(3500); // one more hold time: an orphaned lease would expire now
    t.same(deletes, [], 'no key was deleted across three restarts');
    const keys = (await getPrefix(etcd, '/trellis/v1/routes/')).map((r) => r.key);
    t.ok(keys.includes('/trellis/v1/routes/subnet-a1/node-a'), 'advertisement still present');
  });

  t.test('SIGKILL: node record and advertisement vanish within hold time + 1 s, blocks stay', async (t) => {
    b.kill();
    const killedAt = Date.now();
    await until('node-b records gone', async () => {
      const keys = [...(await getPrefix(etcd, '/trellis/v1/routes/')), ...(await getPrefix(etcd, '/trellis/v1/nodes/'))].map((k) => k.key);
      return !keys.some((k) => k.endsWith('/node-b'));
    });
    const took = Date.now() - killedAt;
    t.ok(took <= 4000, `gone after ${took} ms (hold time 3 s)`);
    const blocksNow = await getPrefix(etcd, '/trellis/v1/blocks/');
    t.ok(blocksNow.some((x) => (x.value as { node: string }).node === 'node-b'), 'node-b keeps its block claim');
    await b.start();
    const again = await getPrefix(etcd, '/trellis/v1/blocks/');
    t.equal(again.filter((x) => (x.value as { node: string }).node === 'node-b').length, 1, 'restarted node-b reuses its block');
  });

  t.test('etcd restarted under running daemons: re-publish, no duplicate claims', async (t) => {
    await etcd.stop();
    await delay(1000);
    await etcd.start();
    await until('both advertisements present', async () => (await getPrefix(etcd, '/trellis/v1/routes/')).length === 2);
    await delay(4000); // past a hold time: keys must survive on kept or re-granted leases
    t.equal((await getPrefix(etcd, '/trellis/v1/routes/')).length, 2, 'both advertisements still there');
    t.equal((await getPrefix(etcd, '/trellis/v1/nodes/')).length, 2, 'both node records still there');
    const blocksNow = await getPrefix(etcd, '/trellis/v1/blocks/');
    t.equal(blocksNow.length, 2, 'no extra claims');
    t.equal(overlapsAmong(blocksNow), 0, `${blocksNow.length} blocks, pairwise disjoint`);
    t.ok(a.running && b.running, 'no daemon crashed');
  });
});

t.test('20 daemons in one subnet started at once claim 20 disjoint blocks', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const daemons: Daemon[] = [];
  for (let i = 0; i < 20; i++) {
    daemons.push(daemon(t, { etcd: etcd.endpoint, nodeName: `n${i}`, hostIP: `198.18.2.${20 + i}`, holdTime: '5s' }));
  }
  await Promise.all(daemons.map((d) => d.start('cluster view synced', 60_000)));
  const blocks = await getPrefix(etcd, '/trellis/v1/blocks/');
  t.equal(blocks.length, 20, '20 blocks');
  t.equal(new Set(blocks.map((b) => (b.value as { node: string }).node)).size, 20, 'one per node');
  t.equal(overlapsAmong(blocks), 0, `${blocks.length} blocks, pairwise disjoint`);
  const routes = await getPrefix(etcd, '/trellis/v1/routes/subnet-a2/');
  t.equal(routes.length, 20, '20 advertisements');
});
