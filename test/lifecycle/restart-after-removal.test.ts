// A node whose records were removed while its trellisd was down (here
// `trellisctl node remove`, as a collection after gc.deadNodeAfter would)
// while its pod kept running: restarted, trellisd finds the pod's route in
// the kernel, logs and counts the taken block, and never claims it again,
// although nobody else holds it: no address of it is handed out twice.
import t from 'tap';
import { join } from 'node:path';
import { buildClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';
import { needRoot } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';
import { contains, parsePrefix } from '../../src/core/cidr.js';

const skip = needRoot();

t.test('restarted after its block was taken while it was down, a node with a pod still on it claims another block', { skip, timeout: 180_000 }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 1, holdTime: '3s' });
  await cluster.startDaemons();
  const h = cluster.hosts[0] as LabHost;
  const blocks = async (): Promise<string[]> => (await cluster.blocksOf(h)).map((b) => b.prefix).sort();
  const [old] = await blocks();
  const pod = await cluster.addPod(h);
  t.ok(old !== undefined && contains(parsePrefix(old), parsePrefix(`${pod.address}/32`)), `a pod on ${pod.address} in ${old}`);

  h.daemon.kill();
  await until('its node record gone (lease expired)', async () => !(await cluster.nodeNames()).includes(h.name), 30_000, 200);
  const removed = JSON.parse(
    await cluster.lab.exec(cluster.router, process.execPath, [bin('src/cli/trellisctl'), 'node', 'remove', h.name, '-o', 'json', '--etcd-endpoints', cluster.endpoint]),
  ) as { blocks: string[] };
  t.same(removed.blocks, [old], 'removed from another host while down: its block is free');

  await cluster.startDaemons([h]);
  await h.daemon.waitForLog('pods on this host use addresses of blocks taken from this node while it was away', 30_000);
  const line = h.daemon.logs.split('\n').find((l) => l.includes('blocks taken from this node while it was away'));
  t.match(JSON.parse(line as string), { blocks: [old] }, 'the log names the block');
  const now = await blocks();
  t.ok(now.length > 0 && !now.includes(old as string), `it claims another block (${now.join(' ')}), not the one its pod still uses`);
  const metrics = await cluster.lab.exec(h.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']);
  t.match(metrics, /^trellis_blocks_lost_total 1$/m, 'counted');

  const sock = join(h.daemon.stateDir, 'trellisd.sock');
  for (let i = 0; i < 3; i++) {
    const r = await callIpamSocket(sock, 'POST', '/v1/allocate', { containerId: `new-pod-${i}`, ifName: 'eth0' });
    t.equal(r.status, 200, JSON.stringify(r.body));
    t.notOk(contains(parsePrefix(old as string), parsePrefix(`${r.body.address as string}/32`)), `${r.body.address as string} is not in ${old}`);
  }
  await until('ready', async () => (await cluster.lab.exec(h.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9653/readyz']).catch(() => '')) === '200', 30_000, 200);
  t.pass('and ready');
});
