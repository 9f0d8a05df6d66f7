// A running node whose block is taken from it (here `trellisctl node remove
// --force`, as a collection while it was cut off would) withdraws the block
// at once, logs and counts it, is not ready until it holds a new block, never
// chooses the taken block again and hands out no address from it.
import t from 'tap';
import { request } from 'node:http';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';
import { until } from '../../lab/pids.js';
import { daemon, runCli, seedTopology, type Daemon } from '../../lab/trellis.js';
import { contains, parsePrefix } from '../../src/core/cidr.js';

function get(d: Daemon, path: string): Promise<{ status: number; body: string }> {
  const line = d.logs.split('\n').find((l) => l.includes('"HTTP endpoint listening"'));
  const port = (JSON.parse(line as string) as { port: number }).port;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a block taken from a running node is withdrawn, reported and never used again', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'held', hostIP: '198.18.1.80', holdTime: '3s' });
  await d.start();
  await until('ready', async () => (await get(d, '/readyz')).status === 200);
  const sock = join(d.stateDir, 'trellisd.sock');
  const before = await callIpamSocket(sock, 'POST', '/v1/allocate', { containerId: 'old-pod', ifName: 'eth0' });
  t.equal(before.status, 200, JSON.stringify(before.body));
  const taken = before.body.block as string;
  const advertKey = '/trellis/v1/routes/subnet-a1/held';
  const advertised = async (): Promise<string[]> => {
    const v = await client.get(advertKey).string();
    return v === null ? [] : ((JSON.parse(v) as { prefixes?: string[] }).prefixes ?? []);
  };
  t.same(await advertised(), [taken]);

  const removed = runCli('src/cli/trellisctl', ['node', 'remove', 'held', '--force', '--etcd-endpoints', etcd.endpoint]);
  t.equal(removed.code, 0, removed.stderr);
  await d.waitForLog('block taken from this node while it held it');
  await d.waitForLog('holding blocks again after blocks were taken', 30_000);
  await until('advertising a new block', async () => {
    const a = await advertised();
    return a.length > 0 && !a.includes(taken);
  });
  const now = await advertised();
  t.notOk(now.includes(taken), `the taken block ${taken} is no longer advertised (now ${now.join(' ')})`);
  const claims = Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).map((v) => JSON.parse(v) as { prefix: string; node: string });
  t.same(claims.map((c) => c.node), ['held'], 'it holds one block again');
  t.not(claims[0]?.prefix, taken, 'not the taken one');
  t.match((await get(d, '/metrics')).body, /^trellis_blocks_lost_total 1$/m);
  await until('ready again', async () => (await get(d, '/readyz')).status === 200);

  for (let i = 0; i < 5; i++) {
    const r = await callIpamSocket(sock, 'POST', '/v1/allocate', { containerId: `new-pod-${i}`, ifName: 'eth0' });
    t.equal(r.status, 200, JSON.stringify(r.body));
    t.notOk(contains(parsePrefix(taken), parsePrefix(`${r.body.address as string}/32`)), `${r.body.address as string} is not in the taken block`);
  }
});
