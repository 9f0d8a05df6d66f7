// BGP export end to end: a cluster lab of four subnets of two hosts, BIRD in
// the router namespace as the upstream router, an outside client behind it.
// Subnets 1–3 peer correctly; subnet 4's hosts are configured with a wrong
// peer ASN. Checks, in order, on one lab:
//   1. sessions of subnets 1–3 establish (one per host: followers keep theirs up);
//   2. BIRD's table holds exactly the planned prefixes (src/core/bgp-plan.ts
//      over the blocks in etcd), each via its planned next hop;
//   3. the outside client reaches a pod in each of subnets 1–3;
//   4. subnet 4: /readyz stays 200 and names the peer whose session is down,
//      trellis_bgp_peer_up is 0, GET /bgp shows the session; its pods still
//      answer from inside the cluster;
//   5. with a limit of 3 prefixes (a second lab), BIRD holds exactly 3
//      aggregates, one per subnet, and the client still reaches every pod.
import t from 'tap';
import { needRoot } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { buildBgpLab, plannedRoutes, type BgpLab } from '../../lab/bgp-lab.js';

const skip = needRoot();

/** BIRD's table as prefix → next hops, equal to the plan (waits for convergence, bounded). */
async function converged(lab: BgpLab, want: () => Promise<Array<{ prefix: string; nextHops: string[] }>>): Promise<void> {
  await until('BIRD table equal to the plan', async () => JSON.stringify(await lab.routes()) === JSON.stringify(await want()), 90_000, 500).catch(() => undefined);
}

t.test('BGP exporters and BIRD', { skip }, async (t) => {
  const lab = await buildBgpLab(t, { subnets: 4, hostsPerSubnet: 2, peerOverride: (i) => (i === 4 ? '198.18.4.1 asn=65099 holdTime=6s' : undefined) });
  await lab.cluster.startDaemons(undefined, undefined, 60_000);
  const good = ['subnet-1', 'subnet-2', 'subnet-3'];

  await until('6 sessions established', async () => (await lab.establishedSessions()) >= 6, 90_000, 500).catch(() => undefined);
  t.equal(await lab.establishedSessions(), 6, 'one session per host of subnets 1–3, none from subnet 4');

  await converged(lab, () => plannedRoutes(lab, 100, { subnets: good }));
  const want = await plannedRoutes(lab, 100, { subnets: good });
  t.equal(want.length, 6, 'one prefix per node of subnets 1–3 (the limit allows it)');
  t.same(await lab.routes(), want, "BIRD's table holds exactly the planned prefixes and next hops");

  const pods = await Promise.all(lab.cluster.hosts.map((h) => lab.cluster.addPod(h)));
  for (const pod of pods.filter((p) => good.includes(p.host.subnet))) {
    const r = await lab.cluster.ping(lab.client, pod.address, { count: 3, intervalMs: 200 });
    t.equal(r.received, 3, `outside client → pod ${pod.address} on ${pod.host.name}`);
  }
  t.equal((await lab.cluster.ping(lab.client, pods.find((p) => p.host.subnet === 'subnet-4')!.address, { count: 2 })).received, 0,
    'subnet 4 is not reachable from outside: its routes were never accepted');

  const bad = lab.cluster.host('h4-0');
  const ready = await lab.http(bad, '/readyz');
  t.equal(ready.status, 200, 'a peer that refuses us leaves the node ready');
  t.match(ready.body, /bgp peer 198\.18\.4\.1 \(AS 65099\): session (active|idle|connect|opensent)/, '/readyz names the peer and its state');
  const metrics = await lab.http(bad, '/metrics');
  t.match(metrics.body, /trellis_bgp_peer_up\{peer="198\.18\.4\.1"\} 0/);
  const status = JSON.parse((await lab.http(bad, '/bgp')).body) as { peers: Array<{ address: string; state: string }> };
  t.equal(status.peers[0]?.address, '198.18.4.1');
  t.not(status.peers[0]?.state, 'established');
  const inside = await lab.cluster.ping(lab.cluster.host('h4-1'), pods.find((p) => p.host.name === 'h4-0')!.address, { count: 3 });
  t.equal(inside.received, 3, "a pod on h4-0 still answers from h4-1 (the subnet's own routes are untouched)");
  const goodReady = await lab.http(lab.cluster.host('h1-0'), '/readyz');
  t.equal(goodReady.body, 'ready\n', 'no detail where every session is up');
});

t.test('a limit of 3 prefixes with 3 subnets: 3 aggregates, every pod reachable', { skip }, async (t) => {
  const lab = await buildBgpLab(t, { subnets: 3, hostsPerSubnet: 2, maxPrefixes: 3 });
  await lab.cluster.startDaemons(undefined, undefined, 60_000);
  const all = ['subnet-1', 'subnet-2', 'subnet-3'];
  await converged(lab, () => plannedRoutes(lab, 3, { subnets: all }));
  const routes = await lab.routes();
  t.equal(routes.length, 3, 'exactly 3 prefixes');
  t.same(routes, await plannedRoutes(lab, 3, { subnets: all }), 'the planned aggregates');
  for (const h of lab.cluster.hosts) {
    const pod = await lab.cluster.addPod(h);
    t.equal((await lab.cluster.ping(lab.client, pod.address, { count: 3 })).received, 3, `outside client → ${pod.address} on ${h.name}`);
  }
  t.ok((await lab.routes()).every((r) => r.nextHops.length === 1), 'one next hop per aggregate');
});
