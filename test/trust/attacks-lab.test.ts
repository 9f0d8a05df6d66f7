// The attacks on routing state, against a lab cluster (network namespaces,
// real etcd with authentication on, each trellisd as its own node user),
// with the kernel route tables of every host checked after each:
//  * a forged claim and advertisement for a free block, with no node record
//    and no lease, next hop 198.18.1.99 (written with a credential that may
//    write anything: what a node credential cannot even do);
//  * an advertisement whose next hop is not its node's host IP, written with
//    that node's credential under that node's lease;
//  * a claim rewritten to another owner with that owner's credential (plus a
//    hold and an advertisement of its own): a conflict on every host, the
//    block routed to its rightful holder throughout, the claim written back by
//    the holder, listed by trellisctl.
import t from 'tap';
import { buildClusterLab, type ClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { needRoot } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';

const skip = needRoot();

/** Waits (bounded by attempts, not by a deadline assertion) until `check` holds; returns its last value. */
async function until<T>(what: string, read: () => Promise<T>, check: (v: T) => boolean, attempts = 400): Promise<T> {
  let v = await read();
  for (let i = 0; i < attempts && !check(v); i++) {
    await delay(50);
    v = await read();
  }
  if (!check(v)) throw new Error(`gave up waiting for ${what}: ${JSON.stringify(v)}`);
  return v;
}

/** Routes of protocol 84 via a gateway on `host`, as "dst via gw". */
async function peerRoutes(cluster: ClusterLab, host: LabHost): Promise<string[]> {
  return (await cluster.kernelRoutes(host, { protocol: 84 })).filter((r) => r.gateway !== undefined).map((r) => `${r.dst} via ${r.gateway}`).sort();
}

t.test('forged claims, forged advertisements, wrong next hops, rewritten claims', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 3 });
  const trellisctl = (args: string[]): Promise<string> =>
    cluster.lab.exec(cluster.router, process.execPath, [bin('src/cli/trellisctl'), ...args, '--etcd-endpoints', cluster.endpoint]);
  const applied = JSON.parse(
    await trellisctl(['rbac', 'apply', '--nodes', cluster.hosts.map((h) => h.name).join(','), '--enable-auth', '--root-password', 'rootpw', '-o', 'json']),
  ) as Array<{ kind: string; name: string; password?: string }>;
  const password = (user: string): string => applied.find((c) => c.kind === 'user' && c.name === user)?.password ?? '';
  const as = (user: string): string => `--user=${user}:${user === 'root' ? 'rootpw' : password(user)}`;
  for (const h of cluster.hosts) {
    h.daemon.options.env = { TRELLIS_ETCD_USERNAME: `trellis-node-${h.name}`, TRELLIS_ETCD_PASSWORD: password(`trellis-node-${h.name}`) };
  }
  await cluster.startDaemons();
  const [h0, h1, h2] = cluster.hosts as [LabHost, LabHost, LabHost];
  const get = async (key: string): Promise<{ value: string; lease: string } | undefined> => {
    const text = await cluster.etcdctl([as('root'), 'get', key, '-w', 'json']);
    const kv = (JSON.parse(text) as { kvs?: Array<{ value: string }> }).kvs?.[0];
    // Lease ids use all 64 bits: read from the text, not as a JSON number.
    const lease = /"lease":(\d+)/.exec(text)?.[1] ?? '0';
    return kv === undefined ? undefined : { value: Buffer.from(kv.value, 'base64').toString(), lease: BigInt(lease).toString(16) };
  };
  const blockOf = async (h: LabHost): Promise<string> => {
    const all = JSON.parse(await cluster.etcdctl([as('root'), 'get', '--prefix', cluster.keys.blocksPrefix(), '-w', 'json'])) as { kvs?: Array<{ value: string }> };
    const mine = (all.kvs ?? []).map((kv) => JSON.parse(Buffer.from(kv.value, 'base64').toString()) as { node: string; prefix: string }).find((b) => b.node === h.name);
    if (mine === undefined) throw new Error(`no block of ${h.name}`);
    return mine.prefix;
  };
  const blocks = new Map<string, string>();
  for (const h of cluster.hosts) blocks.set(h.name, await blockOf(h));
  // Every host routes each peer's block via that peer's host IP, and nothing else.
  const honest = (h: LabHost): string[] => cluster.hosts.filter((p) => p !== h).map((p) => `${blocks.get(p.name)} via ${p.hostIP}`).sort();
  for (const h of cluster.hosts) await until(`${h.name}'s peer routes`, () => peerRoutes(cluster, h), (r) => JSON.stringify(r) === JSON.stringify(honest(h)));
  t.pass('every host routes its peers\' blocks via their host IPs');

  // 1. A forged claim and advertisement for a free block: no node record, no lease.
  const free = '100.96.3.0/26';
  const claim = (prefix: string, node: string): string => JSON.stringify({ schemaVersion: 1, prefix, subnet: 'subnet-1', node });
  const advert = (node: string, prefixes: string[], nextHop: string): string => JSON.stringify({ schemaVersion: 1, node, subnet: 'subnet-1', nextHop, prefixes });
  await cluster.etcdctl([as('root'), 'put', cluster.keys.block(free), claim(free, 'ghost')]);
  await cluster.etcdctl([as('root'), 'put', cluster.keys.route('subnet-1', 'ghost'), advert('ghost', [free], '198.18.1.99')]);
  for (const h of cluster.hosts) await h.daemon.waitForLog(/advertisement of ghost: no valid node record/, 20_000);
  for (const h of cluster.hosts) t.same(await peerRoutes(cluster, h), honest(h), `${h.name}: no route to the forged block`);
  await t.rejects(
    cluster.etcdctl([as(`trellis-node-${h2.name}`), 'put', cluster.keys.route('subnet-1', 'ghost2'), advert('ghost2', [free], '198.18.1.99')]),
    /permission denied/,
    'a node credential cannot even write an advertisement for another name',
  );

  // 2. h2's credential, under h2's own lease, names a next hop that is not h2's host IP.
  const h2Node = await get(cluster.keys.node(h2.name));
  await cluster.etcdctl([as(`trellis-node-${h2.name}`), 'put', `--lease=${h2Node?.lease ?? '0'}`, cluster.keys.route('subnet-1', h2.name), advert(h2.name, [blocks.get(h2.name) as string], '198.18.1.99')]);
  for (const h of [h0, h1]) await h.daemon.waitForLog(/next hop 198\.18\.1\.99 is not the host IP 198\.18\.1\.12/, 20_000);
  for (const h of cluster.hosts) {
    const routes = await until(`${h.name}'s peer routes`, () => peerRoutes(cluster, h), (r) => JSON.stringify(r) === JSON.stringify(honest(h)));
    t.notOk(routes.some((r) => r.endsWith('via 198.18.1.99')), `${h.name}: nothing via the wrong next hop`);
  }

  // 3. h2's credential rewrites h0's claim to name h2, adds a hold and advertises the block.
  const target = blocks.get(h0.name) as string;
  // Pod addresses chosen here: the lab's own chooser reads etcd without credentials.
  const podAddress = (block: string): string => block.replace(/\.(\d+)\/26$/, (_m, last: string) => `.${Number(last) + 5}`);
  const pod0 = await cluster.addPod(h0, podAddress(target));
  const pod1 = await cluster.addPod(h1, podAddress(blocks.get(h1.name) as string));
  t.same(await cluster.ping(pod1.ns, pod0.address, { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'pods on h0 and h1 reach each other');
  const h2Lease = (await get(cluster.keys.node(h2.name)))?.lease ?? '0';
  await cluster.etcdctl([as(`trellis-node-${h2.name}`), 'put', cluster.keys.block(target), claim(target, h2.name)]);
  await cluster.etcdctl([as(`trellis-node-${h2.name}`), 'put', cluster.keys.hold(h2.name, target), claim(target, h2.name)]);
  await cluster.etcdctl([as(`trellis-node-${h2.name}`), 'put', `--lease=${h2Lease}`, cluster.keys.route('subnet-1', h2.name), advert(h2.name, [blocks.get(h2.name) as string, target], h2.hostIP)]);
  for (const h of cluster.hosts) await h.daemon.waitForLog(new RegExp(`claim names ${h2.name} but ${h0.name} holds the block.*block claim conflict`), 20_000);
  await h0.daemon.waitForLog('wrote my claim again', 20_000);
  const restored = await until('the claim written back', () => get(cluster.keys.block(target)), (v) => v?.value.includes(`"node":"${h0.name}"`) === true);
  t.match(restored?.value, new RegExp(`"node":"${h0.name}"`), `${h0.name} wrote its claim back`);
  for (const h of cluster.hosts) {
    const routes = await until(`${h.name}'s peer routes`, () => peerRoutes(cluster, h), (r) => JSON.stringify(r) === JSON.stringify(honest(h)));
    t.notOk(routes.includes(`${target} via ${h2.hostIP}`), `${h.name}: ${target} never via ${h2.name}`);
  }
  t.same(await cluster.ping(pod1.ns, pod0.address, { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'the pods still reach each other');
  const listed = JSON.parse(await trellisctl(['blocks', '--ignored', '-o', 'json', '--etcd-username', 'root', '--etcd-password', 'rootpw'])) as Array<{
    prefix: string;
    holder?: string;
    problem?: string;
  }>;
  t.match(listed.find((b) => b.prefix === target), { holder: h0.name, problem: new RegExp(`conflict: ${h2.name} also holds the block`) }, 'trellisctl lists the stray hold as a conflict');
});
