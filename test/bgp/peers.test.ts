// Several peers of one speaker, against BIRD: a cluster lab of two subnets of
// three hosts, every host peering with five BIRD protocols of its subnet's
// router (198.18.<i>.1–5; .1 is the lab's main BIRD, the others are BIRDs of
// their own, see lab/bgp-lab.ts):
//   full  .1  maxPrefixes=100                 (one prefix per node)
//   small .2  maxPrefixes=2, TCP-MD5 password  (one aggregate per subnet)
//   multi .3  maxPrefixes=2 multipath=3        (ADD-PATH: three next hops per aggregate)
//   pw    .4  the wrong password               (never established)
//   asn   .5  the wrong peer ASN               (never established)
// Checks: each good peer's table in BIRD holds exactly that peer's plan
// (src/core/bgp-plan.ts over the blocks in etcd), never more than its limit;
// the multipath peer holds three next hops per aggregate and the router's
// kernel route of each aggregate has them all; the wrong password and the
// wrong ASN are reported (metric, /readyz detail, `trellisctl bgp status`)
// while the other sessions of the same speaker stay up with their prefixes;
// the passwords appear in no log, status, metric or CLI output.
import t from 'tap';
import { needRoot } from '../../lab/netns.js';
import { until } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';
import { buildBgpLab, plannedRoutes, ROUTER_ASN, type BgpLab } from '../../lab/bgp-lab.js';

const skip = needRoot();
const RIGHT = 'right-secret-7Qx';
const WRONG = 'wrong-secret-9Zk';

const table = (lab: BgpLab, name: string): Promise<Array<{ prefix: string; nextHops: string[] }>> => (name === 'full' ? lab.routes() : lab.routes(name));

t.test('per-peer plans, ADD-PATH, and a wrong password or ASN beside good peers', { skip }, async (t) => {
  const lab = await buildBgpLab(t, {
    subnets: 2,
    hostsPerSubnet: 3,
    routerPeers: [
      { name: 'small', octet: 2, password: RIGHT },
      { name: 'multi', octet: 3, addPaths: true },
      { name: 'pw', octet: 4, password: 'another-secret' },
      { name: 'asn', octet: 5 },
    ],
    peers: (i) => [
      `198.18.${i}.1 asn=${ROUTER_ASN} maxPrefixes=100 holdTime=6s`,
      `198.18.${i}.2 asn=${ROUTER_ASN} maxPrefixes=2 holdTime=6s password=${RIGHT}`,
      `198.18.${i}.3 asn=${ROUTER_ASN} maxPrefixes=2 holdTime=6s multipath=3`,
      `198.18.${i}.4 asn=${ROUTER_ASN} maxPrefixes=100 holdTime=6s password=${WRONG}`,
      `198.18.${i}.5 asn=65099 maxPrefixes=100 holdTime=6s`,
    ],
  });
  await lab.cluster.startDaemons(undefined, undefined, 60_000);

  // 6 hosts × 3 good peers.
  const established = async (): Promise<number[]> => [await lab.establishedSessions(), await lab.establishedOf('small'), await lab.establishedOf('multi')];
  await until('18 sessions established', async () => (await established()).every((n) => n === 6), 120_000, 500).catch(() => undefined);
  t.same(await established(), [6, 6, 6], 'every host keeps a session with each good peer');
  for (const name of ['pw', 'asn']) {
    t.notOk((await lab.sessions(name)).includes('Established'), `BIRD's ${name} never establishes`);
  }

  const full = await plannedRoutes(lab, 100);
  const small = await plannedRoutes(lab, 2);
  const multi = await plannedRoutes(lab, 2, { multipath: 3 });
  t.equal(full.length, 6, 'limit 100: one prefix per node');
  t.equal(small.length, 2, 'limit 2: one aggregate per subnet');
  t.ok(multi.every((r) => r.nextHops.length === 3), 'multipath 3: every owner of an aggregate is a next hop');
  await until('every table equal to its plan', async () =>
    JSON.stringify([await table(lab, 'full'), await table(lab, 'small'), await table(lab, 'multi')]) === JSON.stringify([full, small, multi]),
    120_000, 500).catch(() => undefined);
  t.same(await table(lab, 'full'), full, 'the peer with limit 100 holds exactly its plan');
  t.same(await table(lab, 'small'), small, 'the peer with limit 2 (and a password) holds exactly its 2 aggregates, one next hop each');
  t.same(await table(lab, 'multi'), multi, 'the ADD-PATH peer holds its 2 aggregates with 3 next hops each');
  for (const r of multi) {
    t.same(await lab.kernelNextHops('multi', r.prefix), r.nextHops, `the router's kernel route of ${r.prefix} has the three next hops`);
  }
  const pods = await Promise.all(lab.cluster.hosts.map((h) => lab.cluster.addPod(h)));
  for (const pod of pods) t.equal((await lab.cluster.ping(lab.client, pod.address, { count: 2 })).received, 2, `outside client → ${pod.address}`);

  // Reporting, on a host of each subnet (exporter or not: every host has the sessions).
  for (const host of [lab.cluster.host('h1-0'), lab.cluster.host('h2-1')]) {
    const i = host.subnet === 'subnet-1' ? 1 : 2;
    const ready = await lab.http(host, '/readyz');
    t.equal(ready.status, 200, `${host.name}: bad peers leave the node ready`);
    t.match(ready.body, new RegExp(`bgp peer 198\\.18\\.${i}\\.4 \\(AS ${ROUTER_ASN}\\): session (active|idle|connect|opensent)`), `${host.name}: /readyz names the peer with the wrong password`);
    t.match(ready.body, new RegExp(`bgp peer 198\\.18\\.${i}\\.5 \\(AS 65099\\): session (active|idle|connect|opensent)`), `${host.name}: /readyz names the peer with the wrong ASN`);
    t.notMatch(ready.body, new RegExp(`198\\.18\\.${i}\\.[123] `), `${host.name}: the good peers are not in /readyz`);
    const metrics = (await lab.http(host, '/metrics')).body;
    for (const [octet, up] of [[1, 1], [2, 1], [3, 1], [4, 0], [5, 0]] as const) {
      t.match(metrics, new RegExp(`trellis_bgp_peer_up\\{peer="198\\.18\\.${i}\\.${octet}"\\} ${up}\\n`), `${host.name}: trellis_bgp_peer_up of .${octet} is ${up}`);
    }
    const cli = await lab.cluster.lab.exec(host.ns, process.execPath, [bin('src/cli/trellisctl'), 'bgp', 'status', '--endpoint', '127.0.0.1:9653']);
    t.match(cli, new RegExp(`198\\.18\\.${i}\\.4\\s+${ROUTER_ASN}\\s+(active|idle|connect|opensent)`), `${host.name}: trellisctl bgp status shows the password peer down`);
    t.match(cli, new RegExp(`198\\.18\\.${i}\\.5\\s+65099\\s+(active|idle|connect|opensent)`), `${host.name}: trellisctl bgp status shows the ASN peer down`);
    t.match(cli, new RegExp(`198\\.18\\.${i}\\.1\\s+${ROUTER_ASN}\\s+established`), `${host.name}: and the good peer established`);
    const json = await lab.cluster.lab.exec(host.ns, process.execPath, [bin('src/cli/trellisctl'), 'bgp', 'status', '--endpoint', '127.0.0.1:9653', '-o', 'json']);
    const doc = JSON.parse(json) as { peers: Array<{ address: string; flops: number; maxPrefixes: number; used: number }> };
    const good = doc.peers.find((p) => p.address === `198.18.${i}.1`);
    t.equal(good?.flops, 0, `${host.name}: the good session never flapped`);
    t.same(doc.peers.map((p) => p.maxPrefixes), [100, 2, 2, 100, 100], `${host.name}: each peer's own limit`);
    const exporter = lab.cluster.host((await lab.exporterOf(host.subnet)) as string);
    const exported = JSON.parse((await lab.http(exporter, '/bgp')).body) as typeof doc;
    t.same(exported.peers.map((p) => p.used), [6, 2, 2, 6, 6], `${exporter.name} (exporter of ${host.subnet}): prefixes the cluster sends each peer, within its limit`);
    for (const text of [ready.body, metrics, cli, json, (await lab.http(host, '/bgp')).body]) {
      t.notOk(text.includes(WRONG) || text.includes(RIGHT), `${host.name}: no password in status output`);
    }
  }
  for (const h of lab.cluster.hosts) {
    t.notOk(h.daemon.logs.includes(WRONG) || h.daemon.logs.includes(RIGHT), `${h.name}: no password in trellisd's log (${h.daemon.logs.length} bytes)`);
  }
});
