// Time-based collection against a real etcd and real trellisd processes: with
// gc.deadNodeAfter set, one elected collector gives back the claims and pod
// address records of a node killed for good once its record has been absent
// for the grace, logs it once and counts it; the freed block is claimed by a
// new node.
import t from 'tap';
import { request } from 'node:http';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/pids.js';
import { daemon, seedTopology, type Daemon } from '../../lab/trellis.js';

/** One subnet of four blocks. */
const FOUR_BLOCKS = `
network: 100.96.0.0/16
blockSize: 26
subnetSize: 24
zones:
  - name: zone-a
    subnets:
      - id: subnet-a1
        cidr: 198.18.1.0/24
        routeTable: rtb-a
`;

function metrics(d: Daemon): Promise<string> {
  const line = d.logs.split('\n').find((l) => l.includes('"HTTP endpoint listening"'));
  const port = (JSON.parse(line as string) as { port: number }).port;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('gc.deadNodeAfter: a node killed for good is collected after the grace, once', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint, FOUR_BLOCKS);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const gc = ['--gc-dead-node-after', '2s'];
  const keepers = [
    daemon(t, { etcd: etcd.endpoint, nodeName: 'keeper-1', hostIP: '198.18.1.11', holdTime: '3s', args: gc }),
    daemon(t, { etcd: etcd.endpoint, nodeName: 'keeper-2', hostIP: '198.18.1.12', holdTime: '3s', args: gc }),
  ];
  const victim = daemon(t, { etcd: etcd.endpoint, nodeName: 'victim', hostIP: '198.18.1.13', holdTime: '3s' });
  await Promise.all([...keepers, victim].map((d) => d.start()));
  const claims = async (): Promise<Map<string, string>> =>
    new Map(Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).map((v) => JSON.parse(v) as { prefix: string; node: string }).map((b) => [b.prefix, b.node]));
  const victimBlock = [...(await claims())].find(([, n]) => n === 'victim')![0];
  await client.put(`/trellis/v1/ipam/victim/${victimBlock.replace('/', '-')}/${victimBlock.replace(/0\/26$/, '1')}`)
    .value(JSON.stringify({ schemaVersion: 1, address: victimBlock.replace(/0\/26$/, '1'), block: victimBlock, node: 'victim', allocation: { containerId: 'c', ifName: 'eth0' } }));

  victim.kill();
  await until('victim collected', async () => !(await claims()).has(victimBlock), 60_000);
  t.same([...(await claims()).values()].sort(), ['keeper-1', 'keeper-2'], 'only the live nodes hold blocks');
  t.same(await client.getAll().prefix('/trellis/v1/ipam/victim/').keys(), [], 'its pod address records are gone');
  await until('the collection is logged', () => keepers.some((k) => /collected dead node/.test(k.logs)), 10_000);
  const lines = keepers.flatMap((k) => k.logs.split('\n').filter((l) => l.includes('"collected dead node"')).map((l) => ({ k, rec: JSON.parse(l) as Record<string, unknown> })));
  t.equal(lines.length, 1, 'one collector, one log line');
  t.match(lines[0]?.rec, { node: 'victim', rule: 'dead-node-after', blocks: [victimBlock], addresses: 1 });
  t.ok((lines[0]?.rec.absentForMs as number) >= 2000, 'not before the grace');
  const collector = lines[0]!.k;
  t.match(await metrics(collector), /^trellis_nodes_collected_total\{rule="dead-node-after"\} 1$/m);
  const other = keepers.find((k) => k !== collector)!;
  t.match(await metrics(other), /^trellis_nodes_collected_total\{rule="dead-node-after"\} 0$/m);

  // Two newcomers need two blocks: one was free, the other is the victim's.
  const newcomers = [
    daemon(t, { etcd: etcd.endpoint, nodeName: 'new-1', hostIP: '198.18.1.21', holdTime: '3s' }),
    daemon(t, { etcd: etcd.endpoint, nodeName: 'new-2', hostIP: '198.18.1.22', holdTime: '3s' }),
  ];
  await Promise.all(newcomers.map((d) => d.start()));
  t.match((await claims()).get(victimBlock), /^new-[12]$/, 'the collected block is claimed again');
});
