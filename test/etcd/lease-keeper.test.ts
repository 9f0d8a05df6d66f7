import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connectEtcd } from '../../src/etcd/client.js';
import { LeaseKeeper, hex } from '../../src/etcd/lease-keeper.js';
import { startEtcd } from '../../lab/etcd.js';
import { delay } from '../../lab/pids.js';

const log = pino({ level: 'silent' });

t.test('lease keeper against a real etcd', async (t) => {
  const etcd = await startEtcd(t);
  const dir = mkdtempSync(join(tmpdir(), 'trellis-lease-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());
  const stateFile = join(dir, 'lease.json');

  t.test('a restart within the TTL re-attaches to the same lease', async (t) => {
    const first = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    const a = await first.start();
    t.equal(a.reattached, false, 'first start grants');
    await client.put('/t/leased').value('x').lease(a.id).exec();
    first.stop();
    await delay(1500);
    const second = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    const b = await second.start();
    t.equal(b.reattached, true, 'second start re-attaches');
    t.equal(b.id, a.id, 'same lease id');
    await delay(3500); // longer than the TTL: only keepalives keep the key
    t.equal(await client.get('/t/leased').string(), 'x', 'key survived the restart and one TTL');
    const leases = await etcd.etcdctl(['lease', 'list']);
    t.match(leases, hex(a.id), 'etcdctl lists the lease in hex');
    second.stop();
  });

  t.test('stop() does not revoke: keys expire with the TTL', async (t) => {
    const k = new LeaseKeeper(client, { ttlSeconds: 2, log });
    const { id } = await k.start();
    await client.put('/t/expiring').value('y').lease(id).exec();
    k.stop();
    t.equal(await client.get('/t/expiring').string(), 'y', 'still there right after stop');
    const started = Date.now();
    while ((await client.get('/t/expiring').string()) !== null) await delay(100);
    const gone = Date.now() - started;
    t.ok(gone <= 4000, `gone within TTL + margin (${gone} ms)`);
  });

  t.test('a revoked lease is replaced and reported', async (t) => {
    const k = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    const { id } = await k.start();
    const granted: Array<[string, boolean]> = [];
    const lost: string[] = [];
    k.on('granted', (newId, reattached) => granted.push([newId, reattached]));
    k.on('lost', (why) => lost.push(why));
    await etcd.etcdctl(['lease', 'revoke', hex(id)]);
    await k.tick();
    t.equal(lost.length, 1, 'lost emitted once');
    t.match(lost[0], /expired/);
    t.equal(granted.length, 1, 'a new lease was granted');
    t.not(granted[0]?.[0], id, 'with a new id');
    t.equal(granted[0]?.[1], false, 'not a re-attach');
    t.equal(k.state, 'alive');
    t.equal(k.id, granted[0]?.[0]);
    k.stop();
    // the state file now names the new lease
    const again = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    const r = await again.start();
    t.equal(r.id, granted[0]?.[0], 'restart re-attaches to the replacement');
    t.equal(r.reattached, true);
    await client.put('/t/replacement').value('w').lease(r.id).exec();
    await again.revoke();
    t.equal(await client.get('/t/replacement').string(), null, 'revoke() deletes the keys at once');
  });

  t.test('the state file names the owner; another owner never re-attaches or revokes', async (t) => {
    const file = join(dir, 'owned.json');
    const a = { node: 'node-a', prefix: '/trellis' };
    const first = new LeaseKeeper(client, { ttlSeconds: 3, stateFile: file, log, owner: a });
    const { id } = await first.start();
    first.stop();
    t.same(JSON.parse(readFileSync(file, 'utf8')), { id, ttlSeconds: 3, node: 'node-a', prefix: '/trellis' });
    const b = { node: 'node-b', prefix: '/trellis' };
    const other = new LeaseKeeper(client, { ttlSeconds: 3, stateFile: file, log, owner: b });
    await t.rejects(other.revokeOwned(b), { code: 'E_CONFIG', message: /holds the lease of node node-a under prefix \/trellis, not of node node-b/ });
    await t.rejects(other.revokeOwned({ node: 'node-a', prefix: '/elsewhere' }), { code: 'E_CONFIG' });
    t.ok(Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL) > 0, 'the refused lease is alive');
    const started = await other.start();
    t.equal(started.reattached, false, 'another node does not re-attach to it');
    t.not(started.id, id);
    other.stop();
    t.equal(JSON.parse(readFileSync(file, 'utf8')).node, 'node-b', 'the file now names its own lease and owner');
    await client.leaseClient.leaseRevoke({ ID: id });
    await other.revokeOwned(b);
    t.equal(Number((await client.leaseClient.leaseTimeToLive({ ID: started.id })).TTL), -1, 'its owner revokes it');

    // A file written before owners were recorded: re-attached to, then rewritten with the owner; never revoked as is.
    const legacy = new LeaseKeeper(client, { ttlSeconds: 3, stateFile: file, log });
    const old = await legacy.start();
    legacy.stop();
    await t.rejects(new LeaseKeeper(client, { ttlSeconds: 3, stateFile: file, log, owner: a }).revokeOwned(a), { message: /without the node it belongs to/ });
    const upgraded = new LeaseKeeper(client, { ttlSeconds: 3, stateFile: file, log, owner: a });
    const r = await upgraded.start();
    t.same([r.id, r.reattached], [old.id, true], 'the older file is re-attached to');
    t.equal(JSON.parse(readFileSync(file, 'utf8')).node, 'node-a', 'and now names its owner');
    await upgraded.revokeOwned(a);
  });

  t.test('etcd down for less than the TTL: same lease afterwards', async (t) => {
    const k = new LeaseKeeper(client, { ttlSeconds: 6, log });
    const { id } = await k.start();
    await client.put('/t/outage').value('z').lease(id).exec();
    const states: string[] = [];
    k.on('state', (s) => states.push(s));
    await etcd.stop();
    await k.tick();
    t.equal(k.state, 'unconfirmed', 'keepalive failure while etcd is down');
    await etcd.start();
    await k.tick();
    t.equal(k.state, 'alive');
    t.equal(k.id, id, 'lease kept');
    t.equal(await client.get('/t/outage').string(), 'z', 'leased key survived the outage');
    t.same(states, ['unconfirmed', 'alive']);
    k.stop();
  });

  t.test('bad TTL is a config error', async (t) => {
    t.throws(() => new LeaseKeeper(client, { ttlSeconds: 1, log }), /whole number of seconds >= 2/);
  });
});
