// etcd authentication with per-node credentials (trellisctl rbac apply): each
// trellisd runs as its own node user; etcd refuses that user's writes to
// another node's records; what a node user may write to the shared claims
// cannot take another node's block: a rewritten claim is seen as a conflict
// by every daemon and written back by its rightful holder.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { delay } from '../../lab/pids.js';
import { etcdWithRbac, ROOT_PASSWORD, type RbacItem } from '../../lab/rbac-etcd.js';
import { daemon, runCli } from '../../lab/trellis.js';

t.test('each trellisd with its own node user; writes to another node refused', async (t) => {
  const { etcd, applied, created, password, nodeEnv: creds } = await etcdWithRbac(t, ['node-a', 'node-b']);
  t.equal(applied.code, 0, applied.stderr);
  const e = ['--etcd-endpoints', etcd.endpoint];
  t.match(created.find((c) => c.name === 'trellis-node-node-a' && c.kind === 'role')?.grants, [
    'read /trellis/v1/*',
    'readwrite /trellis/v1/nodes/node-a',
    'readwrite /trellis/v1/identities/node-a',
    'readwrite /trellis/v1/routes/subnet-a1/node-a',
    'readwrite /trellis/v1/routes/subnet-a2/node-a',
    'readwrite /trellis/v1/routes/subnet-b1/node-a',
    'readwrite /trellis/v1/ipam/node-a/*',
    'readwrite /trellis/v1/blocks-held/node-a/*',
    'readwrite /trellis/v1/blocks/*',
    'readwrite /trellis/v1/advertisers/*',
    'readwrite /trellis/v1/collector/*',
    'readwrite /trellis/v1/vpc/*',
  ]);
  t.ok(password('trellis-node-node-a').length >= 16, 'a generated password, printed once');

  const again = runCli('src/cli/trellisctl', ['rbac', 'apply', '--nodes', 'node-a,node-b', '-o', 'json', '--etcd-username', 'root', '--etcd-password', ROOT_PASSWORD, ...e]);
  t.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout) as RbacItem[];
  t.same(second.filter((c) => c.status === 'created'), [], 'idempotent: nothing created the second time');
  t.same(second.filter((c) => c.password !== undefined), [], 'no password printed again');

  const a = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-a', hostIP: '198.18.1.10', env: creds('node-a') });
  const b = daemon(t, { etcd: etcd.endpoint, nodeName: 'node-b', hostIP: '198.18.1.11', env: creds('node-b') });
  await Promise.all([a.start(), b.start()]);
  t.pass('both daemons register, claim, advertise and sync as their node users');

  const asA = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'trellis-node-node-a', password: password('trellis-node-node-a') } });
  t.teardown(() => asA.close());
  const root = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'root', password: ROOT_PASSWORD } });
  t.teardown(() => root.close());
  const claimOf = async (node: string): Promise<{ key: string; value: string }> => {
    const all = await root.getAll().prefix('/trellis/v1/blocks/').strings();
    const [key, value] = Object.entries(all).find(([, v]) => (JSON.parse(v) as { node: string }).node === node) ?? ['', ''];
    return { key, value };
  };
  const bClaim = await claimOf('node-b');
  const bBlock = (JSON.parse(bClaim.value) as { prefix: string }).prefix;
  const bBlockKey = bBlock.replace('/', '-');

  const refused: Array<[string, string]> = [
    ["node-b's node record", '/trellis/v1/nodes/node-b'],
    ["node-b's identity", '/trellis/v1/identities/node-b'],
    ["node-b's advertisement", '/trellis/v1/routes/subnet-a1/node-b'],
    ["node-b's pod addresses", `/trellis/v1/ipam/node-b/${bBlockKey}/${bBlock.split('/')[0]}`],
    ["node-b's hold", `/trellis/v1/blocks-held/node-b/${bBlockKey}`],
    ['the topology', '/trellis/v1/topology'],
    ["node-b's drain record", '/trellis/v1/drain/node-b'],
    ['its own drain record', '/trellis/v1/drain/node-a'],
  ];
  for (const [what, key] of refused) {
    await t.rejects(asA.put(key).value('{}').exec(), /permission denied/, `node-a's credential may not write ${what}`);
    await t.rejects(asA.delete().key(key).exec(), /permission denied/, `nor delete it`);
  }
  t.equal(await asA.get('/trellis/v1/nodes/node-b').exists(), true, 'but may read it');

  // node-a's credential may write the shared claims: it rewrites node-b's claim to name itself.
  const forged = bClaim.value.replace('"node":"node-b"', '"node":"node-a"');
  t.not(forged, bClaim.value);
  await asA.put(bClaim.key).value(forged).exec();
  await a.waitForLog(/claim names node-a but node-b holds the block.*block claim conflict/, 20_000);
  await b.waitForLog('wrote my claim again', 20_000);
  let repaired = '';
  for (let i = 0; i < 200 && !repaired.includes('"node":"node-b"'); i++) {
    repaired = (await root.get(bClaim.key).string()) ?? '';
    if (!repaired.includes('"node":"node-b"')) await delay(50);
  }
  t.match(repaired, /"node":"node-b"/, 'node-b wrote its claim back');
  const routes = runCli('src/cli/trellisctl', ['routes', '-o', 'json', '--etcd-username', 'trellis-reader', '--etcd-password', password('trellis-reader'), ...e]);
  t.equal(routes.code, 0, routes.stderr);
  const rows = JSON.parse(routes.stdout) as Array<{ node: string; prefixes: string[]; valid: boolean }>;
  t.same(rows.find((r) => r.node === 'node-b')?.prefixes, [bBlock], "node-b's block is routed to node-b");
  t.notOk(rows.find((r) => r.node === 'node-a')?.prefixes.includes(bBlock), 'never to node-a');
  t.notMatch(a.logs + b.logs, new RegExp(password('trellis-node-node-a')), 'no password in the logs');
});
