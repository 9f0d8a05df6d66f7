// Moto behind the throttling proxy (EC2's bucket of mutating route calls:
// burst 50, 5 per second): the proxy refuses beyond the bucket in EC2's
// error shape; the adapter, paced by its own bucket, makes no write beyond
// it; both scenarios (many joins, a failed forwarder carrying entries)
// converge to the plan, reachability first ahead of the naive order; and an
// unpaced client that is throttled still finishes its pass.
import t from 'tap';
import { CreateRouteCommand, CreateRouteTableCommand } from '@aws-sdk/client-ec2';
import { formatPrefix } from '../../src/core/cidr.js';
import { needMoto } from '../../lab/moto.js';
import { blockOf, buildThrottleWorld, failoverScenario, joinScenario, plannedEntries, runPass, seed, tableEntries, type PassResult, type ThrottleWorld } from '../../lab/vpc-throttle.js';

/** Every window of admitted writes holds at most burst + floor(seconds · rate) of them. */
function withinBucket(times: readonly number[], burst: number, rate: number): boolean {
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      if (j - i + 1 > burst + Math.floor((((times[j] as number) - (times[i] as number)) / 1000) * rate)) return false;
    }
  }
  return true;
}

const worst = (r: PassResult): number => Math.max(...r.reachWrites);

t.test('EC2 route writes behind a 50 + 5/s bucket', { skip: needMoto(), timeout: 240_000 }, async (t) => {
  const w: ThrottleWorld = await buildThrottleWorld(t, 80);
  t.teardown(() => {
    w.setup.destroy();
    w.client.destroy();
  });

  await t.test('the proxy refuses beyond the bucket with RequestLimitExceeded, as EC2 does', async (t) => {
    const rtb = (await w.setup.send(new CreateRouteTableCommand({ VpcId: w.vpcId }))).RouteTable?.RouteTableId as string;
    w.proxy.bucket(w.bucket);
    w.proxy.resetCounts();
    const started = Date.now();
    const results: Array<PromiseSettledResult<unknown>> = [];
    for (let i = 0; i < 70; i++) {
      const send = w.client.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: formatPrefix(blockOf(i)), InstanceId: w.instances[0] }));
      results.push(await send.then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason })));
    }
    const elapsed = Date.now() - started;
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.ok(ok >= 50 && ok <= 50 + Math.floor((elapsed / 1000) * 5), `${ok} of 70 admitted in ${elapsed} ms: the burst, and the refill of that time at most`);
    t.equal(refused.length, 70 - ok);
    for (const r of refused) {
      const err = r.reason as { name?: string; $metadata?: { httpStatusCode?: number } };
      t.equal(err.name, 'RequestLimitExceeded', `the SDK reads the EC2 error code (${String(r.reason)})`);
      t.equal(err.$metadata?.httpStatusCode, 503);
    }
    t.equal(w.proxy.routeWrites().length, ok, 'only admitted writes reached moto');
  });

  for (const make of [
    () => joinScenario(w.instances, 5, 70, 1),
    () => failoverScenario(w.instances, 60, 20, 30, 2),
  ]) {
    const name = make().name;
    await t.test(`${name}: paced by the client bucket, no write is refused; both orders converge, reachability first is ahead`, async (t) => {
      const results: PassResult[] = [];
      for (const order of ['naive', 'reach'] as const) {
        const s = await seed(w, make());
        w.proxy.resetCounts();
        const r = await runPass(w, s, order);
        results.push(r);
        const recent = w.proxy.recent();
        t.equal(r.throttled, 0, `${order}: no write beyond the bucket (none refused) ${JSON.stringify(recent.map((c, i) => (c.throttled ? [i, c.action, c.arrived - (recent[0]?.arrived ?? 0)] : undefined)).filter((x) => x !== undefined))}`);
        t.ok(withinBucket(w.proxy.routeWrites().map((c) => c.arrived), 50, 5), `${order}: the ${w.proxy.routeWrites().length} admitted writes fit the 50 + 5/s bucket`);
        t.same(await tableEntries(w, s), plannedEntries(s), `${order}: the tables hold exactly the plan`);
        t.ok(r.reachWrites.every((x) => Number.isFinite(x)), `${order}: every block ends reachable`);
      }
      const [naive, reach] = results as [PassResult, PassResult];
      t.comment(`${name}: every block reachable after ${worst(naive)} writes (naive) vs ${worst(reach)} (reachability first), of ${naive.writes} / ${reach.writes}`);
      if (name === 'joins') {
        t.equal(worst(reach), 1, 'joins: the covering entry makes every new node reachable with the first write');
        t.equal(worst(naive), 70, 'joins: the naive order only with the last create');
      } else {
        t.equal(worst(reach), 22, 'failover: every entry the failed forwarder carried (20, and its own in each table) repointed first');
        t.ok(worst(naive) > 40, `failover: the naive order later (${worst(naive)} writes)`);
      }
    });
  }

  await t.test('an unpaced client is throttled, and its pass still completes', async (t) => {
    const s = await seed(w, joinScenario(w.instances, 0, 70, 1));
    w.proxy.resetCounts();
    const r = await runPass(w, s, 'reach', false);
    t.ok(r.throttled > 0, `${r.throttled} calls answered RequestLimitExceeded`);
    t.same(await tableEntries(w, s), plannedEntries(s), 'the tables hold exactly the plan: no step was given up');
  });
});
