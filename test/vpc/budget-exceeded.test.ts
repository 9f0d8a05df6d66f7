// A route-table budget too small for one entry per subnet is said loudly and
// used as well as it can be: three subnets of one host each, every table
// holding three routes Trellis does not own (local, internet gateway, NAT), a
// limit of 5 — two entries to give, three subnets needing one. Each table
// ends with exactly 5 routes, two subnets covered by an entry to their own
// host, and the subnet left out reports it in its status (budgetExceeded,
// a warning naming the table), in its log and in trellis_vpc_budget_exceeded.
// Then, in steady state, the advertisers only read, once per verification
// interval each.
import t from 'tap';
import { contains, parsePrefix } from '../../src/core/cidr.js';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import { buildVpcLab, until } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();

t.test('budget smaller than the number of subnets', { skip, timeout: 180_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 3, hostsPerSubnet: 1 });
  await v.start(v.hosts, ['--vpc-route-limit', '5', '--vpc-verify-interval', '1s']);
  const blocks = await v.lab.blocksOf();
  const covered = async (): Promise<Map<string, string[]>> => {
    const out = new Map<string, string[]>();
    for (const [rtb, entries] of await v.entries()) {
      out.set(rtb, v.hosts.filter((h) => entries.some((e) => e.target === v.instances.get(h.name) && blocks.filter((b) => b.node === h.name).every((b) => contains(parsePrefix(e.destination), parsePrefix(b.prefix))))).map((h) => h.subnet));
    }
    return out;
  };
  await until('two entries in every table', async () => [...(await v.entries()).values()].every((e) => e.length === 2), 30_000, 200);
  await new Promise((r) => setTimeout(r, 2000)); // a few more passes: nothing more is written
  const routes = await v.routes();
  for (const rtb of v.tables.values()) t.equal(routes.get(rtb)?.length, 5, `${rtb}: exactly the limit, 5 routes`);
  const bySubnet = await covered();
  for (const [rtb, subnets] of bySubnet) t.equal(new Set(subnets).size, 2, `${rtb}: two subnets covered, each by an entry to its own host`);
  const left = [...v.tables.keys()].filter((s) => [...bySubnet.values()].some((c) => !c.includes(s)));
  t.equal(left.length, 1, 'one subnet is left out (the same in every table)');
  const out = left[0] as string;

  const status = await until('the left-out subnet reports it', async () => (await v.statusOf(out))?.budgetExceeded === true, 15_000, 200).then(() => v.statusOf(out));
  t.equal(status?.budgetExceeded, true, 'status: budgetExceeded');
  t.match(((status?.warnings as string[] | undefined) ?? []).join('\n'), /route table rtb-\w+ has room for 2 of the 3 subnets needing entries/, 'status: a warning says why');
  const host = v.hostsOf(out)[0]!;
  t.equal(await v.metricSum([host], 'trellis_vpc_budget_exceeded'), 1, 'metric trellis_vpc_budget_exceeded is 1 on its advertiser');
  t.match(v.daemons.get(host.name)?.logs ?? '', /VPC route budget exceeded/, 'and its log says so');
  const served = v.hostsOf([...v.tables.keys()].find((s) => s !== out) as string)[0]!;
  t.equal(await v.metricSum([served], 'trellis_vpc_budget_exceeded'), 1, 'a covered subnet\'s advertiser sees the shortage too');

  // Steady state: no write, and one DescribeRouteTables per leader per verification interval (1 s here).
  v.proxy.resetCounts();
  const windowMs = 6000;
  await new Promise((r) => setTimeout(r, windowMs));
  const counts = v.proxy.counts();
  t.same(v.proxy.routeWrites(), [], `steady state: no route write in ${windowMs / 1000} s`);
  const reads = counts.DescribeRouteTables ?? 0;
  t.ok(reads >= 3 && reads <= 3 * (windowMs / 1000 + 1), `steady state: ${reads} DescribeRouteTables from 3 leaders in ${windowMs / 1000} s (verification every 1 s)`);
  t.same(Object.keys(counts).filter((a) => a !== 'DescribeRouteTables'), [], 'and no other EC2 call');
});
