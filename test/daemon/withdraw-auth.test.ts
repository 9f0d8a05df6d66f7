// trellisd --withdraw, and username/password authentication against etcd.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { daemon, runCli, seedTopology } from '../../lab/trellis.js';

t.test('withdraw removes the node at once and gives its blocks back', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'leaving', hostIP: '198.18.1.40', holdTime: '10s' });
  const stay = daemon(t, { etcd: etcd.endpoint, nodeName: 'staying', hostIP: '198.18.1.41' });
  await Promise.all([d.start(), stay.start()]);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const blocksOf = async (node: string): Promise<number> =>
    Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).filter((v) => JSON.parse(v).node === node).length;
  t.equal(await blocksOf('leaving'), 1);
  // Pod address records of both nodes: one in the leaving node's block, one outside any of its claims.
  const claim = Object.values(await client.getAll().prefix('/trellis/v1/blocks/').strings()).map((v) => JSON.parse(v) as { node: string; prefix: string }).find((b) => b.node === 'leaving')!;
  const base = claim.prefix.replace(/\/26$/, '');
  const record = (node: string, block: string, address: string): string =>
    JSON.stringify({ schemaVersion: 1, address, block, node, allocation: { containerId: `pod-of-${node}`, ifName: 'eth0' } });
  await client.put(`/trellis/v1/ipam/leaving/${claim.prefix.replace('/', '-')}/${base}`).value(record('leaving', claim.prefix, base));
  await client.put('/trellis/v1/ipam/leaving/100.96.15.0-26/100.96.15.1').value(record('leaving', '100.96.15.0/26', '100.96.15.1'));
  await client.put('/trellis/v1/ipam/staying/100.96.14.0-26/100.96.14.1').value(record('staying', '100.96.14.0/26', '100.96.14.1'));
  await d.stop();
  t.equal(await client.get('/trellis/v1/routes/subnet-a1/leaving').exists(), true, 'a stopped daemon keeps its advertisement until the hold time');
  const r = runCli('daemon/trellisd', [
    '--withdraw',
    '--node-name', 'leaving',
    '--host-ip', '198.18.1.40',
    '--interface', 'eth0',
    '--etcd-endpoints', etcd.endpoint,
    '--state-dir', d.stateDir,
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /withdrew node leaving: lease revoked, 1 block\(s\) released: 100\.96\.\d+\.\d+\/26/);
  t.equal(await client.get('/trellis/v1/routes/subnet-a1/leaving').exists(), false, 'advertisement gone at once');
  t.equal(await client.get('/trellis/v1/nodes/leaving').exists(), false, 'node record gone at once');
  t.equal(await blocksOf('leaving'), 0, 'blocks released');
  t.equal(await blocksOf('staying'), 1, 'other nodes untouched');
  t.same(await client.getAll().prefix('/trellis/v1/ipam/leaving/').keys(), [], 'its pod address records gone');
  t.same(await client.getAll().prefix('/trellis/v1/ipam/').keys(), ['/trellis/v1/ipam/staying/100.96.14.0-26/100.96.14.1'], 'other nodes’ records untouched');
  t.equal(await client.get('/trellis/v1/routes/subnet-a1/staying').exists(), true);
});

t.test('withdraw acts only on the lease this host owns', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const live = daemon(t, { etcd: etcd.endpoint, nodeName: 'live-host', hostIP: '198.18.1.42' });
  const other = daemon(t, { etcd: etcd.endpoint, nodeName: 'other-host', hostIP: '198.18.1.43' });
  await Promise.all([live.start(), other.start()]);
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const stored = JSON.parse(readFileSync(join(live.stateDir, 'lease.json'), 'utf8')) as { id: string; node: string; prefix: string };
  t.match(stored, { node: 'live-host', prefix: '/trellis' }, 'the state file names the owner of the lease');
  const snapshot = async () => ({
    node: (await client.get('/trellis/v1/nodes/live-host').exec()).kvs.map((kv) => String(kv.lease)),
    route: (await client.get('/trellis/v1/routes/subnet-a1/live-host').exec()).kvs.map((kv) => String(kv.lease)),
    blocks: Object.entries(await client.getAll().prefix('/trellis/v1/blocks/').strings()).filter(([, v]) => JSON.parse(v).node === 'live-host').map(([k]) => k),
    leases: (await client.getAll().prefix('/trellis/v1/').exec()).kvs.map((kv) => `${kv.key.toString()}@${String(kv.lease)}`).sort(),
  });
  const before = await snapshot();
  t.same(before.node, [stored.id], 'the live node record is under the stored lease');
  t.equal(before.blocks.length, 1);
  const withdraw = (name: string, stateDir: string, extra: string[] = []) =>
    runCli('daemon/trellisd', ['--withdraw', '--node-name', name, '--host-ip', '198.18.1.44', '--interface', 'eth0',
      '--etcd-endpoints', etcd.endpoint, '--state-dir', stateDir, ...extra]);

  const wrongName = withdraw('dead-node-7', live.stateDir);
  t.equal(wrongName.code, 2, 'another node name on this host’s state directory is refused');
  t.match(wrongName.stderr, /holds the lease of node live-host under prefix \/trellis, not of node dead-node-7 under prefix \/trellis: refusing to revoke it/);
  t.equal(wrongName.stdout, '');
  const wrongPrefix = withdraw('live-host', live.stateDir, ['--etcd-prefix', '/other']);
  t.equal(wrongPrefix.code, 2, 'another cluster prefix is refused');
  t.match(wrongPrefix.stderr, /not of node live-host under prefix \/other/);
  const elsewhere = withdraw('live-host', other.stateDir);
  t.equal(elsewhere.code, 2, 'another host’s state directory is refused by its file');
  const noState = withdraw('live-host', join(live.stateDir, 'empty'));
  t.equal(noState.code, 1, 'a host without the lease cannot withdraw a live node');
  t.match(noState.stderr, /node live-host is registered under lease [0-9a-f]+, which .* does not hold .*nothing withdrawn.*trellisctl node remove live-host --force/);
  const legacyDir = join(live.stateDir, 'legacy');
  mkdirSync(legacyDir, { recursive: true });
  writeFileSync(join(legacyDir, 'lease.json'), JSON.stringify({ id: stored.id, ttlSeconds: 10 }));
  const legacy = withdraw('dead-node-7', legacyDir);
  t.equal(legacy.code, 2, 'a state file that names no owner is refused');
  t.match(legacy.stderr, /without the node it belongs to: refusing to revoke it for node dead-node-7/);

  t.same(await snapshot(), before, 'the live host is untouched: same keys under the same leases');
  t.ok(live.running, 'its daemon still runs');
  t.notMatch(live.logs, /lease lost|NOT_FOUND/, 'its daemon never lost its lease');
});

t.test('username and password', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  await etcd.etcdctl(['user', 'add', 'root:rootpw']);
  await etcd.etcdctl(['user', 'add', 'trellis:s3cret']);
  await etcd.etcdctl(['role', 'add', 'trellis']);
  await etcd.etcdctl(['role', 'grant-permission', 'trellis', '--prefix=true', 'readwrite', '/trellis/']);
  await etcd.etcdctl(['user', 'grant-role', 'trellis', 'trellis']);
  await etcd.etcdctl(['auth', 'enable']);
  t.teardown(() => etcd.etcdctl(['--user', 'root:rootpw', 'auth', 'disable']).catch(() => undefined));

  const d = daemon(t, {
    etcd: etcd.endpoint,
    nodeName: 'authed',
    hostIP: '198.18.1.50',
    env: { TRELLIS_ETCD_USERNAME: 'trellis', TRELLIS_ETCD_PASSWORD: 's3cret' },
  });
  await d.start();
  t.pass('trellisd runs with username and password');
  t.notMatch(d.logs, /s3cret/, 'the password never appears in the logs');

  const ok = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, '--etcd-username', 'trellis'], { TRELLIS_ETCD_PASSWORD: 's3cret' });
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /authed\s+live\s+subnet-a1/);
  const bad = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, '--etcd-username', 'trellis', '--etcd-password', 'wrong']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /check etcd\.username and etcd\.password/);
  const half = runCli('src/cli/trellisctl', ['nodes', '--etcd', etcd.endpoint, '--etcd-username', 'trellis'], { TRELLIS_ETCD_PASSWORD: '' });
  t.equal(half.code, 1);
  const check = runCli('daemon/trellisd', ['--check-config', '--host-ip', '198.18.1.50', '--interface', 'eth0', '--etcd-password', 's3cret', '--etcd-username', 'u']);
  t.equal(check.code, 0);
  t.notMatch(check.stdout, /s3cret/, '--check-config masks the password');
  t.match(check.stdout, /password: "\*+"/);
});
