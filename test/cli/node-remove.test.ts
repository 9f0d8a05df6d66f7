// trellisctl node remove against a real etcd and real trellisd processes: a
// live node is refused (nothing touched) unless --force; a dead node's claims
// and pod address records are given back, from a host that is not the node,
// once; other nodes are untouched.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';
import { startEtcd } from '../../lab/etcd.js';
import { delay } from '../../lab/pids.js';
import { daemon, seedTopology } from '../../lab/trellis.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), readFile: (p) => readFile(p, 'utf8') };
  return { code: await main(argv, io), stdout, stderr };
}

t.test('node remove', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const e = ['--etcd-endpoints', etcd.endpoint];
  const doomed = daemon(t, { etcd: etcd.endpoint, nodeName: 'doomed', hostIP: '198.18.1.60', holdTime: '3s' });
  const survivor = daemon(t, { etcd: etcd.endpoint, nodeName: 'survivor', hostIP: '198.18.1.61', holdTime: '3s' });
  await Promise.all([doomed.start(), survivor.start()]);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const claims = async (): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(await client.getAll().prefix('/trellis/v1/blocks/').strings())) out[k] = (JSON.parse(v) as { node: string }).node;
    return out;
  };
  const blockOf = async (node: string): Promise<string> =>
    Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).map((v) => JSON.parse(v) as { node: string; prefix: string }).find((b) => b.node === node)!.prefix;
  const record = (node: string, block: string, address: string): string =>
    JSON.stringify({ schemaVersion: 1, address, block, node, allocation: { containerId: `pod-of-${node}`, ifName: 'eth0' } });
  const doomedBlock = await blockOf('doomed');
  const survivorBlock = await blockOf('survivor');
  const base = (b: string): string => b.replace(/\.0\/26$/, '');
  const key = (node: string, block: string, address: string): string => `/trellis/v1/ipam/${node}/${block.replace('/', '-')}/${address}`;
  await client.put(key('doomed', doomedBlock, `${base(doomedBlock)}.1`)).value(record('doomed', doomedBlock, `${base(doomedBlock)}.1`));
  await client.put(key('doomed', '100.96.15.0/26', '100.96.15.1')).value(record('doomed', '100.96.15.0/26', '100.96.15.1'));
  await client.put(key('survivor', survivorBlock, `${base(survivorBlock)}.1`)).value(record('survivor', survivorBlock, `${base(survivorBlock)}.1`));
  const everything = async (): Promise<string[]> => (await client.getAll().prefix('/trellis/v1/').exec()).kvs.map((kv) => `${kv.key.toString()}@${String(kv.lease)}`).sort();

  t.test('a live node is refused and nothing is touched', async (t) => {
    const before = await everything();
    const r = await run(['node', 'remove', 'doomed', ...e]);
    t.equal(r.code, 1);
    t.match(r.stderr, /^trellisctl: node doomed is live: lease [0-9a-f]+ holds its node record and its advertisement in subnet-a1; nothing removed \(stop its trellisd and wait one hold time, or run "trellisd --withdraw" on it; --force removes it anyway\)\n$/);
    t.equal(r.stdout, '');
    t.same(await everything(), before);
  });

  t.test('a dead node is removed from another host, once', async (t) => {
    doomed.kill();
    // Its lease runs out one hold time after it died.
    while ((await client.get('/trellis/v1/nodes/doomed').exists()) || (await client.get('/trellis/v1/routes/subnet-a1/doomed').exists())) await delay(200);
    const r = await run(['node', 'remove', 'doomed', ...e]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, `removed node doomed: 1 block(s): ${doomedBlock}, 2 pod address record(s)\n`);
    t.equal(r.stderr, '');
    t.same(await claims(), { [`/trellis/v1/blocks/${survivorBlock.replace('/', '-')}`]: 'survivor' }, 'only the survivor’s claim is left');
    t.same(await client.getAll().prefix('/trellis/v1/ipam/').keys(), [key('survivor', survivorBlock, `${base(survivorBlock)}.1`)], 'its address records are gone, the survivor’s stay');
    t.ok(await client.get('/trellis/v1/nodes/survivor').exists(), 'the survivor is still registered');

    const again = await run(['node', 'remove', 'doomed', ...e]);
    t.same(again, { code: 0, stdout: 'node doomed: nothing to remove\n', stderr: '' }, 'a second run removes nothing');
    const json = await run(['node', 'remove', 'doomed', '-o', 'json', ...e]);
    t.equal(json.code, 0);
    t.same(JSON.parse(json.stdout), {
      node: 'doomed', live: false, forced: false, leasesRevoked: [], nodeRecord: false, advertisements: [], blocks: [], addresses: 0, skipped: [],
    });
  });

  t.test('--force removes a live node and says what it will do', async (t) => {
    const lease = String((await client.get('/trellis/v1/nodes/survivor').exec()).kvs[0]?.lease);
    const r = await run(['node', 'remove', 'survivor', '--force', '-o', 'json', ...e]);
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    t.match(out, {
      node: 'survivor', live: true, forced: true, leasesRevoked: [BigInt(lease).toString(16)], nodeRecord: true, advertisements: ['subnet-a1'],
      blocks: [survivorBlock], addresses: 1, skipped: [], notice: /register again at once under a new lease/,
    });
    t.match(r.stderr, /^trellisctl: warning: node survivor was live: its lease was revoked\. While its trellisd runs it will register again/);
    t.same(await client.getAll().prefix('/trellis/v1/ipam/').keys(), [], 'its address records are gone');
    t.equal((await claims())[`/trellis/v1/blocks/${survivorBlock.replace('/', '-')}`], undefined, 'its claim is gone');
    // As the notice says: the running trellisd registers again under a new lease.
    await survivor.waitForLog(/granted lease/, 30_000, survivor.logs.indexOf('cluster view synced'));
    let again: string | undefined;
    while (again === undefined) {
      const kv = (await client.get('/trellis/v1/nodes/survivor').exec()).kvs[0];
      if (kv !== undefined) again = String(kv.lease);
      else await delay(100);
    }
    t.not(again, lease, 'registered again under a new lease');
  });
});
