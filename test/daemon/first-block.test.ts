// Start-up ordering against a real etcd: a node whose subnet has no free block
// keeps running, unregistered (no node record, no advertisement, no lease),
// not ready with the reason on /readyz, counts the failures and logs them;
// once a block frees up it claims it and registers.
import t from 'tap';
import { request } from 'node:http';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/pids.js';
import { daemon, runCli, seedTopology, type Daemon } from '../../lab/trellis.js';

/** One subnet whose pod prefix is exactly one block. */
const ONE_BLOCK = `
network: 100.96.0.0/16
blockSize: 26
subnetSize: 26
zones:
  - name: zone-a
    subnets:
      - id: subnet-a1
        cidr: 198.18.1.0/24
        routeTable: rtb-a
`;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

function httpPort(d: Daemon): number {
  for (const line of d.logs.split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { msg?: string; port?: number };
    if (rec.msg === 'HTTP endpoint listening' && typeof rec.port === 'number') return rec.port;
  }
  throw new Error('no "HTTP endpoint listening" line with a port');
}

t.test('no free block: not registered, not ready, retrying; registers once one frees up', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint, ONE_BLOCK);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const first = daemon(t, { etcd: etcd.endpoint, nodeName: 'first', hostIP: '198.18.1.10', holdTime: '3s' });
  await first.start();
  const late = daemon(t, { etcd: etcd.endpoint, nodeName: 'late', hostIP: '198.18.1.11', holdTime: '3s' });
  await late.start('cannot claim a block; not registering until one is held');
  const port = httpPort(late);

  const ready = await get(port, '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body, /^not ready: cannot claim a block \(subnet subnet-a1 \(pod prefix 100\.96\.0\.0\/26\) has no free block left for node late\); not registered, retrying in \d+ s \(attempt \d+\)\n$/);
  t.match((await get(port, '/metrics')).body, /^trellis_block_claim_failures_total\{reason="exhausted"\} [1-9]\d*$/m);
  t.ok(late.running, 'it keeps running');
  t.equal(await client.get('/trellis/v1/nodes/late').exists(), false, 'no node record');
  t.equal(await client.get('/trellis/v1/routes/subnet-a1/late').exists(), false, 'no advertisement');
  t.same((await client.getAll().prefix('/trellis/v1/').keys()).filter((k) => k.includes('late')), [], 'no record of it at all');

  // The only block frees up: the first node leaves for good.
  await first.stop();
  const withdrawn = runCli('daemon/trellisd', ['--withdraw', '--node-name', 'first', '--host-ip', '198.18.1.10', '--interface', 'eth0',
    '--etcd-endpoints', etcd.endpoint, '--state-dir', first.stateDir]);
  t.equal(withdrawn.code, 0, withdrawn.stderr);
  await late.waitForLog('cluster view synced', 60_000);
  await until('/readyz 200', async () => (await get(port, '/readyz')).status === 200, 60_000);
  t.ok(await client.get('/trellis/v1/nodes/late').exists(), 'registered');
  t.match(JSON.parse((await client.get('/trellis/v1/routes/subnet-a1/late').string()) as string), { prefixes: ['100.96.0.0/26'] }, 'advertising the freed block');
});
