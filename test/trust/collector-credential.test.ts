// The node collector under per-node etcd credentials (docs/trust.md): a node
// user may not remove another node's records, so a trellisd that connects as
// its own node user is not a collector candidate unless it is given the
// trellis-collector credential (gc.etcdUsername/gc.etcdPassword); with it, it
// collects a dead node (claims, holds, pod addresses, identity). The
// collector user itself may remove what a dead node leaves, but may not write
// a node record or an advertisement.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { until } from '../../lab/pids.js';
import { etcdWithRbac, ROOT_PASSWORD } from '../../lab/rbac-etcd.js';
import { daemon } from '../../lab/trellis.js';
import { collectorCredentialProblem } from '../../daemon/collector-wiring.js';

t.test('collectorCredentialProblem: only a per-node user without gc credentials is refused', async (t) => {
  const base = { nodeName: 'n1', gc: { deadNodeAfter: 2000 } };
  t.equal(collectorCredentialProblem({ ...base, etcd: { endpoints: ['http://127.0.0.1:2379'] } } as never), undefined, 'no etcd auth');
  t.equal(collectorCredentialProblem({ ...base, etcd: { endpoints: [], username: 'trellis-admin' } } as never), undefined, 'a shared credential');
  t.match(collectorCredentialProblem({ ...base, etcd: { endpoints: [], username: 'trellis-node-n1' } } as never), /own per-node user trellis-node-n1.*gc\.etcdUsername/);
  t.equal(collectorCredentialProblem({ ...base, gc: { ...base.gc, etcdUsername: 'trellis-collector', etcdPassword: 'x' }, etcd: { endpoints: [], username: 'trellis-node-n1' } } as never), undefined);
});

t.test('per-node users: only the node given the collector credential collects, as that user', async (t) => {
  const { etcd, applied, created, password, nodeEnv: asNode } = await etcdWithRbac(t, ['plain', 'keeper', 'victim']);
  t.equal(applied.code, 0, applied.stderr);
  t.same(created.find((c) => c.kind === 'role' && c.name === 'trellis-collector')?.grants, [
    'read /trellis/v1/*',
    'readwrite /trellis/v1/blocks/*',
    'readwrite /trellis/v1/blocks-held/*',
    'readwrite /trellis/v1/ipam/*',
    'readwrite /trellis/v1/identities/*',
    'readwrite /trellis/v1/collector/*',
  ], 'the collector role: what a dead node leaves, and the election');

  const gc = ['--gc-dead-node-after', '2s'];
  const plain = daemon(t, { etcd: etcd.endpoint, nodeName: 'plain', hostIP: '198.18.1.10', holdTime: '3s', args: gc, env: asNode('plain') });
  const keeper = daemon(t, {
    etcd: etcd.endpoint, nodeName: 'keeper', hostIP: '198.18.1.11', holdTime: '3s', args: gc,
    env: { ...asNode('keeper'), TRELLIS_GC_ETCD_USERNAME: 'trellis-collector', TRELLIS_GC_ETCD_PASSWORD: password('trellis-collector') },
  });
  const victim = daemon(t, { etcd: etcd.endpoint, nodeName: 'victim', hostIP: '198.18.1.12', holdTime: '3s', env: asNode('victim') });
  await Promise.all([plain, keeper, victim].map((d) => d.start()));
  await plain.waitForLog(/own per-node user trellis-node-plain.*"msg":"not a candidate for the node collector"/, 10_000);
  t.pass('a node with only its own user says it is not a candidate, and why');

  const root = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'root', password: ROOT_PASSWORD } });
  t.teardown(() => root.close());
  const left = async (): Promise<string[]> =>
    [
      ...Object.entries(await root.getAll().prefix('/trellis/v1/blocks/').strings()).filter(([, v]) => (JSON.parse(v) as { node: string }).node === 'victim').map(([k]) => k),
      ...(await root.getAll().prefix('/trellis/v1/blocks-held/victim/').keys()),
      ...(await root.getAll().prefix('/trellis/v1/ipam/victim/').keys()),
      ...(await root.getAll().prefix('/trellis/v1/identities/victim').keys()),
    ];
  t.ok((await left()).length >= 2, 'the victim holds a claim and its hold');
  victim.kill();
  await until('the victim collected', async () => (await left()).length === 0, 60_000);
  t.pass("the victim's claims, holds, pod addresses and identity are gone");
  await until('the collection is logged', () => /collected dead node/.test(keeper.logs), 10_000);
  t.notMatch(plain.logs, /collected dead node/, 'the node without the credential did not collect');
  t.notMatch(keeper.logs + plain.logs, /permission denied/, 'no removal was refused');
  t.notMatch(keeper.logs, new RegExp(password('trellis-collector')), 'no password in the logs');

  const asCollector = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'trellis-collector', password: password('trellis-collector') } });
  t.teardown(() => asCollector.close());
  for (const [what, key] of [['a node record', '/trellis/v1/nodes/plain'], ['an advertisement', '/trellis/v1/routes/subnet-a1/plain'], ['the topology', '/trellis/v1/topology']]) {
    await t.rejects(asCollector.put(key as string).value('{}').exec(), /permission denied/, `the collector credential may not write ${what}`);
  }
});
