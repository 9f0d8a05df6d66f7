// The per-subnet VPC advertisers end to end: a 3 × 4 cluster lab (three
// subnets of four hosts, etcd in the router), moto in the router holding the
// VPC, one route table per subnet (each with 0.0.0.0/0 to an internet
// gateway, a NAT-gateway route and the local route), one instance per host,
// and every EC2 call of the daemons counted by a proxy in front of moto.
// The phases run in order on one lab:
//   1. limit 50: one entry per node in every table, each to its owner;
//   2. a forwarder's trellisd SIGKILLed: its entries point elsewhere within
//      3 s; restarted, it gets them back once, after the recovery time;
//   3. limit 8 (the three foreign routes count): at most 8 routes per table,
//      every claimed block covered by an entry to a host of its subnet, the
//      entries of a subnet on distinct forwarders;
//   4. the leader of subnet-1 (not a forwarder) SIGKILLed: a new leader within
//      TTL + 1 s, no entry lost or duplicated, and no EC2 write;
//   5. half of the calls throttled while a forwarder fails and comes back and
//      while every entry is deleted behind the advertisers' backs: the tables
//      still converge, every throttled call was retried, none gave up.
// Throughout, the routes Trellis does not own stay exactly as created.
import t, { type Test } from 'tap';
import { DeleteRouteCommand, DescribeInstanceAttributeCommand } from '@aws-sdk/client-ec2';
import { contains, parsePrefix } from '../../src/core/cidr.js';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import type { LabHost } from '../../lab/cluster-lab.js';
import { buildVpcLab, until, type TableRoute, type VpcLab } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();

/** Every route Trellis does not own is as created, in every table. */
async function foreignUntouched(t: Test, v: VpcLab, when: string): Promise<void> {
  const routes = await v.routes();
  for (const [rtb, foreign] of v.foreign) {
    t.same((routes.get(rtb) ?? []).filter((r) => !r.instance), foreign, `${when}: ${rtb}: 0.0.0.0/0, NAT and local routes untouched`);
  }
}

/** Blocks by owner, from etcd. */
async function blocksByNode(v: VpcLab): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const b of await v.lab.blocksOf()) out.set(b.node, [...(out.get(b.node) ?? []), b.prefix]);
  return out;
}

/** The entry whose destination holds `block` (longest prefix), in `routes`. */
function coveringEntry(routes: readonly TableRoute[], block: string): TableRoute | undefined {
  const b = parsePrefix(block);
  return routes
    .filter((r) => r.instance && contains(parsePrefix(r.destination), b))
    .sort((x, y) => parsePrefix(y.destination).len - parsePrefix(x.destination).len)[0];
}

/** Every table holds at most `limit` routes, `entries` of them Trellis's, and every block is covered by an entry to a host of its subnet. */
async function coveredWithin(v: VpcLab, blocks: ReadonlyMap<string, string[]>, limit: number, entries: number): Promise<boolean> {
  const routes = await v.routes();
  for (const rtb of v.tables.values()) {
    const list = routes.get(rtb) ?? [];
    if (list.length > limit || list.filter((r) => r.instance).length !== entries) return false;
    for (const h of v.hosts) {
      for (const b of blocks.get(h.name) ?? []) {
        const e = coveringEntry(list, b);
        if (e === undefined || v.hostOfInstance(e.target)?.subnet !== h.subnet) return false;
      }
    }
  }
  return true;
}

function logTimeOf(logs: string, msg: string, after: number): number | undefined {
  for (const line of logs.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const rec = JSON.parse(line) as { time?: number; msg?: string };
      if (rec.msg === msg && (rec.time ?? 0) >= after) return rec.time;
    } catch {
      // not a log line
    }
  }
  return undefined;
}

t.test('VPC advertisers in a 3 × 4 lab', { skip, timeout: 240_000 }, async (t) => {
  const v = await buildVpcLab(t);
  const subnets = [...v.tables.keys()];
  const fast = ['--vpc-recover-after', '2s'];
  // A short verification interval: the throttling phase deletes entries behind the advertisers' backs.
  const limit8 = ['--vpc-route-limit', '8', '--vpc-verify-interval', '2s', ...fast];

  await t.test('limit 50: one entry per node in every table, to its owner', async (t) => {
    const started = Date.now();
    await v.start(v.hosts, ['--vpc-route-limit', '50', ...fast]);
    t.comment(`12 daemons started in ${Date.now() - started} ms`);
    const blocks = await blocksByNode(v);
    const want = (): string => JSON.stringify([...v.instances.entries()].map(([n, id]) => [blocks.get(n)?.join(','), id]).sort());
    await until('one entry per node in every table', async () => {
      const entries = await v.entries();
      return [...v.tables.values()].every((rtb) => JSON.stringify((entries.get(rtb) ?? []).map((e) => [e.destination, e.target]).sort()) === want());
    }, 30_000, 200);
    t.comment(`tables complete ${Date.now() - started} ms after the start`);
    const entries = await v.entries();
    for (const rtb of v.tables.values()) {
      const list = entries.get(rtb) ?? [];
      t.equal(list.length, v.hosts.length, `${rtb}: ${v.hosts.length} entries`);
      for (const h of v.hosts) {
        const [block] = blocks.get(h.name) ?? [];
        const e = list.find((x) => x.destination === block);
        t.equal(e?.target, v.instances.get(h.name), `${rtb}: ${block} → ${h.name}'s instance`);
      }
    }
    await foreignUntouched(t, v, 'limit 50');
    for (const [name, id] of v.instances) {
      const attr = await v.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'sourceDestCheck' }));
      t.equal(attr.SourceDestCheck?.Value, false, `${name}: source/destination check off`);
    }
    for (const s of subnets) {
      const status = await v.statusOf(s);
      t.ok(typeof status?.leader === 'string' && v.hostsOf(s).some((h) => h.name === status.leader), `${s}: status names a leader of the subnet`);
    }
    v.proxy.resetCounts();
    await delay(2500);
    t.same(v.proxy.routeWrites(), [], 'steady state: no route write');
  });

  await t.test('a forwarder killed: its entries point elsewhere within 3 s; back once after recovery', async (t) => {
    const s2 = subnets[1] as string;
    const leader = (await v.statusOf(s2))?.leader;
    const victim = v.hostsOf(s2).find((h) => h.name !== leader) as LabHost;
    const id = v.instances.get(victim.name) as string;
    const [block] = (await blocksByNode(v)).get(victim.name) ?? [];
    const peers = v.hostsOf(s2).filter((h) => h !== victim).map((h) => v.instances.get(h.name));
    const before = await v.entries();
    v.proxy.resetCounts();
    v.daemons.get(victim.name)?.kill();
    const took = await until('entries moved off the killed forwarder', async () => {
      const entries = await v.entries();
      return [...v.tables.values()].every((rtb) => peers.includes((entries.get(rtb) ?? []).find((e) => e.destination === block)?.target));
    }, 15_000, 50);
    t.ok(took <= 3000, `entries of ${victim.name} moved to a healthy host of ${s2} in ${took} ms (≤ 3 s)`);
    const moved = await v.entries();
    for (const [rtb, list] of moved) {
      const was = before.get(rtb) ?? [];
      t.same(list.map((e) => e.destination), was.map((e) => e.destination), `${rtb}: same destinations, none lost or duplicated`);
      t.same(list.filter((e) => e.destination !== block), was.filter((e) => e.destination !== block), `${rtb}: the other entries did not move`);
    }
    const restarted = Date.now();
    await v.daemon(victim, ['--vpc-route-limit', '50', ...fast]).start();
    const back = await until('the restarted forwarder has its entries back', async () => {
      const entries = await v.entries();
      return [...v.tables.values()].every((rtb) => (entries.get(rtb) ?? []).find((e) => e.destination === block)?.target === id);
    }, 20_000, 100);
    t.ok(Date.now() - restarted >= 2000, `back ${Date.now() - restarted} ms after the restart (${back} ms of waiting): not before the 2 s recovery time`);
    await delay(1500);
    const writes = v.proxy.routeWrites();
    t.same(writes.map((w) => w.action), Array(2 * v.tables.size).fill('ReplaceRoute'), 'exactly two replaces per table: away and back, no flapping');
    t.ok(writes.every((w) => w.params.DestinationCidrBlock === block), `only ${block} changed`);
    await foreignUntouched(t, v, 'forwarder failover');
  });

  await t.test('limit 8 with the three foreign routes: aggregated entries on distinct forwarders', async (t) => {
    await v.stopAll();
    await until('node records expired', async () => (await v.lab.nodeNames()).length === 0, 15_000, 200);
    await v.start(v.hosts, limit8);
    const blocks = await blocksByNode(v);
    const covered = (): Promise<boolean> => coveredWithin(v, blocks, 8, 5);
    await until('tables cut down to the budget and covering every block', covered, 30_000, 200);
    await delay(2000);
    await until('no route write for 2 s', () => v.proxy.routeWrites(Date.now() - 2000).length === 0, 20_000, 200);
    const routes = await v.routes();
    for (const rtb of v.tables.values()) {
      const list = routes.get(rtb) ?? [];
      t.ok(list.length <= 8, `${rtb}: ${list.length} routes (≤ 8)`);
      for (const h of v.hosts) {
        for (const b of blocks.get(h.name) ?? []) {
          const e = coveringEntry(list, b);
          t.equal(v.hostOfInstance(e?.target ?? '')?.subnet, h.subnet, `${rtb}: ${b} (${h.name}) covered by an entry to a host of ${h.subnet}`);
        }
      }
      for (const s of subnets) {
        const targets = list.filter((r) => r.instance && v.hostOfInstance(r.target)?.subnet === s).map((r) => r.target);
        t.equal(new Set(targets).size, targets.length, `${rtb}: ${s}'s ${targets.length} entries on distinct forwarders`);
        t.ok(targets.length >= 1, `${rtb}: ${s} has an entry`);
      }
    }
    await foreignUntouched(t, v, 'limit 8');
  });

  await t.test('the leader killed: a new leader within TTL + 1 s, no entry lost, no EC2 write', async (t) => {
    const s1 = subnets[0] as string;
    const before = await v.entries();
    const targets = new Set([...before.values()].flat().map((e) => e.target));
    // Leadership goes to a host that forwards no entry: the candidates ahead of it
    // lose their place (their candidacy keys deleted, they campaign again at the back).
    const leader = v.hostsOf(s1).find((h) => !targets.has(v.instances.get(h.name) as string)) as LabHost;
    t.ok(leader !== undefined, `${s1} has a host that forwards no entry`);
    for (let round = 0; (await v.statusOf(s1))?.leader !== leader.name; round++) {
      if (round > 20) throw new Error(`${leader.name} did not become the leader of ${s1}`);
      const listed = JSON.parse(await v.lab.etcdctl(['get', '--prefix', `${v.lab.keys.root}/advertisers/${s1}/`, '-w', 'json'])) as { kvs?: Array<{ key: string; value: string; create_revision: number }> };
      const order = (listed.kvs ?? []).sort((a, b) => a.create_revision - b.create_revision);
      const mine = order.findIndex((kv) => Buffer.from(kv.value, 'base64').toString() === leader.name);
      for (const kv of order.slice(0, Math.max(0, mine))) await v.lab.etcdctl(['del', Buffer.from(kv.key, 'base64').toString()]);
      await delay(500);
    }
    await delay(1000);
    t.same([...(await v.entries())], [...before], 'moving the leadership changed no entry');
    v.proxy.resetCounts();
    const killedAt = Date.now();
    v.daemons.get(leader.name)?.kill();
    let successor = '';
    let electedAt = 0;
    await until('a new leader of subnet-1', () => {
      for (const h of v.hostsOf(s1).filter((x) => x !== leader)) {
        const at = logTimeOf(v.daemons.get(h.name)?.logs ?? '', 'became VPC advertiser of the subnet', killedAt);
        if (at !== undefined) [successor, electedAt] = [h.name, at];
      }
      return successor !== '';
    }, 15_000, 50);
    t.ok(electedAt - killedAt <= 4000, `${successor} elected ${electedAt - killedAt} ms after the kill (TTL 3 s + 1 s)`);
    await until('the new leader wrote its status', async () => {
      const st = await v.statusOf(s1);
      return st?.leader === successor && Date.parse(String(st.updatedAt)) >= electedAt;
    }, 10_000, 100);
    await delay(1500); // the dead node's record expires meanwhile: every advertiser plans again
    t.same([...(await v.entries())], [...before], 'every table holds exactly the same entries');
    t.ok((v.proxy.counts().DescribeRouteTables ?? 0) >= 1, 'the new leader read the tables');
    t.same(v.proxy.routeWrites(), [], 'and wrote nothing');
    await foreignUntouched(t, v, 'leader failover');
  });

  await t.test('throttling: a share of the calls answered RequestLimitExceeded; tables converge, no call gives up', async (t) => {
    const s2 = subnets[1] as string;
    const leader = (await v.statusOf(s2))?.leader;
    const before = await v.entries();
    const targets = new Set([...before.values()].flat().map((e) => e.target));
    const victim = v.hostsOf(s2).find((h) => h.name !== leader && targets.has(v.instances.get(h.name) as string)) as LabHost;
    const victimId = v.instances.get(victim.name) as string;
    const others = v.hosts.filter((h) => h !== victim && v.daemons.get(h.name)?.running === true);
    const throttledBefore = await v.metricSum(others, 'trellis_vpc_ec2_calls_total', 'result="throttled"');
    const retriesBefore = await v.metricSum(others, 'trellis_vpc_ec2_retries_total');
    const exhaustedBefore = await v.metricSum(others, 'trellis_vpc_ec2_retries_exhausted_total');
    v.proxy.resetCounts();
    v.proxy.throttle(0.5);
    v.daemons.get(victim.name)?.kill();
    await until('entries moved off the killed forwarder under throttling', async () => {
      const entries = await v.entries();
      return [...entries.values()].every((l) => !l.some((e) => e.target === victimId));
    }, 20_000, 100);
    await v.daemon(victim, limit8).start();
    // Every entry deleted behind the advertisers' backs: the verification passes put them back.
    let deleted = 0;
    for (const [rtb, list] of await v.entries()) {
      for (const e of list) {
        await v.ec2.send(new DeleteRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: e.destination }));
        deleted++;
      }
    }
    const blocks = await blocksByNode(v);
    await until('deleted entries restored under throttling', () => coveredWithin(v, blocks, 8, 5), 30_000, 200);
    t.ok(await coveredWithin(v, blocks, 8, 5), 'converged: ≤ 8 routes per table, every block covered by an entry to a host of its subnet');
    const created = v.proxy.routeWrites().filter((c) => c.action === 'CreateRoute').length;
    t.ok(deleted === 15 && created >= deleted, `the ${deleted} deleted entries were created again (${created} creates)`);
    await delay(500);
    v.proxy.throttle(0);
    const throttled = Object.values(v.proxy.throttledCounts()).reduce((a, b) => a + b, 0);
    t.comment(`calls: ${JSON.stringify(v.proxy.counts())}; throttled: ${JSON.stringify(v.proxy.throttledCounts())}`);
    t.ok(throttled >= 15, `${throttled} of ${v.proxy.recent().length} calls were answered RequestLimitExceeded`);
    const everyone = v.hosts.filter((h) => v.daemons.get(h.name)?.running === true);
    const seen = (await v.metricSum(everyone, 'trellis_vpc_ec2_calls_total', 'result="throttled"')) - throttledBefore;
    const retried = (await v.metricSum(everyone, 'trellis_vpc_ec2_retries_total')) - retriesBefore;
    const exhausted = (await v.metricSum(everyone, 'trellis_vpc_ec2_retries_exhausted_total')) - exhaustedBefore;
    t.equal(seen, throttled, 'the daemons saw every throttled answer');
    t.equal(retried, throttled, `each was retried (${retried})`);
    t.equal(exhausted, 0, 'no call gave up because of throttling');
    // A daemon's retries of one call come one after another on its connection.
    let worst = 0;
    const streak = new Map<string, number>();
    for (const c of v.proxy.recent()) {
      const key = `${c.connection} ${c.action} ${JSON.stringify(c.params)}`;
      streak.set(key, c.throttled ? (streak.get(key) ?? 0) + 1 : 0);
      worst = Math.max(worst, streak.get(key) ?? 0);
    }
    t.ok(worst >= 1, `a call throttled ${worst} times in a row went on until it passed`);
    await foreignUntouched(t, v, 'throttling');
  });
});
