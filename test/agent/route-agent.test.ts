// The route agent on a 3×3 lab: three subnets of three hosts behind a router,
// etcd in the router, one trellisd per host namespace.
import t from 'tap';
import { contains, parsePrefix } from '../../src/core/cidr.js';
import { buildClusterLab, type ClusterLab, type LabHost, type LabPod } from '../../lab/cluster-lab.js';
import { needRoot } from '../../lab/netns.js';
import { delay, until } from '../../lab/pids.js';

const skip = needRoot();


/** Destinations of Trellis's peer routes (via a gateway) in a host. */
async function peerRoutes(lab: ClusterLab, h: LabHost): Promise<string[]> {
  const routes = await lab.kernelRoutes(h, { protocol: 84 });
  return routes.filter((r) => r.gateway !== undefined).map((r) => r.dst).sort();
}

async function blocksByHost(lab: ClusterLab): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const b of await lab.blocksOf()) out.set(b.node, [...(out.get(b.node) ?? []), b.prefix]);
  return out;
}

t.test('route agent in a 3×3 lab', { skip }, async (t) => {
  const lab = await buildClusterLab(t, { subnets: 3, hostsPerSubnet: 3, holdTime: '3s' });
  await lab.startDaemons();
  const pods = new Map<string, LabPod>();
  for (const h of lab.hosts) pods.set(h.name, await lab.addPod(h));
  const peersOf = (h: LabHost): LabHost[] => lab.hosts.filter((o) => o.subnet === h.subnet && o !== h);

  t.test('routes to the two same-subnet peers only, and pods reach each other', async (t) => {
    const blocks = await blocksByHost(lab);
    for (const h of lab.hosts) {
      const want = peersOf(h).flatMap((p) => blocks.get(p.name) ?? []).sort();
      await until(`${h.name} routes`, async () => JSON.stringify(await peerRoutes(lab, h)) === JSON.stringify(want));
      const routes = await lab.kernelRoutes(h, { protocol: 84 });
      for (const r of routes.filter((x) => x.gateway !== undefined)) {
        const owner = lab.hosts.find((o) => (blocks.get(o.name) ?? []).some((b) => contains(parsePrefix(b), parsePrefix(r.dst.includes('/') ? r.dst : `${r.dst}/32`))));
        t.equal(owner?.subnet, h.subnet, `${h.name}: ${r.dst} belongs to a same-subnet peer`);
        t.equal(r.gateway, owner?.hostIP, `${h.name}: ${r.dst} via its owner's host IP`);
        t.equal(r.dev, 'eth0');
      }
      t.equal(routes.filter((x) => x.gateway !== undefined).length, want.length, `${h.name}: exactly its two peers' blocks`);
      t.ok(routes.some((r) => r.type === 'unreachable'), `${h.name}: own blocks are unreachable, not sent out`);
    }
    for (const h of lab.hosts) {
      for (const p of peersOf(h)) {
        const r = await lab.ping(pods.get(h.name)!.ns, pods.get(p.name)!.address, { count: 1 });
        t.equal(r.received, 1, `pod on ${h.name} pings pod on ${p.name}`);
      }
    }
  });

  t.test('metrics and readiness', async (t) => {
    const h = lab.hosts[0]!;
    const ready = await lab.lab.exec(h.ns, 'curl', ['-s', '-w', ' %{http_code}', 'http://127.0.0.1:9653/readyz']);
    t.equal(ready, 'ready\n 200');
    const metrics = await lab.lab.exec(h.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']);
    t.match(metrics, /^trellis_routes_managed 3$/m, 'two peer routes and one unreachable route');
    t.match(metrics, /^trellis_ready 1$/m);
    t.match(metrics, /^trellis_lease_state\{state="alive"\} 1$/m);
    t.match(metrics, /^trellis_advertisements\{state="valid"\} 9$/m);
    t.match(metrics, /^trellis_reconcile_passes_total\{result="ok"\} \d+$/m);
    t.match(metrics, /^trellis_last_full_sync_timestamp_seconds [1-9]\d{9}/m, 'the last full sync, as a Unix time');
    t.match(metrics, /^trellis_records_ignored_total\{kind="advertisement",reason="invalid"\} 0$/m);
    t.match(metrics, /^trellis_etcd_errors_total\{source="publish"\} 0$/m);
  });

  t.test('an owned route deleted by hand is back within 1 s; a foreign route is never touched', async (t) => {
    const h = lab.hosts[0]!;
    const [victim] = await peerRoutes(lab, h);
    await lab.lab.exec(h.ns, 'ip', ['route', 'add', '100.127.0.0/24', 'via', '198.18.1.1', 'proto', 'static']);
    await lab.lab.exec(h.ns, 'ip', ['route', 'del', victim!, 'proto', '84']);
    const took = await until('route repaired', async () => (await peerRoutes(lab, h)).includes(victim!), 1000, 20);
    t.pass(`repaired in ${took} ms`);
    lab.hosts[1]!.daemon.kill(); // a change that makes every agent in the subnet run passes
    await until('peer routes withdrawn', async () => (await peerRoutes(lab, h)).length === 1, 6000);
    const foreign = await lab.kernelRoutes(h, { protocol: 4 });
    t.ok(foreign.some((r) => r.dst === '100.127.0.0/24'), 'the static route is still there');
    await lab.hosts[1]!.daemon.start();
    await until('peer routes back', async () => (await peerRoutes(lab, h)).length === 2);
    await lab.lab.exec(h.ns, 'ip', ['route', 'del', '100.127.0.0/24']);
  });

  t.test('a foreign route for a peer\'s prefix is a conflict: reported, counted, not fought', async (t) => {
    const h = lab.hosts[0]!;
    const [victim] = await peerRoutes(lab, h);
    const metric = async (): Promise<string> => lab.lab.exec(h.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']);
    t.match(await metric(), /^trellis_route_conflicts 0$/m);
    // Somebody else's route takes the peer's prefix (same table, same metric).
    await lab.lab.exec(h.ns, 'ip', ['route', 'replace', victim!, 'via', '198.18.1.1', 'proto', 'static']);
    await until('conflict counted', async () => /^trellis_route_conflicts 1$/m.test(await metric()), 3000, 50);
    t.match(await metric(), /^trellis_routes_managed 2$/m, 'the conflicting route is not counted as managed');
    await new Promise((r) => setTimeout(r, 1500));
    t.ok((await lab.kernelRoutes(h, { protocol: 4 })).some((r) => r.dst === victim), 'the foreign route is left as it is');
    t.notOk((await lab.kernelRoutes(h, { protocol: 84 })).some((r) => r.dst === victim), 'and not replaced by Trellis');
    t.match(h.daemon.logs, new RegExp(`${victim!.replace(/[./]/g, '\\$&')}[^\\n]*(conflict|foreign)|(conflict|foreign)[^\\n]*${victim!.replace(/[./]/g, '\\$&')}`), 'logged with the prefix');
    // Gone again: Trellis's route returns, the conflict clears.
    await lab.lab.exec(h.ns, 'ip', ['route', 'del', victim!, 'proto', 'static']);
    await until('owned route back', async () => (await peerRoutes(lab, h)).includes(victim!), 3000, 50);
    await until('conflict cleared', async () => /^trellis_route_conflicts 0$/m.test(await metric()), 3000, 50);
  });

  t.test('SIGKILL: peers remove the routes within hold time + 1 s; restarted, they return', async (t) => {
    const victim = lab.hosts[4]!; // h2-1
    const watchers = peersOf(victim);
    const before = await Promise.all(watchers.map((w) => peerRoutes(lab, w)));
    victim.daemon.kill();
    const killedAt = Date.now();
    await until('routes gone from both peers', async () => (await Promise.all(watchers.map((w) => peerRoutes(lab, w)))).every((r) => r.length === 1), 8000);
    const took = Date.now() - killedAt;
    t.ok(took <= 4000, `gone ${took} ms after SIGKILL (hold time 3 s)`);
    await victim.daemon.start();
    await until('routes back', async () => JSON.stringify(await Promise.all(watchers.map((w) => peerRoutes(lab, w)))) === JSON.stringify(before));
    t.pass('routes returned after restart');
  });

  t.test('restarting a trellisd in a loop loses no ping to its pod', async (t) => {
    const target = lab.hosts[6]!; // h3-0
    const from = lab.hosts[7]!;
    const pinging = lab.ping(pods.get(from.name)!.ns, pods.get(target.name)!.address, { count: 120, intervalMs: 50 });
    for (let i = 0; i < 4; i++) {
      await target.daemon.stop();
      await target.daemon.start();
    }
    const r = await pinging;
    t.equal(r.received, r.sent, `${r.received}/${r.sent} replies across 4 restarts`);
    t.ok(r.sent >= 100);
  });

  t.test('etcd stopped for 20 s: no route removed; afterwards a new peer appears', async (t) => {
    const snapshot = async (): Promise<string[][]> => Promise.all(lab.hosts.map((h) => peerRoutes(lab, h)));
    const newcomer = lab.hosts[8]!; // h3-2: out of the cluster during the outage, joins after it
    const peers = peersOf(newcomer);
    await newcomer.daemon.stop();
    await until('newcomer withdrawn', async () => (await Promise.all(peers.map((p) => peerRoutes(lab, p)))).every((r) => r.length === 1), 8000);
    const before = await snapshot();
    await lab.etcd.stop();
    for (let i = 0; i < 10; i++) {
      await delay(2000);
      t.same(await snapshot(), before, `no route removed ${2 * (i + 1)} s into the outage`);
    }
    await lab.etcd.start();
    await newcomer.daemon.start();
    const want = (await blocksByHost(lab)).get(newcomer.name) ?? [];
    t.ok(want.length > 0, 'the newcomer holds blocks');
    for (const p of peers) {
      const took = await until(`${p.name} routes the newcomer`, async () => (await peerRoutes(lab, p)).length === 2, 15_000);
      t.pass(`${p.name} routes the newcomer ${took} ms after it started`);
    }
    const a = await lab.ping(pods.get(peers[0]!.name)!.ns, pods.get(newcomer.name)!.address, { count: 1 });
    t.equal(a.received, 1, 'and its pod is reachable');
  });
});
