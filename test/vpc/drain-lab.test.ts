// Drain and uncordon end to end (docs/lifecycle.md, "Drain and uncordon"): a
// 2 × 3 VPC lab (etcd and moto in the router, which forwards between the
// subnets as the route tables in moto say: examples/demo/vpc-router.ts), a pod
// on every host of subnet-1 and a pod on subnet-2 pinging them every 100 ms.
//   1. limit 3 (with the local route: one entry per subnet and table): the
//      forwarder of subnet-1's aggregate, made its elected advertiser, is
//      drained with `trellisctl node drain` from a host of subnet-2: it hands
//      the advertiser role over, the aggregate moves to another host of
//      subnet-1, and no echo to any pod of subnet-1 goes unanswered; `trellisctl
//      nodes` says draining; uncordon makes it a candidate again.
//   2. limit 50 (one entry per node): a node owning its entries is drained: its
//      entries keep their destination and target another host of its subnet,
//      every echo to its pod answered; uncordon gives them back to it.
import t, { type Test } from 'tap';
import { contains, parsePrefix } from '../../src/core/cidr.js';
import type { LabHost } from '../../lab/cluster-lab.js';
import { needMoto } from '../../lab/moto.js';
import { needRoot, type Netns, type NsRef, type Lab } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';
import { buildVpcLab, until, type VpcLab } from '../../lab/vpc-lab.js';
import { addPod, type DemoPod } from '../../examples/demo/pods.js';
import { VpcRouter } from '../../examples/demo/vpc-router.js';

const skip = needRoot() || needMoto();

/**
 * A ping every 100 ms; `gaps()` lists the echo requests that got no answer
 * although a later one did (an echo still in flight at the end is no gap).
 */
class SeqPing {
  private out = '';
  private readonly child;
  constructor(lab: Lab, ns: NsRef, readonly to: string) {
    this.child = lab.spawn(ns, 'ping', ['-n', '-i', '0.1', '-W', '2', to], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
  }
  answered(): number[] {
    return [...this.out.matchAll(/icmp_seq=(\d+) /g)].map((m) => Number(m[1]));
  }
  last(): number {
    return Math.max(0, ...this.answered());
  }
  gaps(): number[] {
    const got = new Set(this.answered());
    const out: number[] = [];
    for (let s = 1; s < this.last(); s++) if (!got.has(s)) out.push(s);
    return out;
  }
  stop(): void {
    this.child.kill('SIGINT');
  }
}

async function ctl(v: VpcLab, from: LabHost, args: string[]): Promise<string> {
  return v.lab.lab.exec(from.ns, process.execPath, [bin('src/cli/trellisctl'), ...args, '--etcd', v.lab.endpoint]);
}

/** Subnet-1's instance entries: table → destination → target instance. */
async function entriesOf(v: VpcLab, hosts: readonly LabHost[]): Promise<Array<{ table: string; destination: string; target: string }>> {
  const ids = new Set(hosts.map((h) => v.instances.get(h.name)));
  return [...(await v.entries())].flatMap(([table, list]) => list.filter((e) => ids.has(e.target)).map((e) => ({ table, destination: e.destination, target: e.target })));
}

/** Every block of `hosts` covered in every table by an entry to one of `targets`. */
async function coveredBy(v: VpcLab, hosts: readonly LabHost[], targets: readonly LabHost[]): Promise<boolean> {
  const blocks = (await v.lab.blocksOf()).filter((b) => hosts.some((h) => h.name === b.node));
  const ids = new Set(targets.map((h) => v.instances.get(h.name)));
  for (const [, list] of await v.entries()) {
    for (const b of blocks) {
      const e = list.filter((r) => r.instance && contains(parsePrefix(r.destination), parsePrefix(b.prefix))).sort((x, y) => parsePrefix(y.destination).len - parsePrefix(x.destination).len)[0];
      if (e === undefined || !ids.has(e.target)) return false;
    }
  }
  return blocks.length > 0;
}

/** Names of the candidates of the subnet's advertiser election, in order. */
async function candidates(v: VpcLab, subnet: string): Promise<Array<{ key: string; node: string }>> {
  const listed = JSON.parse(await v.lab.etcdctl(['get', '--prefix', `${v.lab.keys.root}/advertisers/${subnet}/`, '-w', 'json'])) as { kvs?: Array<{ key: string; value: string; create_revision: number }> };
  return (listed.kvs ?? []).sort((a, b) => a.create_revision - b.create_revision).map((kv) => ({ key: Buffer.from(kv.key, 'base64').toString(), node: Buffer.from(kv.value, 'base64').toString() }));
}

/** Makes `host` the subnet's advertiser: the candidates ahead of it lose their place. */
async function makeLeader(v: VpcLab, subnet: string, host: LabHost): Promise<void> {
  for (let round = 0; (await v.statusOf(subnet))?.leader !== host.name; round++) {
    if (round > 20) throw new Error(`${host.name} did not become the advertiser of ${subnet}`);
    const order = await candidates(v, subnet);
    const mine = order.findIndex((c) => c.node === host.name);
    for (const c of order.slice(0, Math.max(0, mine))) await v.lab.etcdctl(['del', c.key]);
    await delay(500);
  }
}

/** Pings from `source` to each pod while `during` runs, then until each answered `after` more; asserts no echo went unanswered. */
async function pingThrough(t: Test, v: VpcLab, source: DemoPod, pods: readonly DemoPod[], during: () => Promise<void>): Promise<void> {
  const pings = pods.map((p) => new SeqPing(v.lab.lab, source.ns, p.address));
  try {
    await until('every pod answers the pings', () => pings.every((p) => p.last() >= 5), 20_000, 100);
    await during();
    const marks = pings.map((p) => p.last());
    await until('ten more echoes answered after the move', () => pings.every((p, i) => p.last() >= (marks[i] as number) + 10), 30_000, 100);
  } finally {
    for (const p of pings) p.stop();
  }
  pings.forEach((p, i) => t.same(p.gaps(), [], `${pods[i]?.name} (${p.to}): all ${p.last()} echoes answered through the move`));
}

t.test('drain and uncordon in a 2 × 3 VPC lab', { skip, timeout: 300_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 2, hostsPerSubnet: 3, gatewayRoutes: false });
  const [s1, s2] = [...v.tables.keys()] as [string, string];
  const router = new VpcRouter({
    lab: v.lab.lab,
    router: v.lab.router as Netns,
    ec2: v.ec2,
    tables: [s1, s2].map((s, i) => ({ id: v.tables.get(s) as string, bridge: `br${i + 1}` })),
    instances: new Map(v.hosts.map((h) => [v.instances.get(h.name) as string, { ip: h.hostIP, bridge: `br${h.subnet === s1 ? 1 : 2}` }])),
    interfaces: v.interfaces,
    network: v.lab.topology.network,
    intervalMs: 200,
  });
  await router.start();
  t.teardown(() => router.stop());
  const ones = v.hostsOf(s1);
  const from = v.hostsOf(s2)[0] as LabHost;
  const args = (limit: number): string[] => ['--vpc-route-limit', String(limit), '--vpc-recover-after', '2s', '--vpc-verify-interval', '3s'];

  await v.start(v.hosts, args(3));
  await until('one entry per subnet and table, covering every block', async () => (await entriesOf(v, v.hosts)).length === 4 && (await coveredBy(v, ones, ones)), 60_000, 200);
  const pods: DemoPod[] = [];
  for (const h of ones) pods.push(await addPod(v, h, 0));
  const source = await addPod(v, from, 0);

  await t.test('the forwarder of an aggregate, elected advertiser, drained: role and entries move, no echo lost', async (t) => {
    const [agg] = await entriesOf(v, ones);
    const forwarder = v.hostOfInstance(agg?.target ?? '') as LabHost;
    const owned = (await v.lab.blocksOf()).filter((b) => b.subnet === s1);
    t.ok(owned.filter((b) => contains(parsePrefix(agg?.destination ?? '0.0.0.0/32'), parsePrefix(b.prefix))).length === 3, `${forwarder.name} forwards ${agg?.destination} for the three hosts of ${s1}, its own block included`);
    await makeLeader(v, s1, forwarder);
    const others = ones.filter((h) => h !== forwarder);
    let out: Record<string, unknown> = {};
    await pingThrough(t, v, source, pods, async () => {
      out = JSON.parse(await ctl(v, from, ['node', 'drain', forwarder.name, '--reason', 'lab maintenance', '-o', 'json'])) as Record<string, unknown>;
      await until(`entries moved off ${forwarder.name}`, async () => (await coveredBy(v, ones, others)) && (await entriesOf(v, ones)).length === 2, 30_000, 100);
    });
    t.match(out, { node: forwarder.name, draining: true, changed: true, live: true, subnet: s1, reason: 'lab maintenance' }, 'drain -o json');
    t.ok(await coveredBy(v, ones, others), `every block of ${s1} routed to a host other than ${forwarder.name}`);
    await until('the advertiser role handed over', async () => {
      const st = await v.statusOf(s1);
      return st?.leader !== forwarder.name && others.some((h) => h.name === st?.leader);
    }, 15_000, 100);
    t.notOk((await candidates(v, s1)).some((c) => c.node === forwarder.name), `${forwarder.name} is no candidate while drained`);
    const record = await v.lab.etcdctl(['get', v.lab.keys.drain(forwarder.name), '--print-value-only']);
    t.match(JSON.parse(record), { node: forwarder.name, reason: 'lab maintenance' }, 'the drain record is in etcd');
    const nodes = JSON.parse(await ctl(v, from, ['nodes', '-o', 'json'])) as Array<{ name: string; state: string; drain?: { reason: string } }>;
    t.match(nodes.find((n) => n.name === forwarder.name), { state: 'draining', drain: { reason: 'lab maintenance' } }, 'trellisctl nodes: draining');
    t.ok(nodes.filter((n) => n.name !== forwarder.name).every((n) => n.state === 'live'), 'the others are live');
    const again = JSON.parse(await ctl(v, from, ['node', 'drain', forwarder.name, '-o', 'json'])) as Record<string, unknown>;
    t.match(again, { draining: true, changed: false, reason: 'lab maintenance' }, 'a second drain changes nothing');
    const status = JSON.parse(await ctl(v, from, ['vpc', 'status', '-o', 'json'])) as Array<{ subnet: string; warnings: string[] }>;
    t.ok(status.find((s) => s.subnet === s1)?.warnings.some((w) => w.includes(`node ${forwarder.name} is draining`)), 'vpc status says so');

    const back = JSON.parse(await ctl(v, from, ['node', 'uncordon', forwarder.name, '-o', 'json'])) as Record<string, unknown>;
    t.match(back, { node: forwarder.name, draining: false, changed: true }, 'uncordon -o json');
    await until(`${forwarder.name} a candidate again`, async () => (await candidates(v, s1)).some((c) => c.node === forwarder.name), 15_000, 100);
    const after = JSON.parse(await ctl(v, from, ['nodes', '-o', 'json'])) as Array<{ name: string; state: string }>;
    t.equal(after.find((n) => n.name === forwarder.name)?.state, 'live', 'live again');
    t.match(await ctl(v, from, ['node', 'uncordon', forwarder.name]), /is not draining; nothing changed/, 'a second uncordon changes nothing');
  });

  await t.test('a node owning its entries drained at limit 50: they go to another host of its subnet, and come back', async (t) => {
    await v.stopAll();
    await until('node records expired', async () => (await v.lab.nodeNames()).length === 0, 15_000, 200);
    await v.start(v.hosts, args(50));
    const own = async (h: LabHost): Promise<boolean> => {
      const blocks = (await v.lab.blocksOf()).filter((b) => b.node === h.name).map((b) => b.prefix);
      const list = await entriesOf(v, ones);
      return blocks.length > 0 && [...v.tables.values()].every((rtb) => blocks.every((b) => list.some((e) => e.table === rtb && e.destination === b && e.target === v.instances.get(h.name))));
    };
    await until('one entry per node, to its owner', async () => (await Promise.all(ones.map(own))).every(Boolean), 60_000, 200);
    const leader = ones[1] as LabHost;
    await makeLeader(v, s1, leader);
    const before = await entriesOf(v, ones);
    const others = ones.filter((h) => h !== leader);
    const pod = pods[ones.indexOf(leader)] as DemoPod;
    await pingThrough(t, v, source, [pod], async () => {
      await ctl(v, from, ['node', 'drain', leader.name]);
      await until(`${leader.name}'s entries moved`, async () => !(await entriesOf(v, ones)).some((e) => e.target === v.instances.get(leader.name)), 30_000, 100);
    });
    const moved = await entriesOf(v, ones);
    t.same(moved.map((e) => `${e.table} ${e.destination}`).sort(), before.map((e) => `${e.table} ${e.destination}`).sort(), 'same destinations: none lost or added');
    const mine = (await v.lab.blocksOf()).filter((b) => b.node === leader.name).map((b) => b.prefix);
    for (const e of moved.filter((x) => mine.includes(x.destination))) {
      t.ok(others.some((h) => v.instances.get(h.name) === e.target), `${e.table} ${e.destination} → ${v.hostOfInstance(e.target)?.name}, another host of ${s1}`);
    }
    t.same(moved.filter((e) => !mine.includes(e.destination)), before.filter((e) => !mine.includes(e.destination)), 'the other entries did not move');
    await until('the advertiser role handed over', async () => (await v.statusOf(s1))?.leader !== leader.name, 15_000, 100);
    await pingThrough(t, v, source, [pod], async () => {
      await ctl(v, from, ['node', 'uncordon', leader.name]);
      await until(`${leader.name}'s entries back`, () => own(leader), 30_000, 100);
    });
    t.same((await entriesOf(v, ones)).sort((a, b) => `${a.table}${a.destination}`.localeCompare(`${b.table}${b.destination}`)), before.sort((a, b) => `${a.table}${a.destination}`.localeCompare(`${b.table}${b.destination}`)), 'uncordon restored every entry');
  });
});
