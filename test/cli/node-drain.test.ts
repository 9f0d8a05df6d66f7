// trellisctl node drain / uncordon against a real etcd and a real trellisd:
// the drain record written and deleted, idempotence, -o json, trellisctl nodes
// (and --watch) showing draining, clear refusals (unknown node, bad name, long reason), a
// record that is not valid; and the etcd roles: no node role may write drain/.
import t from 'tap';
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../lab/etcd.js';
import { until } from '../../lab/pids.js';
import { bin, daemon, runCli, seedTopology } from '../../lab/trellis.js';
import { Keys } from '../../src/state/keys.js';
import { nodeRolePlan, clusterRoles } from '../../src/state/rbac-plan.js';
import { checkDrain, encodeDrain, makeDrain, MAX_DRAIN_BYTES } from '../../src/state/drain-record.js';

t.test('drain and uncordon a live node', async (t) => {
  const etcd = await startEtcd(t);
  await seedTopology(etcd.endpoint);
  const e = ['--etcd-endpoints', etcd.endpoint];
  const d = daemon(t, { etcd: etcd.endpoint, nodeName: 'alpha', hostIP: '198.18.1.71', holdTime: '3s' });
  await d.start();
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  const keys = new Keys();
  const ctl = (...args: string[]) => runCli('src/cli/trellisctl', [...args, ...e]);

  const unknown = ctl('node', 'drain', 'nobody');
  t.equal(unknown.code, 1, 'an unknown node is refused');
  t.match(unknown.stderr, /unknown node nobody: no node record, block claim or drain record names it .*nothing drained/);
  t.equal((await client.get(keys.drain('nobody')).string()) ?? null, null, 'and nothing written');
  t.equal(ctl('node', 'uncordon', 'nobody').code, 1, 'uncordon of an unknown node is refused');
  t.match(ctl('node', 'drain', 'a/b').stderr, /not usable in a key/);
  const long = ctl('node', 'drain', 'alpha', '--reason', 'x'.repeat(300));
  t.equal(long.code, 2, 'a reason over 256 characters is a usage error');
  t.match(long.stderr, /--reason is 300 characters long; at most 256/);

  const watch = spawn(process.execPath, [bin('src/cli/trellisctl'), 'nodes', '--watch', '-o', 'json', ...e], { stdio: ['ignore', 'pipe', 'ignore'] });
  let watched = '';
  watch.stdout.setEncoding('utf8').on('data', (d: string) => (watched += d));
  t.teardown(() => void watch.kill('SIGKILL'));
  await until('the watch listed the nodes', () => /alpha/.test(watched));

  const drained = ctl('node', 'drain', 'alpha', '--reason', 'disk swap');
  t.equal(drained.code, 0, drained.stderr);
  t.match(drained.stdout, /^node alpha is draining: the VPC advertiser and BGP exporter of subnet-a1 move its entries/);
  t.match(drained.stderr, /warning: node alpha is the only live node of subnet subnet-a1: it keeps forwarding its own entries/, 'the lone node of its subnet: warned');
  const stored = await client.get(keys.drain('alpha')).string();
  const checked = checkDrain(keys.drain('alpha'), stored ?? '');
  t.match(checked, { ok: true, value: { node: 'alpha', reason: 'disk swap' } }, 'the record in etcd is valid');
  t.ok(Buffer.byteLength(stored ?? '') < MAX_DRAIN_BYTES);

  const again = JSON.parse(ctl('node', 'drain', 'alpha', '--reason', 'other', '-o', 'json').stdout) as Record<string, unknown>;
  t.match(again, { node: 'alpha', draining: true, changed: false, reason: 'disk swap', live: true, subnet: 'subnet-a1', otherLiveNodes: [] }, 'a second drain keeps the first record');
  t.equal(await client.get(keys.drain('alpha')).string(), stored, 'unchanged in etcd');
  t.match(ctl('node', 'drain', 'alpha').stdout, /^node alpha is already draining \(since .* by .*: disk swap\); nothing changed/);

  const nodes = JSON.parse(ctl('nodes', '-o', 'json').stdout) as Array<Record<string, unknown>>;
  t.match(nodes, [{ name: 'alpha', state: 'draining', drain: { reason: 'disk swap' } }]);
  t.match(ctl('nodes').stdout, /\nalpha\s+draining\s+subnet-a1/);
  await until('the watch streamed the drain', () => /"to":"draining"/.test(watched), 15_000);
  t.match(JSON.parse(watched.trim().split('\n')[1] ?? '{}'), { node: 'alpha', from: 'live', to: 'draining' }, 'nodes --watch: live -> draining');

  const back = JSON.parse(ctl('node', 'uncordon', 'alpha', '-o', 'json').stdout) as Record<string, unknown>;
  t.match(back, { node: 'alpha', draining: false, changed: true, was: { reason: 'disk swap' } });
  t.equal((await client.get(keys.drain('alpha')).string()) ?? null, null, 'the record is gone');
  t.match(ctl('node', 'uncordon', 'alpha').stdout, /^node alpha is not draining; nothing changed/);
  t.match(JSON.parse(ctl('nodes', '-o', 'json').stdout), [{ name: 'alpha', state: 'live' }]);
  await until('the watch streamed the uncordon', () => /"from":"draining","to":"live"/.test(watched), 15_000);
  watch.kill('SIGINT');

  // A record naming another node is not believed: drain says so, uncordon deletes it.
  await client.put(keys.drain('alpha')).value(encodeDrain(makeDrain('beta', '', 'x', Date.now())));
  const forged = ctl('node', 'drain', 'alpha');
  t.match(forged.stderr, /drain record in etcd is not valid \(drain record under key alpha names "beta"\)/);
  t.match(JSON.parse(ctl('nodes', '-o', 'json').stdout), [{ name: 'alpha', state: 'live' }], 'not draining by a record that is not valid');
  t.equal(ctl('node', 'uncordon', 'alpha').code, 0);
  t.equal((await client.get(keys.drain('alpha')).string()) ?? null, null);

  const help = runCli('src/cli/trellisctl', ['node', 'drain', '--help']);
  t.match(help.stdout, /^Usage: trellisctl node drain \[options\] NAME\n/);
});

t.test('the drain record: bounded and checked; only the admin role may write it', async (t) => {
  const keys = new Keys();
  t.match(checkDrain(keys.drain('a'), 'x'.repeat(MAX_DRAIN_BYTES + 1)), { ok: false, reason: /above the 1024-byte limit/ });
  t.match(checkDrain(keys.drain('a'), '{"schemaVersion":1,"node":"a","reason":"' + 'r'.repeat(300) + '"}'), { ok: false, reason: /reason longer than 256/ });
  t.match(checkDrain(keys.drain('a'), '{"node":"a"}'), { ok: false, reason: /no schemaVersion/ });
  t.match(checkDrain(keys.drain('a'), encodeDrain(makeDrain('a', 'why', 'me@here', 0))), { ok: true, value: { node: 'a', reason: 'why', by: 'me@here', since: '1970-01-01T00:00:00.000Z' } });
  const key = keys.drain('n1');
  const writes = (g: { permission: string; key?: string; prefix?: string }) => g.permission !== 'Read' && (g.key === key || (g.prefix !== undefined && key.startsWith(g.prefix)));
  t.notOk(nodeRolePlan(keys, 'n1', ['s1', 's2']).grants.some(writes), "no grant of a node's role covers its drain key");
  const [admin, reader] = clusterRoles(keys);
  t.ok(admin?.grants.some(writes), 'the admin role may write it');
  t.notOk(reader?.grants.some(writes), 'the reader role may not');
});
