// The collector's EC2 rule in one process, against a real etcd and moto
// (through the counting proxy): five absent nodes, each with a block claim.
//   gone          identity names an instance moto terminated: collected;
//   running       identity names a running instance: kept;
//   swapped       identity names a terminated instance when the collector
//                 reads it, but is rewritten (the node came back on a running
//                 instance) before the collector acts: kept;
//   bad-identity  identity record that fails validation: kept, one warning;
//   no-identity   no identity record: kept.
// Before that, passes whose DescribeInstances stays throttled, or fails
// (connection refused), collect nothing at all.
import t from 'tap';
import { Writable } from 'node:stream';
import { EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { Ec2Routes } from '../../src/aws/ec2-routes.js';
import { readIdentities } from '../../src/etcd/node-identities.js';
import { LeaseKeeper } from '../../src/etcd/lease-keeper.js';
import { Keys } from '../../src/state/keys.js';
import { encodeIdentity } from '../../src/state/node-identity.js';
import { NodeCollector } from '../../daemon/node-collector.js';
import { startEc2Sandbox } from '../../lab/ec2-sandbox.js';
import { startEtcd } from '../../lab/etcd.js';
import { needMoto } from '../../lab/moto.js';
import { until } from '../../lab/pids.js';
import { freePort } from '../../lab/ports.js';

const NODES = ['gone', 'running', 'swapped', 'bad-identity', 'no-identity'];

t.test('EC2 rule: only a node whose identity names a terminated instance is collected, and only when EC2 answered', { skip: needMoto(), timeout: 180_000 }, async (t) => {
  const etcd = await startEtcd(t);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const keys = new Keys();
  const { setup, proxy, client: ec2, vpcId, subnetId, moto } = await startEc2Sandbox(t);
  const run = await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 3, MaxCount: 3, SubnetId: subnetId }));
  const [iGone, iRunning, iSwapped] = (run.Instances ?? []).map((i) => i.InstanceId as string) as [string, string, string];
  await setup.send(new TerminateInstancesCommand({ InstanceIds: [iGone, iSwapped] }));

  const blockOf = new Map(NODES.map((n, i) => [n, `100.96.${i}.0/26`]));
  for (const [node, block] of blockOf) {
    await client.put(keys.block(block)).value(JSON.stringify({ schemaVersion: 1, prefix: block, subnet: 'subnet-a1', node, claimedAt: '2026-12-04T00:00:00Z' }));
    await client.put(keys.hold(node, block)).value(JSON.stringify({ schemaVersion: 1, prefix: block, subnet: 'subnet-a1', node, claimedAt: '2026-12-04T00:00:00Z' }));
  }
  const identity = (name: string, instanceId: string): string => encodeIdentity({ name, subnet: 'subnet-a1', hostIP: '198.18.1.10', instanceId }, Date.now());
  await client.put(keys.identity('gone')).value(identity('gone', iGone));
  await client.put(keys.identity('running')).value(identity('running', iRunning));
  await client.put(keys.identity('swapped')).value(identity('swapped', iSwapped));
  await client.put(keys.identity('bad-identity')).value(identity('bad-identity', 'i-not-an-instance'));
  const claimed = async (): Promise<string[]> =>
    Object.values(await client.getAll().prefix(keys.blocksPrefix()).strings()).map((v) => (JSON.parse(v) as { node: string }).node).sort();

  let lines = '';
  const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => ((lines += chunk.toString()), done()) }));
  const logged = (msg: string): Array<Record<string, unknown>> =>
    lines.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
  const working = new Ec2Routes({ client: ec2, vpcId, log, buckets: false, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
  const refusedEndpoint = `http://127.0.0.1:${await freePort()}`;
  const deadClient = new EC2Client({ ...moto.clientConfig(), endpoint: refusedEndpoint, maxAttempts: 1 });
  t.teardown(() => deadClient.destroy());
  const failing = new Ec2Routes({ client: deadClient, vpcId, log, buckets: false, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
  let routes = working;
  const lease = new LeaseKeeper(client, { ttlSeconds: 3, log });
  await lease.start();
  t.teardown(() => lease.stop());
  const collected = new Counter({ name: 'trellis_nodes_collected_total', help: 'test', labelNames: ['rule'] as const, registers: [new Registry()] });
  const collector = new NodeCollector({
    client, keys, node: 'collector', lease, log, deadNodeAfterMs: 0, periodMs: 3_600_000, collected,
    view: () => ({ recorded: new Set(), claimOwners: new Set(NODES) }),
    ec2: {
      identities: (nodes) => readIdentities(client, keys, nodes),
      states: (ids) => routes.instanceStates(ids, () => false),
    },
  });
  await collector.start();
  t.teardown(() => collector.stop());
  await until('the collector leads', () => collector.election.isLeader(), 20_000, 50);

  proxy.throttle(1, ['DescribeInstances']);
  proxy.resetCounts();
  await collector.pass();
  t.ok((proxy.throttledCounts().DescribeInstances ?? 0) >= 1, 'DescribeInstances was throttled');
  t.same(await claimed(), [...NODES].sort(), 'throttled: nothing collected');
  proxy.throttle(0);

  routes = failing;
  await collector.pass();
  t.same(await claimed(), [...NODES].sort(), 'EC2 unreachable: nothing collected');
  t.equal(logged('cannot ask EC2 about absent nodes: none collected by the EC2 rule this pass').length, 2, 'each failed pass says so');

  routes = working;
  // "swapped" comes back on a running instance: the collector read its identity (terminated instance) before.
  await client.put(keys.identity('swapped')).value(identity('swapped', iRunning));
  proxy.resetCounts();
  await collector.pass();
  t.same(await claimed(), ['bad-identity', 'no-identity', 'running', 'swapped'], 'only the node whose instance is terminated is collected');
  t.same(await client.getAll().prefix(keys.holdsPrefix('gone')).keys(), [], 'its hold is gone');
  t.equal(await client.get(keys.identity('gone')).string(), null, 'its identity record is gone');
  const asked = proxy.recent().filter((c) => c.action === 'DescribeInstances');
  t.equal(asked.length, 1, 'one DescribeInstances for all absent nodes with an instance');
  t.same(Object.keys(asked[0]?.params ?? {}).filter((k) => k.startsWith('InstanceId.')).length, 3, 'naming the three instances');
  t.match(logged('collected dead node'), [{ node: 'gone', rule: 'ec2-terminated', instanceId: iGone, ec2State: 'terminated', blocks: [blockOf.get('gone')] }], 'the log line names the node, rule, instance, state and blocks');
  t.equal(logged('collected dead node').length, 1, 'one log line');
  t.match(logged('ignoring identity record: the EC2 rule cannot collect this node'), [{ node: 'bad-identity', reason: /is not an EC2 instance id/ }], 'the invalid identity is reported');
  t.match(await collected.get(), { values: [{ labels: { rule: 'ec2-terminated' }, value: 1 }] }, 'counted once');
});
