// Routes inside the pod network that Trellis did not make: they are reported,
// and replaced only when the plan needs exactly their destination and their
// target is not a live node. A 2 × 2 lab with moto (one route table per
// subnet), in order:
//   1. before any trellisd runs, an operator's route for a /28 inside
//      subnet-1's pod prefix to a live node of subnet-2: after convergence it
//      is still there, reported (status warning, metric), and every block is
//      covered by Trellis's own entries;
//   2. Trellis's entry for h1-0's block repointed by hand to a live node of
//      the other subnet: left in place and reported, no entry of Trellis's
//      made over it;
//   3. the same entry repointed to an instance that runs no trellisd (not a
//      live node): the advertiser replaces it with its own entry again.
import t from 'tap';
import { CreateRouteCommand, ReplaceRouteCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { formatPrefix, lastAddress, prefixOf, type Prefix } from '../../src/core/cidr.js';
import { allSubnets } from '../../src/core/topology.js';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import { buildVpcLab, until } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();

t.test('routes Trellis did not make', { skip, timeout: 180_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 2, hostsPerSubnet: 2 });
  const [s1, s2] = [...v.tables.keys()] as [string, string];
  const rtb1 = v.tables.get(s1) as string;
  const [h10] = v.hostsOf(s1);
  const [h20] = v.hostsOf(s2);
  const i10 = v.instances.get(h10!.name) as string;
  const i20 = v.instances.get(h20!.name) as string;
  // A /28 at the end of subnet-1's pod prefix: no node claims it in this test.
  const pods = allSubnets(v.lab.topology).find((s) => s.id === s1)?.podPrefix as Prefix;
  const operatorDest = formatPrefix(prefixOf({ family: 4, addr: lastAddress(pods) }, 28));
  await v.ec2.send(new CreateRouteCommand({ RouteTableId: rtb1, DestinationCidrBlock: operatorDest, InstanceId: i20 }));

  const entriesOf = async (rtb: string): Promise<Map<string, string>> => new Map(((await v.entries()).get(rtb) ?? []).map((e) => [e.destination, e.target]));
  const warningsOf = async (): Promise<string[]> => ((await v.statusOf(s1))?.warnings as string[] | undefined) ?? [];

  await v.start(v.hosts, ['--vpc-route-limit', '50', '--vpc-verify-interval', '1s', '--vpc-recover-after', '2s']);
  const blocks = await v.lab.blocksOf();
  const block10 = blocks.find((b) => b.node === h10!.name)?.prefix as string;
  await until('one entry per node in subnet-1\'s table', async () => {
    const e = await entriesOf(rtb1);
    return v.hosts.every((h) => e.get(blocks.find((b) => b.node === h.name)?.prefix as string) === v.instances.get(h.name));
  }, 30_000, 200);

  await t.test('an operator\'s route to a live node stays and is reported', async (t) => {
    await until('the operator route reported', async () => (await warningsOf()).some((w) => w.includes(operatorDest)), 15_000, 200);
    t.equal((await entriesOf(rtb1)).get(operatorDest), i20, 'still there, to the same instance');
    t.match((await warningsOf()).join('\n'), new RegExp(`route ${operatorDest.replace(/\./g, '\\.')} → ${i20} in ${rtb1} is in the pod network but was not made by Trellis`));
    t.ok((await v.metricSum(v.hostsOf(s1), 'trellis_vpc_unmanaged_routes')) >= 1, 'counted by the leader\'s metric');
  });

  await t.test('Trellis\'s entry repointed by hand to a live node: left in place, reported', async (t) => {
    await v.ec2.send(new ReplaceRouteCommand({ RouteTableId: rtb1, DestinationCidrBlock: block10, InstanceId: i20 }));
    await until('the advertiser reports it', async () => (await warningsOf()).some((w) => w.includes(`${block10} → ${i20}`) && w.includes('targets live node')), 15_000, 200);
    // Several verification passes later it is still as the operator left it.
    await new Promise((r) => setTimeout(r, 3000));
    const e = await entriesOf(rtb1);
    t.equal(e.get(block10), i20, 'not replaced: its target is a live node');
    t.match((await warningsOf()).join('\n'), new RegExp(`targets live node ${h20!.name}: left in place`));
  });

  await t.test('repointed to an instance that runs no trellisd: replaced by Trellis\'s entry', async (t) => {
    const run = await v.ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1 }));
    const stranger = run.Instances?.[0]?.InstanceId as string;
    await v.ec2.send(new ReplaceRouteCommand({ RouteTableId: rtb1, DestinationCidrBlock: block10, InstanceId: stranger }));
    await until('the block\'s entry back to its owner', async () => (await entriesOf(rtb1)).get(block10) === i10, 15_000, 200);
    t.pass(`${block10} → ${h10!.name}'s instance again`);
    t.equal((await entriesOf(rtb1)).get(operatorDest), i20, 'the operator\'s route is still untouched');
    const status = await v.statusOf(s1);
    const applied = (status?.applied as Array<{ table: string; destination: string; target: string }> | undefined) ?? [];
    t.ok(applied.some((r) => r.destination === block10 && r.target === i10), 'recorded as Trellis\'s in the status');
  });
});
