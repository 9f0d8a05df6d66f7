// trellisd restarted gracefully on a busy host (CPU hogs, by default three
// per core) with a 3 s hold time: a peer must never remove the node's routes
// (watched on the peer with `ip monitor route`, which sees a delete however
// short-lived). The stopping daemon hands its records to a restart lease
// (restartHoldTime, 30 s: the default), so the restart need not fit in the hold time;
// the stop's log says so. Stop and start times are printed, not asserted.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildClusterLab } from '../../lab/cluster-lab.js';
import { cpuHog } from '../../lab/cpu-hog.js';
import { needRoot } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { RouteLog } from '../../lab/route-log.js';

const skip = needRoot();
const RESTARTS = Number(process.env.TRELLIS_RESTARTS ?? 4);

t.test('restarts under load fit the hold time: peers keep the routes', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 2, holdTime: '3s', extraDaemonArgs: ['--restart-hold-time', '30s'] });
  await cluster.startDaemons();
  const [peer, node] = [cluster.host('h1-0'), cluster.host('h1-1')];
  const block = (await cluster.blocksOf(node))[0]!.prefix;
  await until(`${peer.name} routes ${block}`, async () => (await cluster.kernelRoutes(peer, { protocol: 84 })).some((r) => r.dst === block), 20_000);
  const log = new RouteLog(cluster.lab, peer.ns);
  t.teardown(() => log.stop());
  await log.ready();
  const from = Date.now();
  cpuHog(t, Number(process.env.TRELLIS_HOGS ?? 6));


  for (let i = 0; i < RESTARTS; i++) {
    const t0 = Date.now();
    const stopMark = node.daemon.logs.length;
    await node.daemon.stop();
    const stopLog = node.daemon.logs.slice(stopMark);
    const t1 = Date.now();
    const mark = node.daemon.logs.length;
    await node.daemon.start('cluster view synced', 60_000);
    const t2 = Date.now();
    const run = node.daemon.logs.slice(mark);
    if (process.env.TRELLIS_VERBOSE === '1') {
      for (const line of run.split('\n').filter((l) => l.startsWith('{'))) {
        const rec = JSON.parse(line) as { time: number; msg: string };
        t.comment(`+${rec.time - t1} ms ${rec.msg}`);
      }
    }
    t.match(stopLog, /records handed to a restart lease/, `restart ${i + 1}: the stop handed the records over (stop ${t1 - t0} ms, start ${t2 - t1} ms)`);
    t.notMatch(run, /lease lost/, 'the new run lost no lease');
  }
  // The new run takes the records over: both under the lease it keeps alive (not the restart lease).
  const leaseOf = async (key: string): Promise<string | undefined> => /"lease":(\d+)/.exec(await cluster.etcdctl(['get', key, '-w', 'json']))?.[1];
  const own = (): string => (JSON.parse(readFileSync(join(node.daemon.stateDir, 'lease.json'), 'utf8')) as { id?: string }).id ?? '';
  const keys = [cluster.keys.node(node.name), cluster.keys.route(node.subnet, node.name)];
  await until('the records under the running daemon\'s lease', async () => (await Promise.all(keys.map(leaseOf))).every((l) => l === own()), 30_000, 200);
  t.pass(`node record and advertisement are under the new run's lease ${own()}`);
  // A lease that expired during the last restart would show within one more hold time.
  await new Promise((r) => setTimeout(r, 4_000));
  t.same(log.deletions(from, block).map((e) => e.line), [], `${peer.name} never removed ${node.name}'s route to ${block}`);
  t.ok((await cluster.kernelRoutes(peer, { protocol: 84 })).some((r) => r.dst === block), 'and routes it now');
});
