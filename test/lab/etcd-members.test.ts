// trellisd against a three-member etcd (namespaces, real daemons, every
// member given with --etcd-endpoints a,b,c): a leader kill, the loss and
// restart of a follower and a member pause remove no kernel route on any host
// (an `ip monitor route` per host sees no deletion), a new pod gets an
// address while a member is down, and IPAM answers fail, if at all, only with
// a retryable status.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { buildClusterLab, type ClusterLab, type LabHost } from '../../lab/cluster-lab.js';
import { leaderKill, memberKillRestart, memberPause } from '../../lab/etcd-faults.js';
import { callIpamSocket } from '../../lab/ipam-socket.js';
import { killChild, until } from '../../lab/pids.js';
import { bin } from '../../lab/trellis.js';

/** Route changes of the main table in `host`'s namespace, as `ip monitor` prints them. */
function monitorRoutes(t: Test, host: LabHost): { lines: string[] } {
  const seen = { lines: [] as string[] };
  const child: ChildProcess = spawn('ip', ['-n', host.ns.name, '-4', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout?.setEncoding('utf8').on('data', (d: string) => seen.lines.push(...d.split('\n').filter((l) => l !== '')));
  t.teardown(() => killChild(child));
  return seen;
}

let pods = 0;
/** An allocation from `host`'s trellisd, as the CNI plugin asks for one. */
async function allocate(host: LabHost): Promise<{ status: number; address?: string }> {
  const socket = join(host.daemon.stateDir, 'trellisd.sock');
  const r = await callIpamSocket(socket, 'POST', '/v1/allocate', { containerId: `c${pods++}`, ifName: 'eth0', netns: '/var/run/netns/x', podNamespace: 'lab', podName: `p${pods}`, network: 'trellis' });
  return { status: r.status, ...(typeof r.body.address === 'string' ? { address: r.body.address } : {}) };
}

t.test('trellisd keeps every route through etcd member faults', async (t) => {
  const lab: ClusterLab = await buildClusterLab(t, { subnets: 1, hostsPerSubnet: 3, etcdMembers: 3, holdTime: '6s' });
  const cluster = lab.etcdCluster;
  if (cluster === undefined) throw new Error('no etcd cluster');
  t.equal(lab.endpoint.split(',').length, 3, 'every daemon is given the three endpoints');
  await lab.startDaemons();
  for (const h of lab.hosts) t.equal((await allocate(h)).status, 200, `${h.name} allocates before the faults`);
  // Every host routes to the two others' blocks.
  await until('peer routes on every host', async () => {
    for (const h of lab.hosts) if ((await lab.kernelRoutes(h, { protocol: 84 })).filter((r) => r.gateway !== undefined).length < 2) return false;
    return true;
  }, 60_000, 250);
  const monitors = lab.hosts.map((h) => ({ host: h, seen: monitorRoutes(t, h) }));

  const statuses: number[] = [];
  const churn = async (): Promise<void> => {
    for (const h of lab.hosts) statuses.push((await allocate(h)).status);
  };

  const a = await leaderKill(cluster);
  t.comment(JSON.stringify(a));
  await churn();
  const b = await memberKillRestart(cluster, undefined, 0);
  t.comment(JSON.stringify(b));
  // A member down: a new pod still gets an address.
  const follower = (await cluster.waitLeader() + 1) % 3;
  await cluster.kill(follower);
  const during = await allocate(lab.hosts[0] as LabHost);
  t.equal(during.status, 200, `a new pod gets an address with member ${follower} down (${during.address})`);
  await cluster.restart(follower);
  const c = await memberPause(cluster, (await cluster.waitLeader() + 2) % 3, 2_000);
  t.comment(JSON.stringify(c));
  await churn();

  // 409 (E_CONFLICT) and 503 (E_UNAVAILABLE) are what the CNI plugin reports as code 11, try again later.
  t.ok(statuses.every((s) => s === 200 || s === 409 || s === 503), `IPAM answers only succeed or ask to retry: ${statuses.join(',')}`);
  // With one member down: trellisctl finds a live one among the endpoints it is given.
  await cluster.kill(0);
  const out = await lab.lab.exec(lab.router, process.execPath, [bin('src/cli/trellisctl'), 'nodes', '--etcd-endpoints', lab.endpoint]).catch((err: unknown) => String(err));
  await cluster.restart(0);
  t.match(out, /h1-0/, 'trellisctl reads through several endpoints');
  // The monitors are live: each sees a route added now (a test address, on the host only).
  for (const { host, seen } of monitors) {
    await lab.lab.exec(host.ns, 'ip', ['route', 'add', '198.19.254.0/24', 'dev', 'eth0', 'proto', 'static']);
    await until(`${host.name}'s route monitor to see a new route`, () => seen.lines.some((l) => l.startsWith('198.19.254.0/24')), 10_000);
  }
  for (const { host, seen } of monitors) {
    const deleted = seen.lines.filter((l) => l.startsWith('Deleted'));
    t.same(deleted, [], `no route removed on ${host.name}`);
  }
});
