// A running trellisd whose lease is revoked from outside (as an operator's
// `etcdctl lease revoke` or an etcd that lost it would): etcd deletes the node
// record and the advertisement at once; the daemon must notice on its next
// keepalive, take a new lease and put both back under it within hold time +
// a margin, keep them alive past another hold time, and leave its block
// claims (unleased records) exactly as they were.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd } from '../../lab/etcd.js';
import { daemon, seedTopology } from '../../lab/trellis.js';
import { delay } from '../../lab/pids.js';
import { hex } from '../../src/etcd/lease-keeper.js';

const NODE_KEY = '/trellis/v1/nodes/node-l';
const ROUTE_KEY = '/trellis/v1/routes/subnet-a1/node-l';

t.test('lease revoked under a running daemon: node record and advertisement come back under a new lease', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-l', hostIP: '198.18.1.50', holdTime: '3s' });
  await d.start();
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());

  /** Key → { lease, value } of the node's two leased keys (undefined when absent). */
  const leased = async (): Promise<Map<string, { lease: string; value: string } | undefined>> => {
    const out = new Map<string, { lease: string; value: string } | undefined>();
    for (const key of [NODE_KEY, ROUTE_KEY]) {
      const res = await client.get(key).exec();
      const kv = res.kvs[0];
      out.set(key, kv === undefined ? undefined : { lease: String(kv.lease), value: kv.value.toString() });
    }
    return out;
  };
  const blocks = async (): Promise<Array<[string, string, string]>> =>
    (await client.getAll().prefix('/trellis/v1/blocks/').exec()).kvs.map((kv) => [kv.key.toString(), kv.value.toString(), String(kv.mod_revision)]);

  const before = await leased();
  const oldLease = before.get(NODE_KEY)?.lease;
  t.ok(oldLease !== undefined && oldLease !== '0', `node record is leased (${oldLease})`);
  t.equal(before.get(ROUTE_KEY)?.lease, oldLease, 'advertisement under the same lease');
  const oldAdvert = JSON.parse(before.get(ROUTE_KEY)?.value ?? '{}') as { prefixes?: string[] };
  t.match(oldAdvert.prefixes, [/^100\.96\./], 'advertisement lists the block');
  const blocksBefore = await blocks();
  t.equal(blocksBefore.length, 1, 'one block claimed');

  const deleted: string[] = [];
  const watcher = await client.watch().prefix('/trellis/v1/').create();
  t.teardown(() => watcher.cancel());
  const put: string[] = [];
  watcher.on('delete', (kv) => deleted.push(kv.key.toString()));
  watcher.on('put', (kv) => put.push(kv.key.toString()));

  await etcd.etcdctl(['lease', 'revoke', hex(oldLease as string)]);
  const revokedAt = Date.now();
  let after = await leased();
  while ([...after.values()].some((v) => v === undefined)) {
    if (Date.now() - revokedAt > 6_000) {
      t.fail(`not re-published within 6 s:\n${d.logs.slice(-3000)}`);
      return;
    }
    await delay(50);
    after = await leased();
  }
  const took = Date.now() - revokedAt;
  t.ok(took <= 4_000, `both keys back after ${took} ms (hold time 3 s)`);
  const newLease = after.get(NODE_KEY)?.lease;
  t.not(newLease, oldLease, `node record under a new lease (${newLease})`);
  t.not(newLease, '0', 'and it is a lease, not a plain key');
  t.equal(after.get(ROUTE_KEY)?.lease, newLease, 'advertisement under the same new lease');
  // Events arrive in revision order: once the re-puts are seen, so are the deletes before them.
  while (!(put.includes(NODE_KEY) && put.includes(ROUTE_KEY)) && Date.now() - revokedAt < 10_000) await delay(20);
  t.same(deleted.sort(), [NODE_KEY, ROUTE_KEY].sort(), 'watchers saw both keys deleted by the revoke, and nothing else');
  t.equal(after.get(NODE_KEY)?.value, before.get(NODE_KEY)?.value, 'node record content unchanged');
  t.same(JSON.parse(after.get(ROUTE_KEY)?.value ?? '{}'), oldAdvert, 'advertisement content unchanged');
  t.match(d.logs, /lease lost/, 'the daemon logged the loss');
  t.same(JSON.parse(readFileSync(join(d.stateDir, 'lease.json'), 'utf8')), { id: newLease, ttlSeconds: 3, node: d.options.nodeName, prefix: '/trellis' }, 'state file names the new lease and its owner');

  await delay(4_000); // past one more hold time: the new lease must be kept alive
  const later = await leased();
  t.equal(later.get(NODE_KEY)?.lease, newLease, 'node record still there under the new lease one hold time later');
  t.equal(later.get(ROUTE_KEY)?.lease, newLease, 'advertisement too');
  t.same(await blocks(), blocksBefore, 'block claims untouched: same keys, values and revisions');
  t.ok(d.running, 'the daemon did not exit');
});
