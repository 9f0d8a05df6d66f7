// trellisctl against a real etcd: topology apply/show, nodes, blocks, ipam, routes.
import t from 'tap';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';
import { AdvertisementSchema, BlockSchema, NodeSchema, PodAddressSchema } from '../../src/gen/trellis/v1/records_pb.js';
import { encodeRecord, makeRecord } from '../../src/state/records.js';
import { startEtcd } from '../../lab/etcd.js';

const example = fileURLToPath(new URL('../../examples/topology.yaml', import.meta.url));

async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), readFile: (p) => readFile(p, 'utf8') };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return { code: await main(argv, io), stdout, stderr };
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

t.test('trellisctl with etcd', async (t) => {
  const etcd = await startEtcd(t);
  const e = ['--etcd-endpoints', etcd.endpoint];
  const dir = await mkdtemp(join(tmpdir(), 'trellisctl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());

  t.test('show before apply fails clearly', async (t) => {
    const r = await run(['topology', 'show', ...e]);
    t.equal(r.code, 1);
    t.match(r.stderr, /no topology stored at \/trellis\/v1\/topology \(run "trellisctl topology apply FILE"\)/);
  });

  t.test('apply, then show', async (t) => {
    const dry = await run(['topology', 'apply', example, '--dry-run', ...e]);
    t.equal(dry.code, 0);
    t.match(dry.stdout, /would apply as generation 1/);
    t.equal(await client.get('/trellis/v1/topology').string(), null, 'dry run writes nothing');
    const r = await run(['topology', 'apply', example, ...e]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /applied as generation 1:\n  \+ subnet subnet-0a1 \(zone us-east-1a\): pods 100\.96\.0\.0\/16/);
    const shown = await run(['topology', 'show', '-o', 'json', ...e]);
    t.equal(shown.code, 0);
    const json = JSON.parse(shown.stdout) as { generation: number; zones: Array<{ subnets: Array<{ id: string; podPrefix: string }> }> };
    t.equal(json.generation, 1, 'the generation is a JSON number');
    t.same(json.zones[0]?.subnets.map((s) => s.podPrefix), ['100.96.0.0/16', '100.97.0.0/16']);
    const table = await run(['topology', 'show', ...e], {});
    t.match(table.stdout, /^generation 1, applied \d{4}-/);
    t.match(table.stdout, /subnet-0a1\s+198\.18\.0\.0\/24\s+100\.96\.0\.0\/16 \(carved\)/);
  });

  // Records as trellisd writes them: node-a owns a block in subnet-0a1 and advertises it.
  await client.put('/trellis/v1/blocks/100.96.0.0-26').value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: '100.96.0.0/26', subnet: 'subnet-0a1', node: 'node-a', allocations: { '100.96.0.5': { containerId: 'c1', ifName: 'eth0' } } })));
  const lease = client.lease(30);
  await lease.put('/trellis/v1/nodes/node-a').value(encodeRecord(NodeSchema, makeRecord(NodeSchema, { name: 'node-a', subnet: 'subnet-0a1', zone: 'us-east-1a', hostIp: '198.18.0.10' })));
  await lease.put('/trellis/v1/routes/subnet-0a1/node-a').value(encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: 'node-a', subnet: 'subnet-0a1', nextHop: '198.18.0.10', prefixes: ['100.96.0.0/26'] })));
  // A hostile advertisement: node-x (no node record) claims node-a's block.
  await lease.put('/trellis/v1/routes/subnet-0a1/node-x').value(encodeRecord(AdvertisementSchema, makeRecord(AdvertisementSchema, { node: 'node-x', subnet: 'subnet-0a1', nextHop: '198.18.0.66', prefixes: ['100.96.0.0/26'] })));
  t.teardown(() => lease.revoke());

  t.test('nodes, blocks, routes', async (t) => {
    const nodes = await run(['nodes', '-o', 'json', ...e]);
    t.equal(nodes.code, 0, nodes.stderr);
    t.match(JSON.parse(nodes.stdout), [{ name: 'node-a', subnet: 'subnet-0a1', hostIP: '198.18.0.10', blocks: ['100.96.0.0/26'], valid: true }]);
    const blocks = await run(['blocks', ...e]);
    t.match(blocks.stdout, /100\.96\.0\.0\/26\s+subnet-0a1\s+node-a\s+1\/64\s+\S+\s+ok/);
    const none = await run(['blocks', '--node', 'nobody', ...e]);
    t.equal(none.stdout, '(none)\n');
    const routes = await run(['routes', '-o', 'json', ...e]);
    const parsed = JSON.parse(routes.stdout) as Array<{ node: string; prefixes: string[]; valid: boolean; problem?: string }>;
    t.same(parsed.find((r) => r.node === 'node-a')?.prefixes, ['100.96.0.0/26']);
    const x = parsed.find((r) => r.node === 'node-x');
    t.same(x?.prefixes, [], 'the hostile advertisement routes nothing');
    t.equal(x?.valid, false);
    t.match(x?.problem, /advertisement of node-x: no valid node record for node-x/);
    const table = await run(['routes', ...e]);
    t.match(table.stdout, /node-x\s+-\s+ignored: advertisement of node-x: no valid node record/);
    const all = await run(['routes', '--all', ...e]);
    t.equal(all.code, 0, all.stderr);
    t.match(all.stdout, /node-a\s+198\.18\.0\.10\s+100\.96\.0\.0\/26\s+ok/, '--all: the valid ones');
    t.match(all.stdout, /node-x\s+-\s+ignored: advertisement of node-x: no valid node record/, '--all: and the ignored ones with their reason');
  });

  t.test('ipam lists allocations per node and block', async (t) => {
    const long = 'f'.repeat(8) + '0123456789abcdef'.repeat(3) + '01234567';
    await client.put('/trellis/v1/blocks/100.96.0.64-26').value(
      encodeRecord(BlockSchema, makeRecord(BlockSchema, {
        prefix: '100.96.0.64/26', subnet: 'subnet-0a1', node: 'node-a',
        allocations: {
          '100.96.0.70': { containerId: long, ifName: 'eth0', network: 'trellis', podNamespace: 'web', podName: 'front-1' },
          '100.96.0.66': { containerId: 'c2', ifName: 'net1', network: 'trellis' },
        },
        released: { '100.96.0.65': {} },
      })),
    );
    await client.put('/trellis/v1/blocks/100.96.1.0-26').value(encodeRecord(BlockSchema, makeRecord(BlockSchema, { prefix: '100.96.1.0/26', subnet: 'subnet-0a1', node: 'node-b' })));
    // The current layout: one record per address under ipam/<node>/ (node-a's first block mixes both).
    const podAddress = (node: string, block: string, address: string, init: object): Promise<unknown> =>
      client.put(`/trellis/v1/ipam/${node}/${block.replace('/', '-')}/${address}`).value(encodeRecord(PodAddressSchema, makeRecord(PodAddressSchema, { node, block, address, ...init }))).exec();
    await podAddress('node-a', '100.96.0.0/26', '100.96.0.7', { allocation: { containerId: 'c7', ifName: 'eth0', network: 'trellis' } });
    await podAddress('node-a', '100.96.0.0/26', '100.96.0.8', { releasedAt: {} });
    await podAddress('node-c', '100.96.2.0/26', '100.96.2.1', { allocation: { containerId: 'stray', ifName: 'eth0' } });
    t.teardown(async () => {
      await client.delete().prefix('/trellis/v1/ipam/');
      await client.delete().key('/trellis/v1/blocks/100.96.0.64-26');
      await client.delete().key('/trellis/v1/blocks/100.96.1.0-26');
    });
    const r = await run(['ipam', ...e]);
    t.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    t.match(lines[0], /^NODE\s+BLOCK\s+ADDRESS\s+CONTAINER\s+IFNAME\s+NETWORK\s+POD\s+ALLOCATED$/);
    t.match(lines[1], /^node-a\s+100\.96\.0\.0\/26\s+100\.96\.0\.5\s+c1\s+eth0\s+-\s+-/);
    t.match(lines[2], /^node-a\s+100\.96\.0\.0\/26\s+100\.96\.0\.7\s+c7\s+eth0\s+trellis\s+-/, 'an address record');
    t.match(lines[3], /^node-a\s+100\.96\.0\.64\/26\s+100\.96\.0\.66\s+c2\s+net1\s+trellis\s+-/, 'addresses in numeric order');
    t.match(lines[4], /^node-a\s+100\.96\.0\.64\/26\s+100\.96\.0\.70\s+ffffffff0123\s+eth0\s+trellis\s+web\/front-1/, 'long ids shortened, pod shown');
    t.match(lines[5], /^node-b\s+100\.96\.1\.0\/26\s+-.*none of 64 in use$/, 'an empty block says so');
    t.match(lines[6], /^node-c\s+100\.96\.2\.0\/26\s+100\.96\.2\.1\s+stray.*ignored by trellisd: no claim of node-c holds this block/, 'a record outside any claim');
    t.equal(lines.length, 7);

    const json = await run(['ipam', '--node', 'node-a', '-o', 'json', ...e]);
    t.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as Array<{ node: string; blocks: Array<{ prefix: string; resting: number; valid: boolean; allocations: Array<{ address: string; containerId: string }> }> }>;
    t.same(parsed.map((n) => n.node), ['node-a']);
    t.same(parsed[0]?.blocks.map((b) => [b.prefix, b.resting, b.valid]), [['100.96.0.0/26', 1, true], ['100.96.0.64/26', 1, true]]);
    t.same(parsed[0]?.blocks[0]?.allocations.map((a) => a.containerId), ['c1', 'c7'], 'old-layout and record allocations together');
    t.equal(parsed[0]?.blocks[1]?.allocations[1]?.containerId, long, 'JSON keeps the whole id');

    const one = await run(['ipam', '--container', 'ffffffff01', ...e]);
    t.equal(one.code, 0);
    t.equal(one.stdout.trimEnd().split('\n').length, 2, 'a container id prefix selects its allocation only');
    t.match(one.stdout, /100\.96\.0\.70/);
    const nobody = await run(['ipam', '--node', 'nobody', ...e]);
    t.equal(nobody.stdout, '(none)\n');
  });

  t.test('apply refuses moving a claimed subnet, accepts appending a zone', async (t) => {
    const text = await readFile(example, 'utf8');
    const moved = text.replace('podPrefix: 100.98.0.0/15', 'podPrefix: 100.104.0.0/15');
    await writeFile(join(dir, 'moved.yaml'), moved);
    const r = await run(['topology', 'apply', join(dir, 'moved.yaml'), ...e]);
    t.equal(r.code, 1);
    t.match(r.stderr, /refused, the stored topology is unchanged:\n\s+subnet subnet-0b1: pod prefix would move from 100\.98\.0\.0\/15 to 100\.104\.0\.0\/15/);
    // Moving the first subnet (which holds node-a's block) by reordering is refused too.
    const reordered = text.replace(/      - id: subnet-0a1\n        cidr: 198.18.0.0\/24\n        routeTable: rtb-0a\n/, '');
    await writeFile(join(dir, 'removed.yaml'), reordered);
    const removed = await run(['topology', 'apply', join(dir, 'removed.yaml'), ...e]);
    t.equal(removed.code, 1);
    t.match(removed.stderr, /subnet subnet-0a1 cannot be removed: 1 claimed block\(s\) would be orphaned/);
    t.match(removed.stderr, /subnet subnet-0a2: pod prefix would move from 100\.97\.0\.0\/16 to 100\.96\.0\.0\/16 \(it was carved: write "podPrefix: 100\.97\.0\.0\/16" to keep it\)/);
    const appended = `${text}\n  - name: us-east-1d\n    subnets:\n      - id: subnet-0d1\n        cidr: 198.18.6.0/24\n`;
    await writeFile(join(dir, 'appended.yaml'), appended);
    const ok = await run(['topology', 'apply', join(dir, 'appended.yaml'), ...e]);
    t.equal(ok.code, 0, ok.stderr);
    t.match(ok.stdout, /applied as generation 2:\n  \+ subnet subnet-0d1 \(zone us-east-1d\): pods 100\.103\.0\.0\/16/);
  });

  t.test('endpoint from the environment and from a trellisd config file', async (t) => {
    const env = await run(['nodes'], { TRELLIS_ETCD_ENDPOINTS: etcd.endpoint });
    t.equal(env.code, 0, env.stderr);
    t.match(env.stdout, /node-a/);
    const cfg = join(dir, 'trellisd.yaml');
    await writeFile(cfg, `hostIP: 198.18.0.10\ninterface: eth0\netcd:\n  endpoints: [${etcd.endpoint}]\n`);
    const fromFile = await run(['nodes', '--config', cfg]);
    t.equal(fromFile.code, 0, fromFile.stderr);
    t.match(fromFile.stdout, /node-a/);
  });

  t.test('unreachable etcd: a clear error, exit 1', async (t) => {
    const r = await run(['nodes', '--etcd', 'http://127.0.0.1:9', '--etcd-request-timeout', '1s']);
    t.equal(r.code, 1);
    t.match(r.stderr, /cannot reach etcd at http:\/\/127\.0\.0\.1:9/);
    t.notMatch(r.stderr, /\n\s+at /);
    const bad = await run(['nodes', '--etcd', 'localhost:2379']);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /must look like http:\/\/host:port/);
  });
});
