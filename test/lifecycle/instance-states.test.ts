// What the node collector's EC2 rule learns from the adapter, against moto
// behind the counting proxy: instance states in batches of 100 ids per
// DescribeInstances call; an id EC2 does not know (InvalidInstanceID.NotFound
// fails its whole batch) is reported "not-found" and the others of its batch
// keep their real state; a call that stays throttled throws, so the collector
// learns nothing from it, or waits while the caller's keepTrying holds.
import t from 'tap';
import { RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { Ec2Routes } from '../../src/aws/ec2-routes.js';
import { startEc2Sandbox } from '../../lab/ec2-sandbox.js';
import { needMoto } from '../../lab/moto.js';
import { until } from '../../lab/pids.js';

const log = pino({ level: 'silent' });

t.test('instance states: batched, not-found reported, throttling throws', { skip: needMoto(), timeout: 180_000 }, async (t) => {
  const { setup, proxy, client, vpcId, subnetId } = await startEc2Sandbox(t);
  const run = await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 150, MaxCount: 150, SubnetId: subnetId }));
  const ids = (run.Instances ?? []).map((i) => i.InstanceId as string);
  t.equal(ids.length, 150);
  const gone = ids.slice(0, 3);
  await setup.send(new TerminateInstancesCommand({ InstanceIds: gone }));
  const routes = new Ec2Routes({ client, vpcId, log, buckets: false, keepTrying: () => false, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });

  proxy.resetCounts();
  const states = await routes.instanceStates(ids);
  t.same(proxy.counts(), { DescribeInstances: 2 }, '150 ids in two calls');
  t.same(gone.map((id) => states.get(id)), ['terminated', 'terminated', 'terminated'], 'terminated instances');
  t.ok(ids.slice(3).every((id) => states.get(id) === 'running'), 'the others running');

  const unknown = 'i-0123456789abcdef0';
  proxy.resetCounts();
  const mixed = await routes.instanceStates([unknown, ...ids.slice(0, 5)]);
  t.equal(mixed.get(unknown), 'not-found', 'an id EC2 does not know');
  t.same(ids.slice(0, 5).map((id) => mixed.get(id)), ['terminated', 'terminated', 'terminated', 'running', 'running'], 'the rest of its batch, asked one by one');
  t.equal(proxy.counts().DescribeInstances, 7, 'one failed batch, then one call per id');

  proxy.throttle(1, ['DescribeInstances']);
  await t.rejects(routes.instanceStates(ids.slice(0, 2)), { code: 'E_UNAVAILABLE' }, 'a throttled call throws: no state is reported');
  proxy.resetCounts();
  const waiting = routes.instanceStates(ids.slice(0, 2), () => true);
  await until('the call throttled twice', () => (proxy.throttledCounts().DescribeInstances ?? 0) >= 2, 30_000, 20);
  proxy.throttle(0);
  t.same([...(await waiting).values()], ['terminated', 'terminated'], "with the caller's keepTrying, a throttled call waits and goes on once EC2 answers");
});
