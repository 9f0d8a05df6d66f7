// A node cut off from etcd (nftables drops its packets to etcd, longer than
// its hold time) while its pods run: by default nothing of it is collected,
// and it comes back by itself with the same blocks. With time-based
// collection on (gc.deadNodeAfter) its blocks are collected while it is cut
// off; when it comes back it sees that, stops advertising them, says so, and
// hands out no address from them (docs/lifecycle.md).
import t from 'tap';
import { join } from 'node:path';
import { buildClusterLab, type ClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { cutFromEtcd } from '../../lab/etcd-partition.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';
import { needRoot } from '../../lab/netns.js';
import { delay, until } from '../../lab/pids.js';
import { contains, parsePrefix } from '../../src/core/cidr.js';

const skip = needRoot();
const HOLD_MS = 3000;

async function ready(cluster: ClusterLab, h: LabHost): Promise<boolean> {
  return (await cluster.lab.exec(h.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9653/readyz']).catch(() => '')) === '200';
}

async function blocksOf(cluster: ClusterLab, h: LabHost): Promise<string[]> {
  return (await cluster.blocksOf(h)).map((b) => b.prefix).sort();
}

async function advertised(cluster: ClusterLab, h: LabHost): Promise<string[]> {
  const [rec] = await cluster.getPrefix(cluster.keys.route(h.subnet, h.name));
  return rec === undefined ? [] : ((JSON.parse(rec.value) as { prefixes?: string[] }).prefixes ?? []);
}

t.test('a node cut off from etcd: kept by default; collected with gc.deadNodeAfter, and then it gives up what it lost', { skip, timeout: 240_000 }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 3, holdTime: `${HOLD_MS / 1000}s` });
  await cluster.startDaemons();
  const [k1, k2, cut] = cluster.hosts as [LabHost, LabHost, LabHost];
  const sock = join(cut.daemon.stateDir, 'trellisd.sock');
  const pod = await callIpamSocket(sock, 'POST', '/v1/allocate', { containerId: 'running-pod', ifName: 'eth0' });
  t.equal(pod.status, 200, JSON.stringify(pod.body));
  const before = await blocksOf(cluster, cut);
  t.ok(before.length > 0, `the node holds ${before.join(' ')}`);

  // 1. Default (no time rule): cut off for three hold times, nothing is collected.
  let heal = await cutFromEtcd(cluster, cut);
  try {
    await until('its node record gone (lease expired)', async () => !(await cluster.nodeNames()).includes(cut.name), 30_000, 200);
    await delay(2 * HOLD_MS);
    t.same(await blocksOf(cluster, cut), before, 'its blocks stay claimed while it is cut off (no time rule)');
  } finally {
    await heal();
  }
  await until('back and ready', async () => (await cluster.nodeNames()).includes(cut.name) && (await ready(cluster, cut)), 60_000, 200);
  t.same(await blocksOf(cluster, cut), before, 'back with the same blocks');
  t.same(await advertised(cluster, cut), before, 'and advertises them again');

  // 2. Time rule on the other nodes (grace 2 s): cut off again, its blocks are collected.
  for (const k of [k1, k2]) {
    await k.daemon.stop();
    k.daemon.options.args = [...(k.daemon.options.args ?? []), '--gc-dead-node-after', '2s'];
  }
  await cluster.startDaemons([k1, k2]);
  heal = await cutFromEtcd(cluster, cut);
  try {
    await until('its blocks collected', async () => (await blocksOf(cluster, cut)).length === 0, 60_000, 200);
    t.pass('collected while cut off');
    const logs = k1.daemon.logs + k2.daemon.logs;
    t.match(logs, new RegExp(`"node":"${cut.name}".*"rule":"dead-node-after".*collected dead node`), 'the collector says which node, by which rule');
  } finally {
    await heal();
  }
  await cut.daemon.waitForLog('block taken from this node while it held it', 60_000);
  t.pass('back, it sees the collection');
  await cut.daemon.waitForLog('holding blocks again after blocks were taken', 60_000);
  await until('advertising only new blocks', async () => {
    const a = await advertised(cluster, cut);
    return a.length > 0 && !a.some((p) => before.includes(p));
  }, 30_000, 200);
  t.pass('it stopped advertising the collected blocks and advertises a new one');
  await until('ready again', () => ready(cluster, cut), 30_000, 200);
  for (let i = 0; i < 5; i++) {
    const r = await callIpamSocket(sock, 'POST', '/v1/allocate', { containerId: `after-${i}`, ifName: 'eth0' });
    t.equal(r.status, 200, JSON.stringify(r.body));
    const address = parsePrefix(`${r.body.address as string}/32`);
    t.notOk(before.some((b) => contains(parsePrefix(b), address)), `${r.body.address as string} is in none of the collected blocks`);
  }
});
