// More than 4 MiB (etcd's gRPC answer limit) under every prefix trellisd and
// trellisctl read: nodes/, routes/, blocks/, advertisers/ and vpc/. Each is
// filled with records that are too large to be valid, undecodable, or (for
// blocks/) valid records of the older layout that carry every allocation.
// trellisd still starts and becomes ready, counts what it ignores in
// trellis_records_ignored_total, and trellisctl lists every record with the
// reason it is ignored.
// blocks/ grows past 4 MiB while trellisd runs (its watch sees it): the IPAM
// store still lists blocks/ in one range when a daemon starts
// (src/etcd/ipam-store.ts listBlocks, which the per-node IPAM records replace).
import t from 'tap';
import { request } from 'node:http';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { daemon, runCli, seedTopology } from '../../lab/trellis.js';
import { until } from '../../lab/pids.js';
import { formatPrefix, nthAddress, formatAddress, split } from '../../src/core/cidr.js';
import { BlockSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { Keys } from '../../src/state/keys.js';
import { encodeRecord, makeRecord, msToTimestamp } from '../../src/state/records.js';

const JUNK = 100 * 1024; // undecodable, below the size limit
const OVERSIZED = 300 * 1024; // above the default 256 KiB limit
const JUNK_PER_PREFIX = 45; // 4.4 MiB

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('trellisd and trellisctl with more than 4 MiB under every prefix', async (t) => {
  const etcd = await startEtcd(t);
  const topology = await seedTopology(etcd.endpoint);
  const keys = new Keys();
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const e = ['--etcd', etcd.endpoint];

  const fill = async (prefix: string): Promise<void> => {
    for (let i = 0; i < JUNK_PER_PREFIX; i++) await client.put(`${prefix}junk-${String(i).padStart(2, '0')}`).value('j'.repeat(JUNK)).exec();
    await client.put(`${prefix}huge`).value('h'.repeat(OVERSIZED)).exec();
  };
  await fill(keys.nodesPrefix());
  await fill(keys.routesPrefix('subnet-a1'));
  await fill(keys.advertisersPrefix('subnet-a1'));
  await fill(keys.vpcPrefix());
  /** One range of the prefix fails (a client of its own: the failure opens the client's circuit breaker). */
  const tooLarge = async (prefix: string): Promise<void> => {
    const probe = new Etcd3({ hosts: etcd.endpoint });
    try {
      await t.rejects(probe.getAll().prefix(prefix).exec(), /RESOURCE_EXHAUSTED|larger than max/, `${prefix} does not fit one range answer`);
    } finally {
      probe.close();
    }
  };
  for (const prefix of [keys.nodesPrefix(), keys.routesPrefix(), keys.advertisersPrefix('subnet-a1'), keys.vpcPrefix()]) await tooLarge(prefix);

  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-a', hostIP: '198.18.1.10' });
  await d.start('cluster view synced', 30_000);
  const line = d.logs.split('\n').find((l) => l.includes('HTTP endpoint listening'));
  const port = (JSON.parse(line ?? '{}') as { port?: number }).port ?? 0;
  await until('ready', async () => (await get(port, '/readyz')).status === 200);

  t.test('ignored records are counted by kind and reason, and logged once each', async (t) => {
    const metrics = (await get(port, '/metrics')).body;
    t.match(metrics, /^trellis_records_ignored_total\{kind="node",reason="undecodable"\} 45$/m);
    t.match(metrics, /^trellis_records_ignored_total\{kind="node",reason="oversized"\} 1$/m);
    t.match(metrics, /^trellis_records_ignored_total\{kind="advertisement",reason="undecodable"\} 45$/m);
    t.match(metrics, /^trellis_records_ignored_total\{kind="advertisement",reason="oversized"\} 1$/m);
    t.match(metrics, /^trellis_advertisements\{state="valid"\} 1$/m, 'its own advertisement is valid');
    const lines = d.logs.split('\n').filter((l) => l.includes('/junk-00'));
    t.equal(lines.length, 2, 'one log line per bad record (node and advertisement junk-00)');
    // A change elsewhere does not log the same bad records again.
    await client.put(keys.route('subnet-a1', 'junk-00')).value('j'.repeat(JUNK)).exec();
    await until('re-put seen', () => d.logs.split('\n').filter((l) => l.includes('routes/subnet-a1/junk-00')).length === 2);
    t.equal(d.logs.split('\n').filter((l) => l.includes('nodes/junk-00')).length, 1, 'the node record is not reported again');
  });

  t.test('trellisctl nodes and routes list the ignored records with their reason', async (t) => {
    const nodes = runCli('src/cli/trellisctl', ['nodes', '-o', 'json', ...e]);
    t.equal(nodes.code, 0, nodes.stderr);
    const rows = JSON.parse(nodes.stdout) as Array<{ name: string; valid: boolean; problem?: string }>;
    t.equal(rows.length, JUNK_PER_PREFIX + 2);
    t.match(rows.find((r) => r.name === 'node-a'), { valid: true });
    t.match(rows.find((r) => r.name === 'huge'), { valid: false, problem: /307200 bytes is above the size limit/ });
    t.match(rows.find((r) => r.name === 'junk-07'), { valid: false, problem: /not a valid Node record/ });
    const ignored = runCli('src/cli/trellisctl', ['routes', '--ignored', ...e]);
    t.equal(ignored.code, 0, ignored.stderr);
    t.equal(ignored.stdout.trim().split('\n').length, 1 + JUNK_PER_PREFIX + 1, 'header and every ignored advertisement');
    t.notMatch(ignored.stdout, /node-a/, 'the valid advertisement is not listed with --ignored');
    t.match(ignored.stdout, /huge\s.*ignored: value of 307200 bytes/);
  });

  t.test('trellisctl vpc status reads advertisers/ and vpc/ whole', async (t) => {
    const r = runCli('src/cli/trellisctl', ['vpc', 'status', '-o', 'json', ...e]);
    t.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as Array<{ subnet: string; candidates: number }>;
    t.match(list.find((s) => s.subnet === 'subnet-a1'), { candidates: JUNK_PER_PREFIX });
  });

  t.test('blocks/: old-layout records with every allocation, junk, an empty prefix', async (t) => {
    const subnet = topology.zones[0]?.subnets[0];
    if (subnet === undefined) throw new Error('no subnet');
    const blocks = split(subnet.podPrefix, topology.blockSize).slice(8, 48);
    let bytes = 0;
    for (const [i, b] of blocks.entries()) {
      const allocations: Record<string, object> = {};
      for (let j = 1; j < 62; j++) {
        allocations[formatAddress(nthAddress(b, BigInt(j)))] = {
          containerId: `${i}-${j}-`.padEnd(64, 'c'),
          ifName: 'eth0',
          netns: `/var/run/netns/cni-${'n'.repeat(36)}`,
          podNamespace: 'default',
          podName: `pod-${i}-${j}-${'p'.repeat(40)}`,
          allocatedAt: msToTimestamp(Date.now()),
          network: 'trellis',
        };
      }
      const value = encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: formatPrefix(b), subnet: subnet.id, node: `old-${i}`, allocations }));
      bytes += value.length;
      await client.put(keys.block(b)).value(value).exec();
    }
    for (let i = 0; i < 40; i++) await client.put(`${keys.blocksPrefix()}junk-${i}`).value('j'.repeat(JUNK)).exec();
    await client.put(`${keys.blocksPrefix()}100.96.255.0-26`).value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: '', subnet: subnet.id, node: 'x' }))).exec();
    t.ok(bytes > 500 * 1024, `${Math.round(bytes / 1024)} KiB of valid old-layout records`);
    await tooLarge(keys.blocksPrefix());

    const r = runCli('src/cli/trellisctl', ['blocks', '-o', 'json', ...e]);
    t.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ prefix: string; node: string; allocated: number; valid: boolean; problem?: string }>;
    t.equal(rows.filter((b) => b.valid && b.node.startsWith('old-')).length, blocks.length, 'every old-layout block is listed as valid');
    t.equal(rows.find((b) => b.node === 'old-0')?.allocated, 61);
    t.match(rows.find((b) => b.node === 'x'), { prefix: '100.96.255.0/26', valid: false, problem: /block 100\.96\.255\.0\/26/ }, 'the empty-prefix record is listed with its reason');
    const table = runCli('src/cli/trellisctl', ['blocks', '--ignored', ...e]);
    t.equal(table.code, 0, table.stderr);
    t.equal(table.stdout.trim().split('\n').length, 1 + 40 + 1, 'header, junk and the empty-prefix record');

    // The running daemon got them through its watch: junk keys and the empty prefix counted.
    await until('blocks seen', async () => /trellis_records_ignored_total\{kind="block",reason="invalid"\} 41$/m.test((await get(port, '/metrics')).body));
    t.equal((await get(port, '/readyz')).status, 200, 'still ready');
  });
});
