// How the route agent reconciles, on a lab of one subnet with three hosts
// (A = h1-0, B = h1-1, C = h1-2), etcd in the router and one trellisd each:
//  * across a restart the kernel's routes are reconciled, never flushed: a
//    route that is still wanted (C's) stays in A's kernel while A is down and
//    while it starts, and only the stale one (B's, whose advertisement expired
//    while A was down) goes, in A's first full sync;
//  * the periodic full resync runs on its own (C runs with a 1 s interval):
//    passes are counted while etcd does not change at all;
//  * a burst of 200 advertisement writes (and then 200 deletes) from fake
//    peers is coalesced into far fewer reconcile passes, and every route
//    arrives (and goes).
// Also: a pass that waits for the view from etcd (at start) is not counted as
// a failed pass in trellis_reconcile_passes_total.
// No mocks: real etcd, real trellisd processes, real kernel routes.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { buildClusterLab, type ClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { needRoot } from '../../lab/netns.js';
import { intoNamespace } from '../../lab/ns-forward.js';
import { delay, stopChild, until } from '../../lab/pids.js';
import { Daemon } from '../../lab/trellis.js';

const skip = needRoot();
const run = promisify(execFile);
const SUBNET = 'subnet-1';
/** A destination only used to prove that a route monitor is listening. */
const MONITOR_PROBE = '100.127.255.255/32';


/** `ip -n <ns> -4 route show proto 84`, one line per route. */
async function proto84(h: LabHost): Promise<string[]> {
  const { stdout } = await run('ip', ['-n', h.ns.name, '-4', 'route', 'show', 'proto', '84']);
  return stdout.split('\n').filter((l) => l.trim() !== '');
}

/** Destinations of the routes via `gateway` in `h`'s kernel (protocol 84). */
async function routesVia(lab: ClusterLab, h: LabHost, gateway: string): Promise<string[]> {
  return (await lab.kernelRoutes(h, { protocol: 84 })).filter((r) => r.gateway === gateway).map((r) => r.dst).sort();
}

async function scrape(lab: ClusterLab, h: LabHost): Promise<string> {
  return lab.lab.exec(h.ns, 'curl', ['-s', 'http://127.0.0.1:9653/metrics']);
}

/** Sum of every sample of `name` (all label sets) in a scrape. */
function sum(metrics: string, name: string): number {
  let total = 0;
  for (const m of metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(m[1]);
  return total;
}

/** Reconcile passes run so far by `h`'s agent (every result). */
async function passes(lab: ClusterLab, h: LabHost): Promise<number> {
  return sum(await scrape(lab, h), 'trellis_reconcile_passes_total');
}

/** Waits until `h`'s pass counter stops moving for `quietMs`; returns it. */
async function settledPasses(lab: ClusterLab, h: LabHost, quietMs = 600): Promise<number> {
  let last = await passes(lab, h);
  for (let i = 0; i < 50; i++) {
    await delay(quietMs);
    const now = await passes(lab, h);
    if (now === last) return now;
    last = now;
  }
  throw new Error(`${h.name}: reconcile passes never settled`);
}

async function etcdRevision(lab: ClusterLab): Promise<number> {
  const out = JSON.parse(await lab.etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { header: { revision: number } } }>;
  return Number(out[0]!.Status.header.revision);
}

function ipv4(text: string): number {
  return text.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

function dotted(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

t.test('route agent reconciliation', { skip }, async (t) => {
  const lab = await buildClusterLab(t, {
    subnets: 1,
    hostsPerSubnet: 3,
    holdTime: '3s',
    subnetSize: 17, // 512 /26 blocks in subnet-1: room for the 200 fake peers
    // The 200 fake peers withdraw at once, which damping would hold as an etcd-side event: off here.
    extraDaemonArgs: ['--routes-mass-withdraw-grace', '0s'],
    makeDaemon: (o) => new Daemon(o.nodeName === 'h1-2' ? { ...o, args: [...(o.args ?? []), '--routes-resync-interval', '1s'] } : o),
  });
  const [A, B, C] = lab.hosts as [LabHost, LabHost, LabHost];
  await lab.startDaemons();
  const ready = async (h: LabHost): Promise<boolean> =>
    (await lab.lab.exec(h.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9653/readyz']).catch(() => '')) === '200';

  t.test('after a restart, only the stale routes go: wanted ones are never flushed', async (t) => {
    const blocksB = (await lab.blocksOf(B)).map((b) => b.prefix).sort();
    const blocksC = (await lab.blocksOf(C)).map((b) => b.prefix).sort();
    t.ok(blocksB.length > 0 && blocksC.length > 0, 'B and C hold blocks');
    await until('A routes to B and C', async () =>
      JSON.stringify(await routesVia(lab, A, B.hostIP)) === JSON.stringify(blocksB) &&
      JSON.stringify(await routesVia(lab, A, C.hostIP)) === JSON.stringify(blocksC));
    for (const h of lab.hosts) {
      const m = await scrape(lab, h);
      t.equal(sum(m, 'trellis_reconcile_passes_total\\{result="error"\\}'), 0, `${h.name}: no failed pass counted at start (a pass waiting for the view is not an error)`);
    }
    const pod = await lab.addPod(A); // its /32 (proto 84, CNI's) must survive too
    const own = (await lab.kernelRoutes(A, { protocol: 84 })).filter((r) => r.type === 'unreachable').map((r) => r.dst);
    t.ok(own.length > 0, 'A has unreachable routes for its own blocks');

    // Every route change in A's kernel, from before the stop until after the first full sync.
    const monitor = lab.lab.spawn(A.ns, 'ip', ['-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let monitored = '';
    monitor.stdout!.setEncoding('utf8').on('data', (d: string) => (monitored += d));
    await until('route monitor listening', async () => {
      await lab.lab.exec(A.ns, 'ip', ['route', 'replace', 'blackhole', MONITOR_PROBE]);
      await lab.lab.exec(A.ns, 'ip', ['route', 'del', 'blackhole', MONITOR_PROBE]);
      return monitored.includes(`blackhole ${MONITOR_PROBE.replace('/32', '')}`);
    });

    // Sample `ip -n A route show proto 84` all along.
    const has = (lines: string[], dst: string, via?: string): boolean =>
      lines.some((l) => l.startsWith(`${dst} `) && (via === undefined || l.includes(`via ${via} `)));
    const samples = { n: 0, missingC: 0, missingPod: 0, missingOwn: 0, missingBWhileDown: 0 };
    let aDown = false;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const lines = await proto84(A);
        samples.n++;
        if (!blocksC.every((b) => has(lines, b, C.hostIP))) samples.missingC++;
        if (!has(lines, pod.address)) samples.missingPod++;
        if (!own.every((b) => lines.some((l) => l.startsWith(`unreachable ${b} `)))) samples.missingOwn++;
        if (aDown && !blocksB.every((b) => has(lines, b, B.hostIP))) samples.missingBWhileDown++;
        await delay(10);
      }
    })();

    const logFrom = A.daemon.logs.length;
    aDown = true;
    await A.daemon.stop(); // SIGTERM
    await B.daemon.stop(); // for good: its lease expires after the hold time
    const waitedB = await until('B advertisement gone from etcd', async () =>
      !(await lab.getPrefix(lab.keys.routesPrefix(SUBNET))).some((kv) => kv.key === lab.keys.route(SUBNET, B.name)), 15_000, 100);
    t.pass(`B's advertisement expired ${waitedB} ms after B stopped`);
    t.same(await routesVia(lab, A, B.hostIP), blocksB, "A is down: B's stale routes are still in its kernel");

    const startedAt = Date.now();
    aDown = false;
    const startA = A.daemon.start();
    await until('A ready (first full sync done)', () => ready(A), 30_000, 5);
    const readyMs = Date.now() - startedAt;
    const atReady = await proto84(A);
    t.notOk(blocksB.some((b) => has(atReady, b)), `B's routes are gone once A's first full sync is done (${readyMs} ms after start)`);
    t.ok(blocksC.every((b) => has(atReady, b, C.hostIP)), "C's routes are there");
    await startA;
    await delay(1500); // keep sampling after the first sync
    sampling = false;
    await sampler;
    await stopChild(monitor);

    t.ok(samples.n > 50, `${samples.n} samples of A's proto 84 routes during the restart`);
    t.equal(samples.missingC, 0, "C's routes were in A's kernel in every sample");
    t.equal(samples.missingPod, 0, "the pod's /32 was in every sample");
    t.equal(samples.missingOwn, 0, "A's own unreachable routes were in every sample");
    t.equal(samples.missingBWhileDown, 0, "B's routes stayed in every sample while A was down");
    const deleted = monitored.split('\n').filter((l) => l.startsWith('Deleted '));
    t.same(
      deleted.filter((l) => !l.includes(MONITOR_PROBE.replace('/32', ''))).map((l) => l.split(' ')[1]).sort(),
      blocksB,
      "the only routes A's kernel lost are B's (none of C's, the pod's or A's own, not even briefly)",
    );
    const changes = A.daemon.logs
      .slice(logFrom)
      .split('\n')
      .filter((l) => l.includes('"routes reconciled"'))
      .map((l) => JSON.parse(l) as { added: number; replaced: number; removed: number });
    t.equal(changes.length, 1, 'after the restart A changed its routes in one pass');
    t.match(changes[0], { added: 0, replaced: 0, removed: blocksB.length }, "that pass removed B's routes and added or replaced nothing");
    const metrics = await scrape(lab, A);
    t.equal(Number(/^trellis_route_changes_total\{op="remove"\} (\d+)$/m.exec(metrics)?.[1]), blocksB.length, 'A counted exactly the stale removals');
    t.equal(Number(/^trellis_route_changes_total\{op="add"\} (\d+)$/m.exec(metrics)?.[1] ?? 0), 0, 'and added nothing: the routes it wanted were already there');
    t.equal(sum(metrics, 'trellis_reconcile_passes_total\\{result="error"\\}'), 0, 'no failed pass counted across the restart');
  });

  t.test('the periodic full resync runs with no change in etcd', async (t) => {
    await settledPasses(lab, A);
    const rev = await etcdRevision(lab);
    const [c0, a0] = [await passes(lab, C), await passes(lab, A)];
    await delay(5000);
    const [c1, a1] = [await passes(lab, C), await passes(lab, A)];
    t.equal(await etcdRevision(lab), rev, `etcd unchanged during the window (revision ${rev})`);
    t.ok(c1 - c0 >= 3, `C (resync interval 1 s): ${c1 - c0} passes in 5 s`);
    t.ok(c1 - c0 <= 7, 'about one per second, not a busy loop');
    t.equal(a1 - a0, 0, 'A (default interval 30 s): no pass in the same 5 s');
    const age = Date.now() / 1000 - sum(await scrape(lab, C), 'trellis_last_full_sync_timestamp_seconds');
    t.ok(age >= 0 && age < 1.5, `C's last full sync ${age.toFixed(2)} s ago`);
  });

  t.test('a burst of 200 advertisement writes is coalesced into few passes', async (t) => {
    const N = 200;
    const fwd = await intoNamespace(t, lab.router.name, '198.18.1.1', lab.etcd.clientPort);
    const client = new Etcd3({ hosts: `http://127.0.0.1:${fwd.port}` });
    t.teardown(() => client.close());

    // N fake peers, each with one /26 of subnet-1's pod prefix outside the agents' homes.
    const { blockSize, nodeHomeSize } = lab.topology;
    const podPrefix = lab.topology.zones[0]!.subnets[0]!.podPrefix;
    const homeSpan = 2 ** (32 - nodeHomeSize);
    const homes = new Set((await lab.blocksOf()).map((b) => Math.floor(ipv4(b.prefix.split('/')[0]!) / homeSpan)));
    const peers: Array<{ node: string; prefix: string; nextHop: string }> = [];
    for (let a = Number(podPrefix.addr); peers.length < N; a += 2 ** (32 - blockSize)) {
      if (a >= Number(podPrefix.addr) + 2 ** (32 - podPrefix.len)) throw new Error('pod prefix too small');
      if (!homes.has(Math.floor(a / homeSpan))) {
        const k = peers.length;
        peers.push({ node: `fake-${k}`, prefix: `${dotted(a)}/${blockSize}`, nextHop: `198.18.1.${20 + k}` });
      }
    }
    const advert = (p: (typeof peers)[number]): string =>
      JSON.stringify({ schemaVersion: 1, node: p.node, subnet: SUBNET, nextHop: p.nextHop, prefixes: [p.prefix] });
    const fakeRoutes = async (h: LabHost): Promise<number> => {
      const want = new Map(peers.map((p) => [p.prefix, p.nextHop]));
      return (await lab.kernelRoutes(h, { protocol: 84 })).filter((r) => r.gateway !== undefined && want.get(r.dst) === r.gateway).length;
    };

    // Block claims first (an advertisement is only accepted for blocks its node owns).
    const claimedAt = new Date().toISOString();
    await Promise.all(
      peers.map((p) => client.put(lab.keys.block(p.prefix)).value(JSON.stringify({ schemaVersion: 1, prefix: p.prefix, subnet: SUBNET, node: p.node, claimedAt }))),
    );
    // Node records under one lease, which the advertisements share (peers accept an advertisement only
    // under its node record's lease, with that record's host IP as next hop).
    const lease = client.lease(60, { autoKeepAlive: false });
    const leaseId = await lease.grant();
    t.teardown(() => lease.revoke().catch(() => undefined));
    await Promise.all(peers.map((p) => client.put(lab.keys.node(p.node)).value(JSON.stringify({ schemaVersion: 1, name: p.node, subnet: SUBNET, hostIp: p.nextHop })).lease(leaseId)));
    const before = await settledPasses(lab, A);
    const rev0 = await etcdRevision(lab);
    const writeStart = Date.now();
    await Promise.all(peers.map((p) => client.put(lab.keys.route(SUBNET, p.node)).value(advert(p)).lease(leaseId)));
    const rev1 = await etcdRevision(lab);
    t.equal(rev1 - rev0, N, `${N} separate etcd revisions written in ${Date.now() - writeStart} ms`);
    const took = await until(`all ${N} fake routes in A`, async () => (await fakeRoutes(A)) === N, 20_000, 20);
    await until(`all ${N} fake routes in C`, async () => (await fakeRoutes(C)) === N, 20_000, 20);
    const added = (await settledPasses(lab, A)) - before;
    t.pass(`all ${N} routes in A ${took} ms after the writes began`);
    t.ok(added >= 1, `A ran ${added} passes for ${N} advertisement writes`);
    t.ok(added < N / 4, `${added} passes < ${N / 4}: the burst was coalesced`);

    // And the same for N single deletes.
    const before2 = await passes(lab, A);
    await Promise.all(peers.map((p) => client.delete().key(lab.keys.route(SUBNET, p.node))));
    t.equal((await etcdRevision(lab)) - rev1, N, `${N} separate deletes`);
    await until(`fake routes gone from A`, async () => (await fakeRoutes(A)) === 0, 20_000, 20);
    const removed = (await settledPasses(lab, A)) - before2;
    t.ok(removed < N / 4, `${removed} passes for ${N} deletes: coalesced`);
    t.same(await routesVia(lab, A, C.hostIP), (await lab.blocksOf(C)).map((b) => b.prefix), "C's routes untouched");
    await Promise.all(peers.map((p) => client.delete().key(lab.keys.block(p.prefix))));
    await lease.revoke();
  });
});
