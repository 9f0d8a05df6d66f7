// Route targets on the forwarder's primary network interface, against moto:
// writes name the interface at device index 0 (found by DescribeInstances,
// also for an instance with a second interface), reads report such routes as
// routes to their instance, and entries that an older Trellis made with an
// InstanceId target are adopted in place: no write when the plan keeps their
// target, a single ReplaceRoute when it moves them, never a delete.
import t from 'tap';
import { AttachNetworkInterfaceCommand, CreateNetworkInterfaceCommand, CreateRouteCommand, CreateRouteTableCommand, DescribeRouteTablesCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { parsePrefix } from '../../src/core/cidr.js';
import { loadTopology } from '../../src/core/topology-parse.js';
import { classifyTable } from '../../src/core/vpc-table-state.js';
import { diffVpcEntries } from '../../src/core/vpc-diff.js';
import { Ec2Routes } from '../../src/aws/ec2-routes.js';
import { startEc2Sandbox } from '../../lab/ec2-sandbox.js';
import { needMoto } from '../../lab/moto.js';

const log = pino({ level: 'silent' });
const network = parsePrefix('100.96.0.0/16');

t.test('primary-interface targets and adoption of instance targets', { skip: needMoto() }, async (t) => {
  const { setup, proxy, client, vpcId, subnetId } = await startEc2Sandbox(t);
  const rtb = (await setup.send(new CreateRouteTableCommand({ VpcId: vpcId }))).RouteTable?.RouteTableId as string;
  const run = await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 2, MaxCount: 2, SubnetId: subnetId }));
  const instances = run.Instances ?? [];
  const [i1, i2] = instances.map((i) => i.InstanceId as string) as [string, string];
  const primaryOf = (id: string): string =>
    instances.find((i) => i.InstanceId === id)?.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId as string;
  // A second interface on i1: an InstanceId target would be ambiguous in EC2.
  const second = (await setup.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId }))).NetworkInterface?.NetworkInterfaceId as string;
  await setup.send(new AttachNetworkInterfaceCommand({ NetworkInterfaceId: second, InstanceId: i1, DeviceIndex: 1 }));
  const raw = async (): Promise<Map<string, { instance?: string; eni?: string }>> => {
    const out = await setup.send(new DescribeRouteTablesCommand({ RouteTableIds: [rtb] }));
    return new Map((out.RouteTables?.[0]?.Routes ?? []).map((r) => [r.DestinationCidrBlock ?? '', { instance: r.InstanceId, eni: r.NetworkInterfaceId }]));
  };
  const topology = loadTopology(
    'network: 100.96.0.0/16\nblockSize: 26\nsubnetSize: 20\nzones:\n  - name: z\n    subnets:\n      - { id: s1, cidr: 198.18.1.0/24, routeTable: RTB }\n'.replace('RTB', rtb),
    'test topology',
  );
  const entry = (destination: string, target: string) => ({ table: rtb, destination: parsePrefix(destination), target });

  await t.test('writes target the primary interface, reads give the instance back', async (t) => {
    const routes = new Ec2Routes({ client, vpcId, log });
    proxy.resetCounts();
    await routes.apply({ kind: 'create', entry: entry('100.96.0.0/26', i1) }, rtb, network);
    await routes.apply({ kind: 'replace', entry: entry('100.96.0.64/26', i1) }, rtb, network); // missing: created
    const writes = proxy.recent().filter((c) => c.action !== 'DescribeInstances');
    t.ok(writes.length >= 2 && writes.every((c) => c.params.NetworkInterfaceId === primaryOf(i1) && c.params.InstanceId === undefined), 'every write names the primary interface, none an instance');
    t.equal(proxy.counts().DescribeInstances, 1, 'the interface looked up once');
    const inTable = await raw();
    t.same(inTable.get('100.96.0.0/26'), { instance: undefined, eni: primaryOf(i1) }, 'device index 0, not the second interface');
    t.not(primaryOf(i1), second);
    const read = await routes.describe([rtb]);
    t.same(
      read.tables[0]?.routes.filter((r) => r.destination?.startsWith('100.96.')).map((r) => [r.destination, r.instanceId, r.otherTarget]),
      [['100.96.0.0/26', i1, undefined], ['100.96.0.64/26', i1, undefined]],
      'reported as routes to the instance',
    );
  });

  await t.test('instance-targeted entries are adopted: no write when kept, one ReplaceRoute when moved', async (t) => {
    await setup.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '100.96.1.0/26', InstanceId: i2 }));
    await setup.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '100.96.1.64/26', InstanceId: i2 }));
    // A new leader: nothing cached; it names the cluster's instances.
    const routes = new Ec2Routes({ client, vpcId, log });
    proxy.resetCounts();
    const read = await routes.describe([rtb], [i1, i2]);
    const state = classifyTable(topology, read.tables[0] as NonNullable<(typeof read.tables)[0]>);
    t.same(
      state.owned.length,
      4,
      'two interface routes and two instance routes, all Trellis-shaped',
    );
    t.equal(state.unmanaged.length, 0, 'none counted as a foreign route in the pod network');
    const kept = diffVpcEntries({ entries: [entry('100.96.0.0/26', i1), entry('100.96.0.64/26', i1), entry('100.96.1.0/26', i2), entry('100.96.1.64/26', i2)] }, state.owned);
    t.same(kept.steps, [], 'the plan keeps every target: nothing to write, whatever form the target has');
    const moved = diffVpcEntries({ entries: [entry('100.96.0.0/26', i1), entry('100.96.0.64/26', i1), entry('100.96.1.0/26', i1), entry('100.96.1.64/26', i2)] }, state.owned);
    t.same(moved.steps.map((s) => s.kind), ['replace'], 'moving an instance-targeted entry is one replace');
    for (const s of moved.steps) await routes.apply(s, rtb, network);
    const after = await raw();
    t.same(after.get('100.96.1.0/26'), { instance: undefined, eni: primaryOf(i1) }, 'now on the primary interface of its new target');
    t.same(after.get('100.96.1.64/26'), { instance: i2, eni: undefined }, 'the kept one untouched');
    const counts = proxy.counts();
    t.equal(counts.ReplaceRoute, 1);
    t.equal(counts.CreateRoute, undefined, 'no create');
    t.equal(counts.DeleteRoute, undefined, 'no delete');
  });

  await t.test('an interface that is no known instance\'s primary stays foreign', async (t) => {
    await setup.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '100.96.2.0/26', NetworkInterfaceId: second }));
    const routes = new Ec2Routes({ client, vpcId, log });
    proxy.resetCounts();
    const read = await routes.describe([rtb], [i1, i2, 'i-0123456789abcdef0']);
    t.equal(read.tables[0]?.routes.filter((x) => x.instanceId === i1).length, 3, 'an instance EC2 does not know (a status names a terminated one) spoils nothing');
    await routes.describe([rtb], [i1, i2, 'i-0123456789abcdef0']);
    t.equal(proxy.counts().DescribeInstances, 4, 'the batch, then each alone once; never asked again');
    const r = read.tables[0]?.routes.find((x) => x.destination === '100.96.2.0/26');
    t.same([r?.instanceId, r?.otherTarget], [undefined, second]);
    const state = classifyTable(topology, read.tables[0] as NonNullable<(typeof read.tables)[0]>);
    t.ok(state.unmanaged.some((u) => u.destination === '100.96.2.0/26'), 'reported as unmanaged');
  });
});
