// Pods wired by the trellis plugin on two hosts of one subnet reach each
// other: the cluster lab gives each host namespace its own trellisd (routes
// on), the plugin wires a pod behind each host, and the route agents install
// the direct routes between the hosts' blocks. Nothing else routes pod
// addresses in the lab, so a reply proves the whole path.

import t from 'tap';
import { join } from 'node:path';
import { buildClusterLab } from '../../lab/cluster-lab.js';
import { needRoot } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import { cniPath, invoke, pluginVeths } from '../../lab/cni-harness.js';

const skip = needRoot();

t.test('a pod pings a pod on a same-subnet peer host', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 2 });
  await cluster.startDaemons();
  const path = cniPath(t);
  const [h0, h1] = cluster.hosts as [(typeof cluster.hosts)[0], (typeof cluster.hosts)[0]];

  const wire = async (host: typeof h0, id: string) => {
    const pod = await cluster.lab.ns(`${host.name}-${id}`);
    const netns = `/var/run/netns/${pod.name}`;
    const socket = join(host.daemon.stateDir, 'trellisd.sock');
    const config = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket };
    const out = await invoke({ command: 'ADD', hostNs: host.ns.name, containerId: id, netns, path, config });
    t.equal(out.code, 0, `ADD on ${host.name}: ${out.stdout}`);
    const address = (out.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
    return { pod, address, del: () => invoke({ command: 'DEL', hostNs: host.ns.name, containerId: id, path, config }) };
  };
  const a = await wire(h0, 'pod-a');
  const b = await wire(h1, 'pod-b');
  const blockOf = async (host: typeof h0) => (await cluster.blocksOf(host)).map((x) => x.prefix);
  t.comment(`pod-a ${a.address} on ${h0.name} (blocks ${(await blockOf(h0)).join(' ')}), pod-b ${b.address} on ${h1.name} (blocks ${(await blockOf(h1)).join(' ')})`);

  // The peer routes come from the route agents; allow them a moment to converge.
  let reply = { sent: 0, received: 0 };
  for (let i = 0; i < 20 && reply.received === 0; i++) {
    reply = await cluster.ping(a.pod, b.address, { count: 1 });
    if (reply.received === 0) await delay(250);
  }
  t.equal(reply.received, 1, 'pod-a reaches pod-b');
  t.same(await cluster.ping(b.pod, a.address, { count: 3, intervalMs: 100 }), { sent: 3, received: 3 }, 'pod-b reaches pod-a');
  const viaPeer = (await cluster.kernelRoutes(h0, { protocol: 84 })).filter((r) => r.gateway === h1.hostIP);
  t.ok(viaPeer.length > 0, `${h0.name} routes ${h1.name}'s block via ${h1.hostIP} (protocol 84)`);
  t.same(
    (await cluster.kernelRoutes(h0, { protocol: 84 })).filter((r) => r.dst === a.address).map((r) => r.dev),
    [(await pluginVeths(h0.ns.name))[0]],
    'and its own pod by the /32 the plugin installed',
  );

  t.equal((await a.del()).code, 0);
  t.equal((await b.del()).code, 0);
  t.same(await pluginVeths(h0.ns.name), []);
  t.same(await pluginVeths(h1.ns.name), []);
  t.same(await cluster.ping(h0, b.address, { count: 1 }), { sent: 1, received: 0 }, 'pod-b is gone');
});
