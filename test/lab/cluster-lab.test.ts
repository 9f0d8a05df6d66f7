// Tests of the cluster lab: a 2×2 routed network whose hosts reach each other
// and etcd across the router, daemons that register and claim a block inside
// their subnet's pod prefix, a pod wired like the CNI plugin does it, and
// nothing left behind after destroy().

import t from 'tap';
import { contains, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { buildClusterLab, clusterTopologyYaml } from '../../lab/cluster-lab.js';
import { listNamespaces, needRoot } from '../../lab/netns.js';
import { isAlive } from '../../lab/pids.js';

const skip = needRoot();

t.test('topology YAML: one zone and subnet per lab subnet', async (t) => {
  const yaml = clusterTopologyYaml(2);
  t.match(yaml, /network: 100\.96\.0\.0\/16/);
  t.match(yaml, /subnetSize: 20/);
  t.match(yaml, /- id: subnet-2\n\s+cidr: 198\.18\.2\.0\/24/);
  t.notMatch(yaml, /subnet-3/);
});

t.test('a 2×2 cluster lab', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 2, hostsPerSubnet: 2 });
  t.comment(`2×2 lab built in ${cluster.buildMs} ms`);
  t.same(
    cluster.hosts.map((h) => [h.name, h.subnet, h.hostIP]),
    [
      ['h1-0', 'subnet-1', '198.18.1.10'],
      ['h1-1', 'subnet-1', '198.18.1.11'],
      ['h2-0', 'subnet-2', '198.18.2.10'],
      ['h2-1', 'subnet-2', '198.18.2.11'],
    ],
  );
  t.equal(cluster.endpoint.startsWith('http://198.18.1.1:'), true, 'etcd on the router address of subnet-1');
  const h10 = cluster.host('h1-0');
  const h20 = cluster.host('h2-0');

  t.same(await cluster.ping(h10, '198.18.2.10', { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'h1-0 reaches h2-0 across the router');
  t.same(await cluster.ping(h20, '198.18.1.10', { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'h2-0 reaches h1-0 across the router');
  t.same(await cluster.ping(h10, '198.18.1.99', { count: 1 }), { sent: 1, received: 0 }, 'nobody at 198.18.1.99');
  const health = JSON.parse(await cluster.etcdctlFrom(h20, ['endpoint', 'health', '-w', 'json'])) as Array<{ health?: boolean }>;
  t.same(health.map((e) => e.health), [true], 'etcd answers from a host namespace of subnet-2');

  const stored = await cluster.getPrefix(cluster.keys.topology());
  t.equal(stored.length, 1, 'topology stored');
  t.match(stored[0]?.value ?? '', /subnet-2/);

  await cluster.startDaemons();
  t.same(await cluster.nodeNames(), ['h1-0', 'h1-1', 'h2-0', 'h2-1'], 'every daemon registered its node');
  for (const h of cluster.hosts) {
    const blocks = await cluster.blocksOf(h);
    t.equal(blocks.length, 1, `${h.name} holds one block`);
    const podPrefix = cluster.topology.zones.flatMap((z) => z.subnets).find((s) => s.id === h.subnet)!.podPrefix;
    t.ok(contains(podPrefix, parsePrefix(blocks[0]!.prefix)), `${h.name}'s block ${blocks[0]!.prefix} lies in its subnet's pod prefix`);
    t.equal(blocks[0]!.subnet, h.subnet);
  }

  const first = (await cluster.blocksOf(h10))[0]!.prefix;
  const pod = await cluster.addPod(h10);
  t.equal(pod.address, first.split('/')[0], 'the pod gets the first address of its host\'s block');
  t.ok(contains(parsePrefix(first), parseAddress(pod.address)));
  const podRoutes = (await cluster.kernelRoutes(h10, { protocol: 84 })).filter((r) => r.dst === pod.address);
  t.equal(podRoutes.length, 1, 'host route to the pod, protocol 84');
  t.equal(podRoutes[0]?.dev, pod.hostIf);
  t.same(await cluster.ping(h10, pod.address, { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'the host reaches its pod');
  t.same(await cluster.ping(pod.ns, '198.18.1.10', { count: 1 }), { sent: 1, received: 1 }, 'the pod reaches its host through proxy ARP');
  const second = await cluster.addPod(h10);
  t.not(second.address, pod.address, 'a second pod gets another address');

  const names = cluster.lab.namespaces.map((n) => n.name);
  const pids = cluster.pids();
  t.equal(pids.length, 5, 'etcd and four daemons running');
  t.equal(names.length, 1 + 4 + 2, 'router, four hosts, two pods');
  await cluster.destroy();
  const left = new Set(listNamespaces());
  t.same(names.filter((n) => left.has(n)), [], 'no namespace of the lab left');
  t.same(pids.filter((p) => isAlive(p)), [], 'no process of the lab left');
  await cluster.destroy(); // idempotent
});

t.test('staticNeighbours: hosts and router know their subnet by permanent entries, no ARP needed', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 2, hostsPerSubnet: 3, staticNeighbours: true });
  const permanent = async (ns: string, dev: string): Promise<Array<[string, string]>> => {
    const out = await cluster.lab.exec(ns, 'ip', ['-j', '-4', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']);
    return (JSON.parse(out) as Array<{ dst: string; lladdr: string }>).map((e): [string, string] => [e.dst, e.lladdr]).sort();
  };
  const macOf = async (ns: string, dev: string): Promise<string> =>
    (JSON.parse(await cluster.lab.exec(ns, 'ip', ['-j', 'link', 'show', 'dev', dev])) as Array<{ address: string }>)[0]!.address;
  const h11 = cluster.host('h1-1');
  t.same(
    await permanent(h11.ns.name, 'eth0'),
    [
      ['198.18.1.1', await macOf(cluster.router.name, 'br1')],
      ['198.18.1.10', await macOf(cluster.host('h1-0').ns.name, 'eth0')],
      ['198.18.1.12', await macOf(cluster.host('h1-2').ns.name, 'eth0')],
    ],
    'h1-1: its gateway and the other two hosts of subnet-1, at their real MAC addresses',
  );
  t.same((await permanent(cluster.router.name, 'br2')).map(([ip]) => ip), ['198.18.2.10', '198.18.2.11', '198.18.2.12'], 'the router: every host of subnet-2 on br2');
  t.same(await cluster.ping(h11, '198.18.1.12', { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'same subnet, straight to the entry');
  t.same(await cluster.ping(h11, '198.18.2.11', { count: 2, intervalMs: 100 }), { sent: 2, received: 2 }, 'across the router');
  const dynamic = JSON.parse(await cluster.lab.exec(h11.ns.name, 'ip', ['-j', '-4', 'neigh', 'show', 'dev', 'eth0'])) as Array<{ state?: string[] }>;
  t.same(dynamic.filter((e) => !(e.state ?? []).includes('PERMANENT')), [], 'nothing was resolved by ARP');
});
