// Collection on EC2 evidence, end to end: a VPC lab of one subnet of four
// hosts (namespaces, etcd in the router, moto behind the counting proxy),
// three trellisd with vpc.enabled and no time rule (gc.deadNodeAfter off).
//   * victim: its instance terminated in moto and its trellisd SIGKILLed;
//   * sleeper: its trellisd SIGKILLed, its instance still running;
//   their node records deleted together (as their leases would expire).
// While every DescribeInstances is throttled, nothing is collected (the
// collector asked EC2 and got no answer). Once EC2 answers, the victim is
// collected (claims, pod address records and identity gone, one log line,
// trellis_nodes_collected_total{rule="ec2-terminated"} 1), its VPC entries
// disappear, and a new node claims its block; the sleeper, asked about in the
// same batched DescribeInstances calls, keeps its claims.
import t from 'tap';
import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import type { LabHost } from '../../lab/cluster-lab.js';
import { buildVpcLab, until } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();

t.test('a node whose instance is terminated is collected once its lease is gone; one whose instance runs is not', { skip, timeout: 240_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 1, hostsPerSubnet: 4 });
  const [h1, h2, h3, spare] = v.hosts as [LabHost, LabHost, LabHost, LabHost];
  const table = [...v.tables.values()][0] as string;
  await v.start([h1, h2, h3], []);
  const ownerOf = async (): Promise<Map<string, string>> => new Map((await v.lab.blocksOf()).map((b) => [b.prefix, b.node]));
  await until('one VPC entry per node', async () => {
    const entries = (await v.entries()).get(table) ?? [];
    return [h1, h2, h3].every((h) => entries.some((e) => e.target === v.instances.get(h.name)));
  }, 60_000, 200);
  // The victim holds the lowest block: the first free home a newcomer starts at once it is collected.
  const blocks = await v.lab.blocksOf();
  const victim = v.lab.host(blocks[0]!.node);
  // The sleeper is the victim's neighbour in name order, so that one range delete removes both node records (below).
  const names = [h1, h2, h3].map((h) => h.name).sort();
  const at = names.indexOf(victim.name);
  const sleeper = v.lab.host(names[at === 0 ? 1 : at - 1] as string);
  const keeper = [h1, h2, h3].find((h) => h !== victim && h !== sleeper) as LabHost;
  const victimBlocks = blocks.filter((b) => b.node === victim.name).map((b) => b.prefix);
  const sleeperBlocks = blocks.filter((b) => b.node === sleeper.name).map((b) => b.prefix);
  const victimId = v.instances.get(victim.name) as string;
  const sleeperId = v.instances.get(sleeper.name) as string;
  t.ok(await v.lab.etcdctl(['get', v.lab.keys.identity(victim.name), '--print-value-only']).then((s) => s.includes(victimId)), "the victim's identity record names its instance");
  await v.lab.etcdctl(['put', `${v.lab.keys.ipamPrefix(victim.name)}x`, '{}']);

  v.proxy.throttle(1, ['DescribeInstances']);
  v.proxy.resetCounts();
  await v.ec2.send(new TerminateInstancesCommand({ InstanceIds: [victimId] }));
  v.daemons.get(victim.name)?.kill();
  v.daemons.get(sleeper.name)?.kill();
  // Both node records go in one revision (their leases would expire up to a
  // keepalive period apart, and a pass between would ask about one alone).
  const [first, last] = [victim.name, sleeper.name].sort() as [string, string];
  await v.lab.etcdctl(['del', v.lab.keys.node(first), `${v.lab.keys.node(last)}\x01`]);
  const askedAbout = (id: string): number => v.proxy.recent().filter((c) => c.action === 'DescribeInstances' && Object.values(c.params).includes(id)).length;
  await until('the collector asked EC2 about the victim three times, throttled', () => askedAbout(victimId) >= 3, 90_000, 200);
  t.ok(v.proxy.recent().filter((c) => c.action === 'DescribeInstances').every((c) => c.throttled), 'every DescribeInstances was throttled');
  t.same((await ownerOf()).get(victimBlocks[0]!), victim.name, 'throttled: nothing collected');
  t.equal(await v.metricSum([keeper], 'trellis_nodes_collected_total', 'rule="ec2-terminated"'), 0, 'nothing counted');

  v.proxy.throttle(0);
  await until('the victim collected', async () => ![...(await ownerOf()).values()].includes(victim.name), 60_000, 200);
  const batched = v.proxy.recent().filter((c) => c.action === 'DescribeInstances' && !c.throttled && Object.values(c.params).includes(victimId));
  t.ok(batched.some((c) => Object.values(c.params).includes(sleeperId)), 'the victim and the sleeper were asked about in one DescribeInstances call');
  t.same(await v.lab.getPrefix(v.lab.keys.ipamPrefix(victim.name)), [], 'its pod address records are gone');
  t.same(await v.lab.getPrefix(v.lab.keys.identity(victim.name)), [], 'its identity record is gone');
  const lines = [...v.daemons.values()].flatMap((d) => d.logs.split('\n').filter((l) => l.includes('"collected dead node"'))).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 1, 'one log line');
  t.match(lines[0], { node: victim.name, rule: 'ec2-terminated', instanceId: victimId, ec2State: 'terminated', blocks: victimBlocks }, 'naming the node, the rule, the instance and the blocks');
  t.equal(await v.metricSum([keeper], 'trellis_nodes_collected_total', 'rule="ec2-terminated"'), 1, 'counted once by the collector');

  await until("the victim's VPC entries are gone", async () => {
    const routes = (await v.routes()).get(table) ?? [];
    return !routes.some((e) => e.target === victimId || victimBlocks.includes(e.destination));
  }, 30_000, 200);
  t.pass("no VPC entry for the victim's blocks or to its instance");

  // The sleeper (instance running, time rule off) is asked about again after the collection, and stays.
  const asked = askedAbout(sleeperId);
  await until('the collector asked EC2 about the sleeper twice more', () => askedAbout(sleeperId) >= asked + 2, 60_000, 200);
  const owners = await ownerOf();
  t.same(sleeperBlocks.map((b) => owners.get(b)), sleeperBlocks.map(() => sleeper.name), 'the sleeper keeps its claims');
  t.equal(await v.metricSum([keeper], 'trellis_nodes_collected_total'), 1, 'and is not counted');

  await v.start([spare], []);
  const newBlocks = (await v.lab.blocksOf()).filter((b) => b.node === spare.name).map((b) => b.prefix);
  t.same(newBlocks, [victimBlocks[0]], "the newcomer claims the victim's block");
  await until("the victim's block routed to the newcomer's instance", async () => {
    const entries = (await v.entries()).get(table) ?? [];
    return entries.some((e) => e.destination === victimBlocks[0] && e.target === v.instances.get(spare.name));
  }, 30_000, 200);
  t.pass("the victim's block has a VPC entry to the newcomer");
});
