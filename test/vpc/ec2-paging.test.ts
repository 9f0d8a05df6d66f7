// DescribeRouteTables paging against moto: the proxy cuts moto's one-page
// answer into pages of two tables with a NextToken (as EC2 does with
// MaxResults), and the adapter must read every page: six tables in the VPC
// (the main one on the last page), one of them holding 600 routes.
import t from 'tap';
import { CreateRouteCommand, CreateRouteTableCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { Ec2Routes } from '../../src/aws/ec2-routes.js';
import { startEc2Sandbox } from '../../lab/ec2-sandbox.js';
import { needMoto } from '../../lab/moto.js';

const log = pino({ level: 'silent' });

t.test('DescribeRouteTables pages are all read', { skip: needMoto(), timeout: 180_000 }, async (t) => {
  const { setup, proxy, client, vpcId, subnetId } = await startEc2Sandbox(t);
  const instance = (await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1, SubnetId: subnetId }))).Instances?.[0]?.InstanceId as string;
  const tables: string[] = [];
  for (let i = 0; i < 5; i++) tables.push((await setup.send(new CreateRouteTableCommand({ VpcId: vpcId }))).RouteTable?.RouteTableId as string);
  const big = tables[2] as string;
  const want: string[] = [];
  for (let i = 0; i < 600; i++) {
    const destination = `100.${64 + Math.floor(i / 256)}.${i % 256}.0/24`;
    want.push(destination);
    await setup.send(new CreateRouteCommand({ RouteTableId: big, DestinationCidrBlock: destination, InstanceId: instance }));
  }
  const routes = new Ec2Routes({ client, vpcId, log });

  await t.test('one page: as moto answers', async (t) => {
    proxy.resetCounts();
    const read = await routes.describe([big]);
    t.same(proxy.counts(), { DescribeRouteTables: 1 });
    t.equal(read.tables[0]?.routes.filter((r) => r.instanceId === instance).length, 600, 'all 600 instance routes');
  });

  proxy.pageRouteTables(2);

  await t.test('pages of two tables: every page is read, the main table is found on the last', async (t) => {
    proxy.resetCounts();
    const read = await routes.describe(['main', ...tables]);
    t.same(read.missing, [], 'every table found');
    t.equal(proxy.counts().DescribeRouteTables, 3, 'six tables of the VPC in three pages');
    const pages = proxy.recent().map((c) => c.params.NextToken ?? '');
    t.same(pages, ['', 'page-2', 'page-4'], 'each page asked for with the token of the one before');
    t.ok(proxy.recent().every((c) => c.params.MaxResults === '100'), 'MaxResults on every page');
    t.match(read.tables.find((x) => x.name === 'main')?.id, /^rtb-/);
    const bigRead = read.tables.find((x) => x.name === big);
    t.same(bigRead?.routes.filter((r) => r.instanceId === instance).map((r) => r.destination).sort(), [...want].sort(), 'the 600-route table whole');
  });

  await t.test('named tables only: the route-table-id filter pages too', async (t) => {
    proxy.resetCounts();
    const read = await routes.describe(tables);
    t.equal(proxy.counts().DescribeRouteTables, 3, 'five tables in three pages');
    t.same(read.tables.map((x) => x.name).sort(), [...tables].sort());
  });
});
