// The advertiser election over a real etcd, and the advertiser's write gate:
// states, lowest create revision leads, resign on stop hands over at once,
// standing down hands over and stays out until standUp, a lost lease or a
// deleted candidacy key steps down; a drained node stands down and campaigns
// again once undrained; no EC2 write when not the leader, after the lease is
// lost, or when a fresh read does not confirm the leadership; a pass whose
// read fails keeps the entries Trellis owns in the status.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import type { VpcStep } from '../../src/core/vpc-plan.js';
import { connectEtcd } from '../../src/etcd/client.js';
import { LeaseKeeper } from '../../src/etcd/lease-keeper.js';
import { Keys } from '../../src/state/keys.js';
import type { VpcStatus } from '../../src/gen/trellis/v1/records_pb.js';
import { VpcAdvertiser, type RouteTables } from '../../daemon/vpc/advertiser.js';
import { AdvertiserElection, type ElectionState } from '../../daemon/election.js';
import { ForwarderHealth } from '../../daemon/vpc/health.js';
import type { ClusterState } from '../../daemon/vpc/plan-input.js';
import type { DescribedRoute } from '../../src/core/vpc-table-state.js';
import { startEtcd } from '../../lab/etcd.js';
import { delay } from '../../lab/pids.js';
import { until } from '../../lab/vpc-lab.js';

const log = pino({ level: 'silent' });
const keys = new Keys();

t.test('advertiser election', async (t) => {
  const etcd = await startEtcd(t);
  const client = connectEtcd({ endpoints: [etcd.endpoint] });
  t.teardown(() => client.close());

  const candidate = async (node: string, subnet = 'subnet-a', standDown?: () => boolean): Promise<{ lease: LeaseKeeper; election: AdvertiserElection; states: ElectionState[] }> => {
    const lease = new LeaseKeeper(client, { ttlSeconds: 3, log });
    await lease.start();
    const election = new AdvertiserElection({ client, keys, subnet, node, lease, log, recheckMs: 500, standDown });
    const states: ElectionState[] = [];
    election.on('state', (s) => states.push(s));
    await election.start();
    t.teardown(async () => {
      await election.resign();
      lease.stop();
    });
    return { lease, election, states };
  };

  await t.test('lowest create revision leads; resign hands over at once; a lost lease steps down', async (t) => {
    const a = await candidate('a');
    const b = await candidate('b');
    const c = await candidate('c');
    t.equal(a.election.state, 'leader', 'the first candidate leads');
    t.ok(a.election.isLeader());
    t.same([b.election.state, c.election.state], ['follower', 'follower']);
    t.same([a.election.leader, b.election.leader, c.election.leader], ['a', 'a', 'a'], 'everyone knows the leader');
    t.equal(await client.get(a.election.key as string).string(), 'a', 'the candidacy key holds the node name');
    t.equal((await client.getAll().prefix(keys.advertisersPrefix('subnet-a')).keys()).length, 3);

    const resigned = Date.now();
    await a.election.resign();
    t.same(a.states, ['leader', 'resigning', 'stopped'], 'leader → resigning → stopped');
    t.notOk(a.election.isLeader());
    t.equal(await client.get(`${keys.advertisersPrefix('subnet-a')}${(a.election.key as string).split('/').at(-1)}`).string(), null, 'the key is deleted');
    await until('b leads', () => b.election.isLeader(), 2000, 10);
    t.ok(Date.now() - resigned < 1000, `b leads ${Date.now() - resigned} ms after the resignation, long before the 3 s TTL`);

    await client.leaseClient.leaseRevoke({ ID: b.lease.id as string });
    await b.lease.tick(); // the keepalive finds the lease gone
    t.notOk(b.election.isLeader(), 'a lost lease stops the leader at once');
    t.equal(b.states.at(-1), 'follower');
    await until('c leads', () => c.election.isLeader(), 3000, 10);
    await until('b campaigns again under its new lease', async () => (await client.get(b.election.key as string).string()) === 'b', 3000, 50);
    t.equal(b.election.state, 'follower', 'behind c');

    await client.delete().key(c.election.key as string).exec();
    await until('c lost its place and b leads', () => b.election.isLeader() && !c.election.isLeader(), 3000, 10);
    await until('c is a candidate again', async () => (await client.get(c.election.key as string).string()) === 'c', 3000, 50);
  });

  await t.test('a drained node stands down: its key goes, the next leads, it campaigns again at the back once undrained', async (t) => {
    let drained = false;
    const a = await candidate('a', 'subnet-d', () => drained);
    const b = await candidate('b', 'subnet-d');
    t.equal(a.election.state, 'leader');
    drained = true;
    await a.election.recheck();
    t.equal(a.election.state, 'follower', 'the drained leader steps down');
    t.notOk(a.election.isLeader(), 'and its write gate closes');
    t.same(await client.getAll().prefix(keys.advertisersPrefix('subnet-d')).strings().then((kv) => Object.values(kv)), ['b'], 'only b is a candidate');
    await until('b leads', () => b.election.isLeader(), 5000, 20);
    await delay(1200); // two periodic rechecks of a
    t.same(await client.getAll().prefix(keys.advertisersPrefix('subnet-d')).strings().then((kv) => Object.values(kv)), ['b'], 'a does not campaign while drained');
    drained = false;
    await a.election.recheck();
    const order = await client.getAll().prefix(keys.advertisersPrefix('subnet-d')).sort('Create', 'Ascend').strings();
    t.same(Object.values(order), ['b', 'a'], 'undrained, a is a candidate again, behind b');
    t.ok(b.election.isLeader(), 'b still leads');
  });

  await t.test('a leader standing down hands over at once and campaigns again only after standUp', async (t) => {
    const a = await candidate('sa', 'subnet-s');
    const b = await candidate('sb', 'subnet-s');
    t.ok(a.election.isLeader(), 'the first candidate leads');
    const key = a.election.key as string;
    await a.election.standDown('EC2 unreachable');
    t.notOk(a.election.isLeader(), 'no longer the leader once standDown resolves');
    t.ok(a.election.standingDown);
    await until('b leads', () => b.election.isLeader(), 3000, 10);
    await until('a deleted its key', async () => (await client.get(key).string()) === null, 3000, 20);
    await delay(1500); // three recheck periods: a would have put its key back by now
    t.equal(await client.get(key).string(), null, 'a does not campaign while standing down');
    t.equal(a.election.state, 'follower');
    await a.election.standUp();
    t.equal(await client.get(key).string(), 'sa', 'a is a candidate again after standUp');
    t.ok(b.election.isLeader() && !a.election.isLeader(), 'behind b');
  });

  await t.test('a leader restarted within the hold time keeps its place', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-election-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, 'lease.json');
    const first = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    await first.start();
    const before = new AdvertiserElection({ client, keys, subnet: 'subnet-r', node: 'r1', lease: first, log });
    await before.start();
    const other = await candidate('r2', 'subnet-r');
    t.ok(before.isLeader());
    first.stop(); // a crash: no resignation, the lease and its key stay
    const again = new LeaseKeeper(client, { ttlSeconds: 3, stateFile, log });
    t.equal((await again.start()).reattached, true);
    const after = new AdvertiserElection({ client, keys, subnet: 'subnet-r', node: 'r1', lease: again, log });
    await after.start();
    t.teardown(async () => {
      await after.resign();
      again.stop();
      await before.resign();
    });
    t.ok(after.isLeader(), 'the restarted daemon leads again at once');
    t.equal(after.key, before.key, 'with the same candidacy key');
    t.notOk(other.election.isLeader(), 'the other candidate stayed a follower');
  });

  await t.test('the advertiser writes only as a confirmed leader under a live lease', async (t) => {
    const topology = loadTopology('network: 100.96.0.0/16\nblockSize: 26\nsubnetSize: 20\nzones:\n  - name: z\n    subnets:\n      - { id: subnet-w, cidr: 198.18.1.0/24, routeTable: rtb-w }\n', 'test');
    const subnet = topology.zones[0]!.subnets[0]!;
    const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
    const cluster: ClusterState = {
      topology,
      nodes: new Map(names.map((n, i) => [n, { name: n, subnet, hostIP: parseAddress(`198.18.1.${10 + i}`), instanceId: `i-${n}`, healthEndpoint: '' }])),
      blocksByNode: new Map(names.map((n, i) => [n, [{ prefix: parsePrefix(`100.96.${i}.0/26`), node: n, subnet }]])),
    };
    const table: DescribedRoute[] = [{ destination: '0.0.0.0/0', instanceId: undefined, otherTarget: 'igw-1' }];
    const writes: VpcStep[] = [];
    let onWrite: (n: number) => Promise<void> = async () => undefined;
    let describes = 0;
    let describeFails = false;
    const tables: RouteTables = {
      describe: async () => {
        describes++;
        if (describeFails) throw new Error('EC2 DescribeRouteTables failed after 5 attempts: TimeoutError');
        return { tables: [{ name: 'rtb-w', id: 'rtb-0w', routes: [...table] }], missing: [] };
      },
      apply: async (step) => {
        writes.push(step);
        await onWrite(writes.length);
      },
    };
    const make = async (node: string) => {
      const c = await candidate(node, 'subnet-w');
      const statuses: VpcStatus[] = [];
      const health = new ForwarderHealth({ intervalMs: 1000, misses: 2, recoverAfterMs: 0, log });
      const advertiser = new VpcAdvertiser({
        subnet: 'subnet-w', node, election: c.election, tables, health, cluster: () => cluster,
        routeLimit: 50, verifyIntervalMs: 60_000, writeStatus: async (s) => void statuses.push(s), log, batchSize: 1,
      });
      t.teardown(() => advertiser.stop());
      return { ...c, advertiser, statuses };
    };
    const first = await make('w1');
    const second = await make('w2');
    await first.advertiser.run();
    // Five new nodes and no entry: a temporary covering entry first, the five, then the covering one goes.
    await until('the leader wrote five entries (and the covering one)', () => writes.length === 7, 3000, 10);
    t.same(writes.map((w) => w.kind), ['create', 'create', 'create', 'create', 'create', 'create', 'delete'], 'one create per node, between the covering entry\'s create and delete');
    t.same(writes[0]?.entry, writes[6]?.entry, 'the covering entry is the one deleted');
    t.equal(first.statuses.at(-1)?.leader, 'w1', 'the leader wrote its status');
    t.equal(first.statuses.at(-1)?.applied.length, 5);

    // A pass whose read fails (EC2 does not answer): the status keeps listing the entries Trellis owns.
    describeFails = true;
    const written = first.statuses.length;
    first.advertiser.markDirty(true);
    await delay(200);
    await first.advertiser.run();
    describeFails = false;
    t.ok(first.statuses.length > written, 'the failed pass wrote a status');
    t.match(first.statuses.at(-1)?.lastError, /TimeoutError/, 'with the error');
    t.equal(first.statuses.at(-1)?.applied.length, 5, 'still listing the five entries the tables hold');
    t.equal(first.statuses.at(-1)?.plan.length, 5, 'and the plan');

    const before = { writes: writes.length, describes };
    second.advertiser.markDirty(true);
    await delay(200);
    await second.advertiser.run();
    t.same({ writes: writes.length, describes }, before, 'a follower neither reads nor writes EC2');
    t.same(second.statuses, [], 'nor writes a status');

    // A pass that needs five writes: the lease is lost after the second.
    writes.length = 0;
    table.length = 1;
    onWrite = async (n) => {
      if (n === 2) first.lease.stop();
    };
    first.advertiser.markDirty(true);
    await delay(300);
    await first.advertiser.run();
    t.equal(writes.length, 2, 'no write after the lease stopped being alive');
    t.equal(first.election.state, 'follower');
  });

  await t.test('a leader whose candidacy key is gone: the fresh read before a batch says so', async (t) => {
    const lease = new LeaseKeeper(client, { ttlSeconds: 3, log });
    await lease.start();
    t.teardown(() => lease.stop());
    const election = new AdvertiserElection({ client, keys, subnet: 'subnet-x', node: 'x', lease, log, recheckMs: 60_000 });
    await election.start();
    t.teardown(() => election.resign());
    t.equal(await election.confirm(), true, 'a confirmed leader');
    // Someone else's older candidacy appears (e.g. a partition healed): a fresh read must see it.
    const other = await client.leaseClient.leaseGrant({ TTL: 10 });
    const key = election.key as string;
    await client.delete().key(key).exec();
    await client.put(`${keys.advertisersPrefix('subnet-x')}0`).value('older').lease(String(other.ID)).exec();
    t.equal(await election.confirm(), false, 'the fresh read before a batch shows another leader');
    t.notOk(election.isLeader());
    t.equal(election.leader, 'older');
    await client.leaseClient.leaseRevoke({ ID: String(other.ID) });
  });
});
