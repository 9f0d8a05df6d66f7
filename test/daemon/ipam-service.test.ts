// The IPAM API of trellisd on its unix socket, against a real etcd.
import t from 'tap';
import { request } from 'node:http';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { contains, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/pids.js';
import { daemon, seedTopology, type Daemon } from '../../lab/trellis.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';

/** One subnet of four addresses: one /30 block. */
const TINY_TOPOLOGY = `
network: 100.100.0.0/28
blockSize: 30
subnetSize: 30
zones:
  - name: zone-a
    subnets:
      - id: subnet-tiny
        cidr: 198.18.1.0/24
`;

const call = callIpamSocket;

/** trellisd's /metrics (the lab starts it with --http-listen 127.0.0.1:0; the port is in its log). */
async function scrape(d: Daemon): Promise<string> {
  const line = d.logs.split('\n').find((l) => l.includes('"HTTP endpoint listening"'));
  const port = line === undefined ? undefined : (JSON.parse(line) as { port?: number }).port;
  if (port === undefined) throw new Error('no HTTP port in the log');
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one sample line (`name{labels}` exactly), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('IPAM API', async (t) => {
  const etcd = await startEtcd(t);
  const topology = await seedTopology(etcd.endpoint);
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'ipam-node', hostIP: '198.18.1.60', args: ['--ipam-address-rest', '0s'] });
  await d.start('IPAM API listening');
  const sock = join(d.stateDir, 'trellisd.sock');
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const podPrefix = topology.zones[0]!.subnets[0]!.podPrefix;

  t.test('socket is private', async (t) => {
    t.equal(statSync(sock).mode & 0o777, 0o600);
  });

  t.test('status', async (t) => {
    const s = await call(sock, 'GET', '/v1/status');
    t.equal(s.status, 200);
    t.match(s.body, { ready: true, node: 'ipam-node', subnet: 'subnet-a1', routeProtocol: 84, routeTable: 254 });
    t.equal((s.body.blocks as string[]).length, 1);
  });

  t.test('allocate is idempotent and recorded in etcd before it returns', async (t) => {
    const req = { containerId: 'c-1', ifName: 'eth0', netns: '/var/run/netns/x', podNamespace: 'default', podName: 'web-1', network: 'trellis' };
    const a = await call(sock, 'POST', '/v1/allocate', req);
    t.equal(a.status, 200, JSON.stringify(a.body));
    const address = a.body.address as string;
    t.ok(contains(podPrefix, parseAddress(address)), `${address} inside the subnet's pod prefix`);
    t.equal(a.body.prefixLength, 32);
    const key = `/trellis/v1/ipam/ipam-node/${(a.body.block as string).replace('/', '-')}/${address}`;
    const record = JSON.parse((await client.get(key).string()) as string) as { allocation: { containerId: string; podName: string } };
    t.match(record.allocation, { containerId: 'c-1', podName: 'web-1' }, 'etcdctl shows which container holds the address');
    const again = await call(sock, 'POST', '/v1/allocate', req);
    t.equal(again.body.address, address, 'same pair, same address');
  });

  t.test('50 concurrent allocations: 50 distinct addresses, new blocks advertised before use', async (t) => {
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => call(sock, 'POST', '/v1/allocate', { containerId: `burst-${i}`, ifName: 'eth0', network: 'trellis' })),
    );
    t.ok(replies.every((r) => r.status === 200), 'all succeeded');
    const addresses = replies.map((r) => r.body.address as string);
    t.equal(new Set(addresses).size, 50, 'all distinct');
    const blocks = new Set(replies.map((r) => r.body.block as string));
    t.ok(blocks.size >= 1);
    const adv = JSON.parse((await client.get('/trellis/v1/routes/subnet-a1/ipam-node').string()) as string) as { prefixes: string[] };
    for (const b of blocks) {
      t.ok(adv.prefixes.some((p) => contains(parsePrefix(p), parsePrefix(b))), `block ${b} is advertised`);
    }
    const list = await call(sock, 'GET', '/v1/allocations');
    t.equal((list.body.allocations as unknown[]).length, 51);
  });

  t.test('release, then release again', async (t) => {
    const r = await call(sock, 'POST', '/v1/release', { containerId: 'burst-0', ifName: 'eth0' });
    t.equal(r.status, 200);
    t.type(r.body.address, 'string');
    const again = await call(sock, 'POST', '/v1/release', { containerId: 'burst-0', ifName: 'eth0' });
    t.equal(again.status, 200);
    t.equal(again.body.address, '', 'nothing held any more (every field is sent, empty ones too)');
  });

  t.test('gc releases what is not in the valid attachments of the network', async (t) => {
    await call(sock, 'POST', '/v1/allocate', { containerId: 'other-net', ifName: 'eth0', network: 'elsewhere' });
    const valid = Array.from({ length: 49 }, (_, i) => ({ containerId: `burst-${i + 1}`, ifName: 'eth0' }));
    const g = await call(sock, 'POST', '/v1/gc', { network: 'trellis', validAttachments: valid });
    t.equal(g.status, 200);
    t.equal((g.body.released as string[]).length, 1, 'only c-1 was not valid');
    const list = (await call(sock, 'GET', '/v1/allocations')).body.allocations as Array<{ containerId: string }>;
    t.same(list.map((a) => a.containerId).sort(), [...valid.map((v) => v.containerId), 'other-net'].sort(), 'other networks untouched');
  });

  t.test('bad requests', async (t) => {
    const missing = await call(sock, 'POST', '/v1/allocate', { ifName: 'eth0' });
    t.equal(missing.status, 400);
    t.match(missing.body, { code: 'E_CONFIG', message: 'containerId is required' });
    const junk = await call(sock, 'POST', '/v1/allocate', { containerId: 3 });
    t.equal(junk.status, 400);
    t.match(junk.body.message, /bad AllocateRequest: .*expected string, got 3/);
    const nowhere = await call(sock, 'GET', '/v1/nothing');
    t.equal(nowhere.status, 404);
  });

  t.test('metrics count and time the calls', async (t) => {
    const m = await scrape(d);
    // ok: c-1 twice, 50 burst, other-net; error: the allocate without containerId (a body that does not parse is not a call).
    t.equal(sample(m, 'trellis_ipam_allocations_total{result="ok"}'), 53);
    t.equal(sample(m, 'trellis_ipam_allocations_total{result="error"}'), 1);
    t.equal(sample(m, 'trellis_ipam_allocation_duration_seconds_count{result="ok"}'), 53, 'each allocate timed');
    t.equal(sample(m, 'trellis_ipam_releases_total{result="released"}'), 1);
    t.equal(sample(m, 'trellis_ipam_releases_total{result="none"}'), 1);
    t.equal(sample(m, 'trellis_ipam_gc_released_total'), 1);
    t.equal(sample(m, 'trellis_ipam_exhausted_total'), 0);
    // Usage is refreshed on a timer: wait for the refresh that sees the 50 allocations left.
    await until('usage refreshed', async () => sample(await scrape(d), 'trellis_ipam_addresses_allocated') === 50, 25_000, 250);
    const u = await scrape(d);
    const blocks = sample(u, 'trellis_ipam_blocks') ?? 0;
    t.ok(blocks >= 1, `${blocks} blocks held`);
    t.equal((sample(u, 'trellis_ipam_addresses_free') ?? NaN) + 50, blocks * 64, 'free + allocated = the addresses of the /26 blocks held');
  });

  t.test('a second daemon cannot take a live socket', async (t) => {
    const other = daemon(t, { etcd: etcd.endpoint, nodeName: 'ipam-two', hostIP: '198.18.1.61', args: ['--ipam-socket', sock] });
    await t.rejects(other.start('IPAM API listening', 15_000), /another process is serving/);
  });
});

t.test('an exhausted subnet is counted, and the usage shows no free address', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint, TINY_TOPOLOGY);
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'tiny-node', hostIP: '198.18.1.62' });
  await d.start('IPAM API listening');
  const sock = join(d.stateDir, 'trellisd.sock');
  for (let i = 0; i < 4; i++) t.equal((await call(sock, 'POST', '/v1/allocate', { containerId: `full-${i}`, ifName: 'eth0' })).status, 200);
  const refused = await call(sock, 'POST', '/v1/allocate', { containerId: 'one-too-many', ifName: 'eth0' });
  t.equal(refused.status, 507);
  t.match(refused.body, { code: 'E_EXHAUSTED' });
  const m = await scrape(d);
  t.equal(sample(m, 'trellis_ipam_exhausted_total'), 1, 'the refusal is counted');
  t.equal(sample(m, 'trellis_ipam_allocations_total{result="error"}'), 1);
  await until('usage refreshed', async () => sample(await scrape(d), 'trellis_ipam_addresses_allocated') === 4, 25_000, 250);
  const u = await scrape(d);
  t.equal(sample(u, 'trellis_ipam_addresses_free'), 0);
  t.equal(sample(u, 'trellis_ipam_blocks'), 1);
});
