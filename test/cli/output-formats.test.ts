// trellisctl's output, BUILT program against a real etcd: -o table|wide|json|yaml,
// numbers as JSON numbers, prefixes in numeric order, --etcd as a hidden alias
// of --etcd-endpoints, ETCDCTL_ENDPOINTS when TRELLIS_ETCD_ENDPOINTS is unset.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { ROOT, runCli } from '../../lab/trellis.js';
import { BlockSchema, NodeSchema, AdvertisementSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { encodeRecord, makeRecord } from '../../src/state/records.js';

const ctl = (args: string[], env: Record<string, string> = {}) => runCli('src/cli/trellisctl', args, env);
const dir = mkdtempSync(join(tmpdir(), 'trellis-conventions-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

t.test('against etcd: aliases, environment, output formats, numbers, order', async (t) => {
  const etcd = await startEtcd(t);
  const e = ['--etcd-endpoints', etcd.endpoint];
  const applied = ctl(['topology', 'apply', join(ROOT, 'examples/topology.yaml'), ...e]);
  t.equal(applied.code, 0, applied.stderr);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const block = (prefix: string, node: string, allocations: Record<string, { containerId: string; ifName: string; netns?: string }> = {}) =>
    client.put(`/trellis/v1/blocks/${prefix.replace('/', '-')}`).value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix, subnet: 'subnet-0a1', node, allocations })));
  const long = '0123456789abcdef'.repeat(4);
  await block('100.96.18.0/26', 'node-b');
  await block('100.96.2.0/26', 'node-a', { '100.96.2.9': { containerId: long, ifName: 'eth0', netns: '/var/run/netns/pod-1' } });
  await block('100.96.10.0/26', 'node-a');
  // runCli blocks this process while a child runs, so keepalives may be late: a long TTL, revoked at the end.
  const lease = client.lease(600);
  t.teardown(() => lease.revoke());
  for (const [name, ip] of [['node-b', '198.18.0.11'], ['node-a', '198.18.0.10']] as const) {
    await lease.put(`/trellis/v1/nodes/${name}`).value(encodeRecord(NodeSchema, makeRecord(NodeSchema, { name, subnet: 'subnet-0a1', zone: 'us-east-1a', hostIp: ip, healthEndpoint: `${ip}:9653` })));
  }
  await lease.put('/trellis/v1/routes/subnet-0a1/node-a').value(encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: 'node-a', subnet: 'subnet-0a1', nextHop: '198.18.0.10', prefixes: ['100.96.2.0/26', '100.96.10.0/26'], instanceId: 'i-0a' })));

  t.test('--etcd is a hidden alias of --etcd-endpoints', async (t) => {
    const help = ctl(['nodes', '--help']).stdout;
    t.match(help, /--etcd-endpoints URLS/);
    t.notMatch(help, /--etcd /, 'not shown in help');
    const canonical = ctl(['nodes', '-o', 'json', ...e]);
    t.equal(canonical.code, 0, canonical.stderr);
    t.same(ctl(['nodes', '-o', 'json', '--etcd', etcd.endpoint]), canonical);
  });

  t.test('ETCDCTL_ENDPOINTS is used when TRELLIS_ETCD_ENDPOINTS is unset, and loses to it', async (t) => {
    const r = ctl(['nodes'], { ETCDCTL_ENDPOINTS: etcd.endpoint });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /node-a/);
    const lost = ctl(['nodes'], { ETCDCTL_ENDPOINTS: etcd.endpoint, TRELLIS_ETCD_ENDPOINTS: 'http://127.0.0.1:9' });
    t.equal(lost.code, 1);
    t.match(lost.stderr, /cannot reach etcd at http:\/\/127\.0\.0\.1:9/);
  });

  t.test('blocks: numeric order, numbers in JSON, YAML = JSON, wide adds columns', async (t) => {
    const table = ctl(['blocks', ...e]);
    t.equal(table.code, 0, table.stderr);
    const order = table.stdout.split('\n').slice(1, -1).map((l) => l.split(/\s+/)[0]);
    t.same(order, ['100.96.2.0/26', '100.96.10.0/26', '100.96.18.0/26']);
    const json = JSON.parse(ctl(['blocks', '-o', 'json', ...e]).stdout) as Array<{ prefix: string; size: unknown; allocated: unknown; resting: unknown }>;
    t.same(json.map((b) => b.prefix), order);
    t.equal(json[0]?.size, 64, 'size is a JSON number');
    t.equal(json[0]?.allocated, 1);
    t.same(parseYaml(ctl(['blocks', '-o', 'yaml', ...e]).stdout), json, '-o yaml holds the same data');
    const wide = ctl(['blocks', '-o', 'wide', ...e]).stdout;
    t.match(wide, /^BLOCK\s+SUBNET\s+NODE\s+USED\s+RESTING\s+KEY\s+CLAIMED\s+STATUS\n/);
    t.match(wide, /100\.96\.2\.0\/26 .*\/trellis\/v1\/blocks\/100\.96\.2\.0-26/);
    t.notMatch(table.stdout, /RESTING|KEY/);
  });

  t.test('nodes, routes and ipam: sorted, wide, yaml', async (t) => {
    const nodes = JSON.parse(ctl(['nodes', '-o', 'json', ...e]).stdout) as Array<{ name: string; blocks: string[] }>;
    t.same(nodes.map((n) => n.name), ['node-a', 'node-b'], 'nodes by name');
    t.same(parseYaml(ctl(['nodes', '-o', 'yaml', ...e]).stdout), nodes);
    t.match(ctl(['nodes', '-o', 'wide', ...e]).stdout, /HEALTH ENDPOINT[^]*198\.18\.0\.10:9653/);
    t.notMatch(ctl(['nodes', ...e]).stdout, /HEALTH ENDPOINT/);
    const routes = JSON.parse(ctl(['routes', '-o', 'json', ...e]).stdout) as Array<{ prefixes: string[] }>;
    t.same(routes[0]?.prefixes, ['100.96.2.0/26', '100.96.10.0/26'], 'advertised prefixes in numeric order');
    t.match(ctl(['routes', '-o', 'wide', ...e]).stdout, /^SUBNET\s+NODE\s+NEXT HOP\s+INSTANCE\s+LEASE\s+PREFIXES\s+STATUS\n[^]*i-0a/);
    const ipam = ctl(['ipam', ...e]).stdout;
    t.match(ipam, /0123456789ab\s/);
    t.notMatch(ipam, new RegExp(long));
    const wide = ctl(['ipam', '-o', 'wide', ...e]).stdout;
    t.match(wide, new RegExp(`${long}\\s+eth0[^]*/var/run/netns/pod-1`), 'wide: whole container id and netns');
    const ipamJson = JSON.parse(ctl(['ipam', '-o', 'json', ...e]).stdout) as Array<{ node: string; blocks: Array<{ prefix: string; size: unknown }> }>;
    t.same(ipamJson[0]?.blocks.map((b) => [b.prefix, b.size]), [['100.96.2.0/26', 64], ['100.96.10.0/26', 64]]);
    t.same(parseYaml(ctl(['ipam', '-o', 'yaml', ...e]).stdout), ipamJson);
  });

  t.test('topology show and vpc status in yaml', async (t) => {
    const json = JSON.parse(ctl(['topology', 'show', '-o', 'json', ...e]).stdout) as { generation: unknown };
    t.equal(json.generation, 1);
    t.same(parseYaml(ctl(['topology', 'show', '-o', 'yaml', ...e]).stdout), json);
    const status = ctl(['vpc', 'status', '-o', 'yaml', ...e]);
    t.equal(status.code, 0, status.stderr);
    t.same(parseYaml(status.stdout), JSON.parse(ctl(['vpc', 'status', '-o', 'json', ...e]).stdout));
  });
});

t.test('offline commands: topology render and vpc plan in yaml', async (t) => {
  const topo = join(ROOT, 'examples/topology.yaml');
  const json = ctl(['topology', 'render', topo, '-o', 'json']);
  t.same(parseYaml(ctl(['topology', 'render', topo, '-o', 'yaml']).stdout), JSON.parse(json.stdout));
  const nodes = file('nodes.json', JSON.stringify([{ name: 'n1', subnet: 'subnet-0a1', instanceId: 'i-01', blocks: ['100.96.0.0/26'] }]));
  const plan = ctl(['vpc', 'plan', '--topology', topo, '--nodes', nodes, '-o', 'yaml']);
  t.equal(plan.code, 0, plan.stderr);
  t.same(parseYaml(plan.stdout), JSON.parse(ctl(['vpc', 'plan', '--topology', topo, '--nodes', nodes, '-o', 'json']).stdout));
  t.equal(ctl(['topology', 'render', topo, '-o', 'wide']).code, 2, 'no wide table where there are no more columns');
});
