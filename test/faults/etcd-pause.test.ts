// etcd paused (SIGSTOP) for longer than the hold time, then resumed: every
// lease expires at once and etcd deletes every node record and advertisement.
// That is an etcd-side event, not every node dying: no host may remove a
// route (each host's kernel watched with `ip monitor route`), and continuous
// pings between pods on different hosts lose nothing. Then a real death
// (SIGKILL of one trellisd) must still withdraw its routes from the peers
// within hold time + 1 s.

import t from 'tap';
import { buildClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { needRoot } from '../../lab/netns.js';
import { delay, until } from '../../lab/pids.js';
import { RouteLog } from '../../lab/route-log.js';

const skip = needRoot();
const HOLD_MS = 3000;

t.test('etcd paused longer than the hold time: no route removed, no ping lost; a real death still withdraws', { skip }, async (t) => {
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 3, holdTime: '3s' });
  await cluster.startDaemons();
  const hosts = cluster.hosts;
  const blockOf = new Map<string, string>();
  for (const h of hosts) blockOf.set(h.name, (await cluster.blocksOf(h))[0]!.prefix);
  const peersOf = (h: LabHost): LabHost[] => hosts.filter((o) => o !== h);
  for (const h of hosts) {
    for (const p of peersOf(h)) {
      await until(`${h.name} routes ${p.name}`, async () => (await cluster.kernelRoutes(h, { protocol: 84 })).some((r) => r.dst === blockOf.get(p.name)), 20_000);
    }
  }
  const pods = await Promise.all(hosts.map((h) => cluster.addPod(h)));
  const logs = hosts.map((h) => new RouteLog(cluster.lab, h.ns));
  t.teardown(() => logs.forEach((l) => l.stop()));
  await Promise.all(logs.map((l) => l.ready()));
  const from = Date.now();

  const pauseMs = 2 * HOLD_MS;
  const count = Math.round((pauseMs + 12_000) / 100);
  const pinging = [
    cluster.ping(pods[0]!.ns, pods[1]!.address, { count, intervalMs: 100 }),
    cluster.ping(pods[1]!.ns, pods[2]!.address, { count, intervalMs: 100 }),
    cluster.ping(pods[2]!.ns, pods[0]!.address, { count, intervalMs: 100 }),
  ];
  await delay(1000);
  cluster.etcd.pause();
  await delay(pauseMs);
  cluster.etcd.resume();
  // Every node re-registers (a fresh lease): wait for all three advertisements.
  await until('every advertisement back', async () => (await cluster.getPrefix(cluster.keys.routesPrefix())).length === hosts.length, 30_000, 200);
  const results = await Promise.all(pinging);
  t.ok(hosts.some((h) => /lease lost|expired/.test(h.daemon.logs)), 'the pause did make leases expire');
  for (const [i, h] of hosts.entries()) {
    const peerBlocks = new Set(peersOf(h).map((p) => blockOf.get(p.name)));
    const removed = logs[i]!.deletions(from).filter((e) => peerBlocks.has(e.dst));
    t.same(removed.map((e) => e.line), [], `${h.name} removed no peer route`);
  }
  for (const [i, r] of results.entries()) t.equal(r.received, r.sent, `pings ${i}: ${r.received}/${r.sent} replies across the pause`);

  // A real death: SIGKILL one trellisd; its peers withdraw its block within hold time + 1 s.
  const victim = hosts[2]!;
  const gone = blockOf.get(victim.name)!;
  const killedAt = Date.now();
  victim.daemon.kill();
  for (const [i, h] of hosts.entries()) {
    if (h === victim) continue;
    await until(`${h.name} withdraws ${gone}`, () => logs[i]!.deletions(killedAt, gone).length > 0, 15_000, 50);
    const took = logs[i]!.deletions(killedAt, gone)[0]!.at - killedAt;
    t.ok(took <= HOLD_MS + 1000, `${h.name} withdrew ${victim.name}'s route ${took} ms after SIGKILL (hold time ${HOLD_MS} ms)`);
  }
});
