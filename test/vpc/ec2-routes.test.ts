// The EC2 adapter against moto_server (through the counting proxy): one
// DescribeRouteTables per read, idempotent writes, refusal to write outside
// the pod network, retries under throttling until EC2 lets the call through,
// which failures count as EC2 answering (for the unreachable rule), the source/destination
// check; and the IMDSv2 lookups against local metadata servers.
import t from 'tap';
import { createServer } from 'node:http';
import { EC2Client, AllocateAddressCommand, CreateInternetGatewayCommand, AttachInternetGatewayCommand, CreateNatGatewayCommand, CreateRouteCommand, CreateRouteTableCommand, DescribeInstanceAttributeCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { parsePrefix } from '../../src/core/cidr.js';
import { ErrorCode, hasCode } from '../../src/errors.js';
import { Ec2Routes } from '../../src/aws/ec2-routes.js';
import { resolveIdentity } from '../../src/aws/metadata.js';
import { startEc2Sandbox } from '../../lab/ec2-sandbox.js';
import { needMoto, startMoto } from '../../lab/moto.js';
import { until } from '../../lab/pids.js';
import { freePort } from '../../lab/ports.js';

const log = pino({ level: 'silent' });
const network = parsePrefix('100.96.0.0/16');
const step = (kind: 'create' | 'replace' | 'delete', destination: string, target: string, table = 'rtb') => ({ kind, entry: { table, destination: parsePrefix(destination), target } });

t.test('EC2 adapter against moto', { skip: needMoto() }, async (t) => {
  const { setup, proxy, client, vpcId, subnetId } = await startEc2Sandbox(t);
  const rtb = (await setup.send(new CreateRouteTableCommand({ VpcId: vpcId }))).RouteTable?.RouteTableId as string;
  const igw = (await setup.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId as string;
  await setup.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vpcId }));
  const eip = await setup.send(new AllocateAddressCommand({ Domain: 'vpc' }));
  const nat = (await setup.send(new CreateNatGatewayCommand({ SubnetId: subnetId, AllocationId: eip.AllocationId }))).NatGateway?.NatGatewayId as string;
  await setup.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igw }));
  await setup.send(new CreateRouteCommand({ RouteTableId: rtb, DestinationCidrBlock: '198.19.0.0/16', NatGatewayId: nat }));
  const run = await setup.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 2, MaxCount: 2, SubnetId: subnetId }));
  const [i1, i2] = (run.Instances ?? []).map((i) => i.InstanceId as string) as [string, string];

  const calls: string[] = [];
  const routes = new Ec2Routes({
    client,
    vpcId,
    log,
    retry: { baseDelayMs: 1, maxDelayMs: 5 },
    observer: {
      call: (action, result) => calls.push(`${action}:${result}`),
      retry: (action) => calls.push(`${action}:retry`),
      exhausted: (action) => calls.push(`${action}:exhausted`),
    },
  });

  await t.test('one DescribeRouteTables reads the named table and the main one', async (t) => {
    proxy.resetCounts();
    const read = await routes.describe([rtb, 'main', 'rtb-0nothere']);
    t.same(proxy.counts(), { DescribeRouteTables: 1 }, 'a single call');
    t.same(read.missing, ['rtb-0nothere'], 'an unknown table is reported, not fatal');
    const named = read.tables.find((x) => x.name === rtb);
    t.same(
      named?.routes.map((r) => [r.destination, r.instanceId ?? r.otherTarget]).sort(),
      [['0.0.0.0/0', igw], ['198.18.0.0/16', 'local'], ['198.19.0.0/16', nat]],
      'gateway, NAT and local routes with their targets',
    );
    const main = read.tables.find((x) => x.name === 'main');
    t.match(main?.id, /^rtb-/, 'the VPC main table found by its association');
    t.not(main?.id, rtb);
    const noVpc = new Ec2Routes({ client, vpcId: '', log });
    await t.rejects(noVpc.describe(['main']), { code: ErrorCode.Config }, 'the main table needs the VPC id');
  });

  await t.test('writes are idempotent and only ever touch the pod network', async (t) => {
    proxy.resetCounts();
    await routes.apply(step('create', '100.96.0.0/26', i1), rtb, network);
    await routes.apply(step('create', '100.96.0.0/26', i2), rtb, network); // taken: replaced
    await routes.apply(step('replace', '100.96.1.0/26', i1), rtb, network); // missing: created
    let read = await routes.describe([rtb]);
    const pods = (): string[] => (read.tables[0]?.routes ?? []).filter((r) => r.instanceId !== undefined).map((r) => `${r.destination}>${r.instanceId}`).sort();
    t.same(pods(), [`100.96.0.0/26>${i2}`, `100.96.1.0/26>${i1}`]);
    await routes.apply(step('delete', '100.96.0.0/26', i2), rtb, network);
    await routes.apply(step('delete', '100.96.0.0/26', i2), rtb, network); // already gone: fine
    read = await routes.describe([rtb]);
    t.same(pods(), [`100.96.1.0/26>${i1}`]);
    // moto lets a create to an interface overwrite a taken destination (EC2
    // answers RouteAlreadyExists, and the adapter then replaces): one replace
    // fewer than EC2 would take.
    t.same(proxy.counts(), { DescribeInstances: 2, CreateRoute: 3, ReplaceRoute: 1, DescribeRouteTables: 2, DeleteRoute: 2 }, 'fallbacks cost one call each; each target\'s interface looked up once');
    proxy.resetCounts();
    for (const dest of ['0.0.0.0/0', '198.19.0.0/16', '198.18.0.0/16']) {
      for (const kind of ['create', 'replace', 'delete'] as const) {
        await t.rejects(routes.apply(step(kind, dest, i1), rtb, network), { code: ErrorCode.Internal }, `${kind} ${dest} refused`);
      }
    }
    t.same(proxy.counts(), {}, 'no request was made for them');
    read = await routes.describe([rtb]);
    t.equal(read.tables[0]?.routes.filter((r) => r.otherTarget !== undefined).length, 3, 'gateway, NAT and local routes intact');
  });

  await t.test('throttling never makes a call give up while keepTrying holds', async (t) => {
    proxy.resetCounts();
    calls.length = 0;
    proxy.throttle(1);
    const pending = routes.describe([rtb]);
    await until('more throttled attempts than maxAttempts', () => (proxy.throttledCounts().DescribeRouteTables ?? 0) >= 8, 60_000, 20);
    proxy.throttle(0);
    const read = await pending;
    t.equal(read.tables[0]?.id, rtb, 'the same call went on and succeeded once EC2 let it');
    t.ok((proxy.throttledCounts().DescribeRouteTables ?? 0) >= 8, 'beyond the five attempts other failures get');
    t.notOk(calls.includes('DescribeRouteTables:exhausted'), 'never given up');
    const stopping = new Ec2Routes({ client, vpcId, log, retry: { baseDelayMs: 1, maxDelayMs: 5 }, keepTrying: () => false });
    proxy.throttle(1);
    proxy.resetCounts();
    const err = await stopping.describe([rtb]).then(() => undefined, (e: unknown) => e);
    proxy.throttle(0);
    t.ok(hasCode(err, ErrorCode.Unavailable), 'when the caller stops (no longer leader): E_UNAVAILABLE');
    t.match(String((err as Error).message), /DescribeRouteTables failed after 1 attempts: RequestLimitExceeded/);
    t.same(proxy.throttledCounts(), { DescribeRouteTables: 1 });
    proxy.throttle(0.5);
    proxy.resetCounts();
    calls.length = 0;
    await routes.apply(step('create', '100.96.2.0/26', i2), rtb, network);
    await routes.apply(step('create', '100.96.4.0/26', i2), rtb, network);
    await routes.describe([rtb]);
    t.same(proxy.throttledCounts(), { CreateRoute: 1, DescribeRouteTables: 1 }, 'every second call throttled');
    t.same(calls, ['CreateRoute:ok', 'CreateRoute:throttled', 'CreateRoute:retry', 'CreateRoute:ok', 'DescribeRouteTables:throttled', 'DescribeRouteTables:retry', 'DescribeRouteTables:ok']);
    proxy.throttle(0);
  });

  await t.test('whether EC2 answered: any HTTP answer counts, refusals included; a dead endpoint does not', async (t) => {
    const answered: boolean[] = [];
    const observer = { call: () => undefined, retry: () => undefined, exhausted: () => undefined, answered: (a: boolean) => answered.push(a) };
    const watched = new Ec2Routes({ client, vpcId, log, retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 2 }, observer, keepTrying: () => false });
    await watched.describe([rtb]);
    proxy.throttle(1);
    await t.rejects(watched.describe([rtb]), { code: ErrorCode.Unavailable });
    proxy.throttle(0);
    await t.rejects(watched.apply(step('create', '100.96.3.0/26', i1), 'rtb-0doesnotexist', network), { code: ErrorCode.Cloud });
    // describe; the refused describe; the target's DescribeInstances, then CreateRoute into a table that does not exist
    t.same(answered, [true, true, true, true], 'an answer, a refusal and an error answer are all answers');
    answered.length = 0;
    const port = await freePort(); // nothing listens there
    const deadClient = new EC2Client({ region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, maxAttempts: 1 });
    t.teardown(() => deadClient.destroy());
    const dead = new Ec2Routes({ client: deadClient, vpcId, log, retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 2 }, observer });
    await t.rejects(dead.describe([rtb]), { code: ErrorCode.Unavailable });
    t.same(answered, [false, false], 'a refused connection is no answer, at every attempt');
  });

  await t.test('a refused call is not retried', async (t) => {
    calls.length = 0;
    await t.rejects(routes.apply(step('create', '100.96.3.0/26', i1), 'rtb-0doesnotexist', network), { code: ErrorCode.Cloud });
    t.equal(calls.filter((c) => c.startsWith('CreateRoute')).length, 1, 'one attempt');
    calls.length = 0;
    await t.rejects(routes.apply(step('create', '100.96.3.0/26', 'i-0doesnotexist'), rtb, network), { code: ErrorCode.Cloud, message: /no primary network interface/ });
    t.equal(calls.filter((c) => c.startsWith('CreateRoute')).length, 0, 'an unknown instance: no write at all');
  });

  await t.test('source/destination check turned off', async (t) => {
    await routes.disableSourceDestCheck(i1);
    const attr = await setup.send(new DescribeInstanceAttributeCommand({ InstanceId: i1, Attribute: 'sourceDestCheck' }));
    t.equal(attr.SourceDestCheck?.Value, false);
  });
});

t.test('instance metadata: IMDSv2 token flow, only what is missing', async (t) => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      res.end(req.headers['x-aws-ec2-metadata-token-ttl-seconds'] === undefined ? '' : 'tok');
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== 'tok') {
      res.writeHead(401).end();
      return;
    }
    const answers: Record<string, string> = {
      '/latest/meta-data/instance-id': 'i-0imds',
      '/latest/meta-data/placement/region': 'eu-west-3',
      '/latest/meta-data/mac': '02:00:00:00:00:01',
      '/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/vpc-id': 'vpc-0imds',
    };
    const body = answers[req.url ?? ''];
    if (body === undefined) res.writeHead(404).end();
    else res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const all = await resolveIdentity({ instanceId: '', region: '', vpcId: '', needVpcId: true }, { endpoint });
  t.same(all, { instanceId: 'i-0imds', region: 'eu-west-3', vpcId: 'vpc-0imds' });
  t.equal(seen[0], 'PUT /latest/api/token', 'a token first');
  seen.length = 0;
  const some = await resolveIdentity({ instanceId: 'i-0conf', region: '', vpcId: '', needVpcId: false }, { endpoint });
  t.same(some, { instanceId: 'i-0conf', region: 'eu-west-3', vpcId: '' }, 'configured values are kept');
  t.same(seen, ['PUT /latest/api/token', 'GET /latest/meta-data/placement/region'], 'only the region was asked for');
  seen.length = 0;
  t.same(await resolveIdentity({ instanceId: 'i-1', region: 'us-east-1', vpcId: '', needVpcId: false }, { endpoint }), { instanceId: 'i-1', region: 'us-east-1', vpcId: '' });
  t.same(seen, [], 'nothing configured is looked up: no request at all');

  server.closeAllConnections();
  const dead = `http://127.0.0.1:1`;
  await t.rejects(resolveIdentity({ instanceId: '', region: 'us-east-1', vpcId: '', needVpcId: false }, { endpoint: dead, attempts: 1, timeoutMs: 500 }), {
    code: ErrorCode.Unavailable,
    message: /cannot read the instance metadata at http:\/\/127\.0\.0\.1:1 \(IMDSv2\).*set instanceId/,
  });
});

t.test('instance metadata from moto', { skip: needMoto() }, async (t) => {
  const moto = await startMoto(t);
  const id = await resolveIdentity({ instanceId: '', region: '', vpcId: '', needVpcId: false }, { endpoint: moto.localEndpoint });
  t.same(id, { instanceId: 'i-fake', region: 'us-east-1', vpcId: '' });
});
