// A rolling upgrade of a live lab cluster from release 0.1.0 (pod allocations
// inside the Block records) to this checkout (one PodAddress record per pod
// address under ipam/<node>/): three hosts of one subnet run the old trellisd,
// pods are wired by the old plugin, then the hosts are upgraded one at a time
// while the pods ping each other. Pods keep their addresses and stay reachable
// at every step, an old node still allocates beside upgraded ones with no
// address given twice, and once every node is upgraded no Block record holds
// an allocation.

import t from 'tap';
import { join } from 'node:path';
import { buildClusterLab, type ClusterLab, type LabHost, type PingResult } from '../../lab/cluster-lab.js';
import { cniPath, invoke } from '../../lab/cni-harness.js';
import { needRoot, type Netns } from '../../lab/netns.js';
import { delay } from '../../lab/pids.js';
import { buildRelease, needRelease, RELEASE_0_1_0 } from '../../lab/release.js';

const skip = needRoot() || needRelease(RELEASE_0_1_0);

interface Pod {
  readonly id: string;
  readonly host: LabHost;
  readonly ns: Netns;
  readonly address: string;
}

interface StoredBlock {
  prefix: string;
  node: string;
  allocations?: Record<string, { containerId: string }>;
}

interface StoredAddress {
  address: string;
  block: string;
  node: string;
  allocation?: { containerId: string };
}

/** Every allocated pod address in etcd, both layouts: address → "node/containerId". */
async function allocations(cluster: ClusterLab): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const add = (address: string, owner: string): void => {
    if (out.has(address)) throw new Error(`address ${address} is allocated twice: ${out.get(address)} and ${owner}`);
    out.set(address, owner);
  };
  for (const kv of await cluster.getPrefix(cluster.keys.blocksPrefix())) {
    const b = JSON.parse(kv.value) as StoredBlock;
    for (const [address, a] of Object.entries(b.allocations ?? {})) add(address, `${b.node}/${a.containerId}`);
  }
  for (const kv of await cluster.getPrefix(`${cluster.keys.root}/ipam/`)) {
    const r = JSON.parse(kv.value) as StoredAddress;
    if (r.allocation !== undefined) add(r.address, `${r.node}/${r.allocation.containerId}`);
  }
  return out;
}

t.test('rolling upgrade from 0.1.0 with live pods', { skip, timeout: 600_000 }, async (t) => {
  const old = buildRelease(RELEASE_0_1_0);
  const cluster = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 3, holdTime: '6s' });
  for (const h of cluster.hosts) h.daemon.options.program = old.trellisd;
  await cluster.startDaemons();
  const oldPath = cniPath(t, old.plugin);
  const newPath = cniPath(t);

  const wire = async (host: LabHost, id: string, path: string): Promise<Pod> => {
    const ns = await cluster.lab.ns(`${host.name}-${id}`);
    const config = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket: join(host.daemon.stateDir, 'trellisd.sock') };
    const out = await invoke({ command: 'ADD', hostNs: host.ns.name, containerId: id, netns: `/var/run/netns/${ns.name}`, path, config });
    if (out.code !== 0) throw new Error(`ADD ${id} on ${host.name}: ${out.stdout}${out.stderr}`);
    const address = (out.json?.ips as Array<{ address: string }>)[0]?.address.split('/')[0] as string;
    return { id, host, ns, address };
  };
  const pods: Pod[] = [];
  for (const h of cluster.hosts) for (const i of [0, 1]) pods.push(await wire(h, `old-${h.name}-${i}`, oldPath));
  const addresses = new Map(pods.map((p) => [p.id, p.address]));
  t.equal(new Set(addresses.values()).size, pods.length, 'the old release gave every pod its own address');
  const before = await allocations(cluster);
  t.equal(before.size, pods.length, 'the old layout holds every allocation in Block records');

  /** Every pod pings the first pod of every other host: all answered. */
  const matrix = async (): Promise<{ sent: number; received: number; failed: string[] }> => {
    const firsts = cluster.hosts.map((h) => pods.find((p) => p.host === h) as Pod);
    const runs: Array<Promise<[string, PingResult]>> = [];
    for (const from of pods) {
      for (const to of firsts) {
        if (to.host === from.host) continue;
        runs.push(cluster.ping(from.ns, to.address, { count: 2, intervalMs: 100 }).then((r) => [`${from.id}->${to.id}`, r]));
      }
    }
    const results = await Promise.all(runs);
    return {
      sent: results.reduce((n, [, r]) => n + r.sent, 0),
      received: results.reduce((n, [, r]) => n + r.received, 0),
      failed: results.filter(([, r]) => r.received < r.sent).map(([name]) => name),
    };
  };
  // The old cluster converges first.
  let first = await matrix();
  for (let i = 0; i < 20 && first.failed.length > 0; i++) {
    await delay(250);
    first = await matrix();
  }
  t.same(first.failed, [], 'before the upgrade every pod reaches every host');

  // A continuous ping across the whole upgrade: pod 0 of h1 to pod 0 of h3.
  const src = pods[0] as Pod;
  const dst = pods[pods.length - 1] as Pod;
  const continuous = cluster.ping(src.ns, dst.address, { count: 150, intervalMs: 200 });

  for (const [step, host] of cluster.hosts.entries()) {
    await host.daemon.stop();
    host.daemon.options.program = undefined;
    await host.daemon.start('cluster view synced', 30_000);
    await host.daemon.waitForLog('running', 30_000);
    const now = await matrix();
    t.same(now.failed, [], `after upgrading ${host.name}: every pod reaches every host`);
    const stored = await allocations(cluster);
    t.same(
      [...stored.keys()].filter((a) => [...addresses.values()].includes(a)).sort(),
      [...addresses.values()].sort(),
      `after upgrading ${host.name}: every pod still holds its address`,
    );
    // Both releases allocate side by side while the cluster is mixed.
    if (step < cluster.hosts.length - 1) {
      const oldHost = cluster.hosts[cluster.hosts.length - 1] as LabHost;
      const a = await wire(host, `new-${host.name}`, newPath);
      const b = await wire(oldHost, `mixed-${oldHost.name}-${step}`, oldPath);
      pods.push(a, b);
      addresses.set(a.id, a.address);
      addresses.set(b.id, b.address);
      t.equal(new Set(addresses.values()).size, addresses.size, `mixed cluster (${step + 1} upgraded): no address given twice`);
    }
  }
  const ping = await continuous;
  t.equal(ping.received, ping.sent, `continuous ping across the upgrade: ${ping.received}/${ping.sent} answered`);

  const after = await allocations(cluster);
  t.same([...after.keys()].sort(), [...addresses.values()].sort(), 'every address allocated once, none lost');
  const blocks = (await cluster.getPrefix(cluster.keys.blocksPrefix())).map((kv) => JSON.parse(kv.value) as StoredBlock);
  t.same(
    blocks.filter((b) => Object.keys(b.allocations ?? {}).length > 0).map((b) => b.prefix),
    [],
    'no Block record holds an allocation once every node is upgraded',
  );
  const ipam = await cluster.getPrefix(`${cluster.keys.root}/ipam/`);
  for (const kv of ipam) {
    const r = JSON.parse(kv.value) as StoredAddress;
    t.ok(kv.key.startsWith(cluster.keys.ipamPrefix(r.node)), `${kv.key} lies under its node's own prefix`);
  }

  // Old pods are released by the new release.
  const victim = pods[0] as Pod;
  const config = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket: join(victim.host.daemon.stateDir, 'trellisd.sock') };
  const del = await invoke({ command: 'DEL', hostNs: victim.host.ns.name, containerId: victim.id, path: newPath, config });
  t.equal(del.code, 0, `DEL of a pod wired before the upgrade: ${del.stdout}${del.stderr}`);
  t.notOk((await allocations(cluster)).has(victim.address), 'its address is released');
});
