// Replacement and change, end to end: a VPC lab of two subnets of three hosts
// (namespaces, etcd in the router, moto). One node, "x", is re-created again
// and again under the same name, each time by a new trellisd with a fresh
// state directory (a new lease), its previous trellisd SIGKILLed:
//   A. on a new instance (same host, same host IP); the old instance is then
//      terminated (x is live: never collected for it);
//   B. on a new host IP (an address added to its host);
//   C. in the other subnet (another host: new host IP and instance).
// Then D: a host whose node died for good (its claims stay) gets a new node
// under another name on the same host IP.
// After each step, once the cluster settles, every running host's kernel
// table (proto 84 routes) and every VPC table hold exactly what etcd's live
// nodes and claims call for: no route via an address no live node of the
// subnet has, none to an instance no live node has, none covering a block
// of another node than its gateway's.
import t, { type Test } from 'tap';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeSubnetsCommand, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { contains, parsePrefix, size } from '../../src/core/cidr.js';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import type { LabHost } from '../../lab/cluster-lab.js';
import { buildVpcLab, until, type VpcLab } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();
/** A forwarder back from a failure gets its entries back after 2 s. */
const FAST = ['--vpc-recover-after', '2s'];

interface LiveNode {
  name: string;
  subnet: string;
  hostIp: string;
  instanceId: string;
}

/** Live nodes (node records) and claimed blocks, from etcd. */
async function clusterState(v: VpcLab): Promise<{ nodes: LiveNode[]; blocks: Array<{ prefix: string; node: string; subnet: string }> }> {
  const nodes = (await v.lab.getPrefix(v.lab.keys.nodesPrefix())).map((kv) => JSON.parse(kv.value) as LiveNode);
  return { nodes, blocks: await v.lab.blocksOf() };
}

/** Whether `dst` is covered exactly and only by blocks of `node` (in `subnet`). */
function coveredBy(dst: string, blocks: ReadonlyArray<{ prefix: string; node: string; subnet: string }>, node: string, subnet: string): boolean {
  const d = parsePrefix(dst);
  const inside = blocks.filter((b) => contains(d, parsePrefix(b.prefix)));
  return inside.length > 0 && inside.every((b) => b.node === node && b.subnet === subnet) && inside.reduce((n, b) => n + size(parsePrefix(b.prefix)), 0n) === size(d);
}

/** What is wrong in the kernel tables of the hosts running a node (`running`: node name → host) and in the VPC tables. */
async function problems(v: VpcLab, running: ReadonlyMap<string, LabHost>): Promise<string[]> {
  const { nodes, blocks } = await clusterState(v);
  const out: string[] = [];
  for (const [name, host] of running) {
    const self = nodes.find((n) => n.name === name);
    if (self === undefined) {
      out.push(`${name}: no node record`);
      continue;
    }
    const peers = nodes.filter((n) => n.name !== name && n.subnet === self.subnet);
    const routes = await v.lab.kernelRoutes(host, { protocol: 84 });
    for (const r of routes) {
      if (r.gateway === undefined) continue;
      const peer = peers.find((p) => p.hostIp === r.gateway);
      if (peer === undefined) out.push(`${name} (${host.name}): ${r.dst} via ${r.gateway}: no live node of ${self.subnet} has that address`);
      else if (!coveredBy(r.dst, blocks, peer.name, self.subnet)) out.push(`${name} (${host.name}): ${r.dst} via ${r.gateway}: not exactly ${peer.name}'s blocks`);
    }
    for (const p of peers) {
      for (const b of blocks.filter((x) => x.node === p.name && x.subnet === self.subnet)) {
        const via = routes.find((r) => r.gateway === p.hostIp && contains(parsePrefix(r.dst), parsePrefix(b.prefix)));
        if (via === undefined) out.push(`${name} (${host.name}): no route to ${p.name}'s ${b.prefix} via ${p.hostIp}`);
      }
    }
  }
  const live = new Map(nodes.filter((n) => n.instanceId !== '').map((n) => [n.instanceId, n]));
  for (const [rtb, routes] of await v.routes()) {
    for (const r of routes) {
      const ours = r.instance || /^(eni|i)-/.test(r.target);
      if (!ours) continue;
      const target = live.get(r.target);
      if (target === undefined) out.push(`${rtb}: ${r.destination} → ${r.target}: no live node has that instance`);
    }
    for (const b of blocks) {
      const covering = routes.filter((r) => r.instance && contains(parsePrefix(r.destination), parsePrefix(b.prefix)))
        .sort((x, y) => parsePrefix(y.destination).len - parsePrefix(x.destination).len)[0];
      const target = covering === undefined ? undefined : live.get(covering.target);
      if (target === undefined) out.push(`${rtb}: ${b.prefix} (${b.node}) has no entry to a live instance`);
      else if (target.subnet !== b.subnet) out.push(`${rtb}: ${b.prefix} (${b.node}, ${b.subnet}) → ${target.name} of ${target.subnet}`);
    }
  }
  return out;
}

/** Waits until nothing is wrong, then asserts it (the list of what stayed wrong otherwise). */
async function settled(t: Test, v: VpcLab, running: ReadonlyMap<string, LabHost>, when: string): Promise<void> {
  let last: string[] = [];
  let first: string[] | undefined;
  try {
    await until(`${when}: kernel and VPC tables as etcd says`, async () => {
      last = await problems(v, running);
      first ??= last;
      return last.length === 0;
    }, 60_000, 250);
  } catch {
    // reported below
  }
  if ((first ?? []).length > 0) t.comment(`${when}: first look, before the cluster settled:\n  ${(first ?? []).join('\n  ')}`);
  t.same(last, [], `${when}: no stale or missing route in any kernel table (proto 84) or VPC table`);
}

t.test('a node re-created with a new instance, host IP or subnet leaves no stale route anywhere', { skip, timeout: 400_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 2, hostsPerSubnet: 3 });
  const [s1, s2] = [...v.tables.keys()] as [string, string];
  const [a1, a2, a3] = v.hostsOf(s1) as [LabHost, LabHost, LabHost];
  const [b1, b2, b3] = v.hostsOf(s2) as [LabHost, LabHost, LabHost];
  const ec2Subnet = async (cidr: string): Promise<string> =>
    (await v.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'cidr-block', Values: [cidr] }] }))).Subnets?.[0]?.SubnetId as string;
  const newInstance = async (cidr: string): Promise<string> => {
    const inst = (await v.ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1, SubnetId: await ec2Subnet(cidr) }))).Instances?.[0];
    const eni = inst?.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId as string;
    v.interfaces.set(eni, inst?.InstanceId as string);
    return inst?.InstanceId as string;
  };
  /** Replaces node `name`'s trellisd by a new one (fresh state directory: a new lease) on `host`. */
  const recreate = async (name: string, host: LabHost, as: { hostIP?: string; instanceId?: string }): Promise<void> => {
    const old = v.daemons.get(name);
    old?.kill();
    if (old !== undefined) rmSync(join(old.stateDir, 'lease.json'), { force: true });
    await v.daemon(host, FAST, { nodeName: name, ...as }).start('cluster view synced', 60_000);
  };

  const running = new Map<string, LabHost>([['x', a1], [a2.name, a2], [a3.name, a3], [b1.name, b1], [b2.name, b2]]);
  await v.daemon(a1, FAST, { nodeName: 'x' }).start('cluster view synced', 60_000);
  await v.start([a2, a3, b1, b2], FAST);
  await settled(t, v, running, 'start');
  const oldInstance = v.instances.get(a1.name) as string;

  // A: new instance.
  const instanceA = await newInstance('198.18.1.0/24');
  await recreate('x', a1, { instanceId: instanceA });
  await v.ec2.send(new TerminateInstancesCommand({ InstanceIds: [oldInstance] }));
  await settled(t, v, running, 'A (new instance id)');
  const xBlocks = async (): Promise<string[]> => (await v.lab.blocksOf()).filter((b) => b.node === 'x').map((b) => b.prefix);
  t.ok((await xBlocks()).length > 0, 'x keeps its claims: a live node is not collected for its old instance');

  // B: new host IP.
  const newIP = '198.18.1.200';
  await v.lab.lab.exec(a1.ns, 'ip', ['addr', 'add', `${newIP}/24`, 'dev', 'eth0']);
  await recreate('x', a1, { instanceId: instanceA, hostIP: newIP });
  await settled(t, v, running, 'B (new host IP)');
  for (const h of [a2, a3]) {
    const routes = await v.lab.kernelRoutes(h, { protocol: 84 });
    t.notOk(routes.some((r) => r.gateway === a1.hostIP), `${h.name}: no route via x's old address ${a1.hostIP}`);
    t.ok(routes.some((r) => r.gateway === newIP), `${h.name}: routes via x's new address`);
  }

  // C: new subnet (another host: its host IP and instance).
  await recreate('x', b3, { instanceId: v.instances.get(b3.name) as string });
  running.set('x', b3);
  await settled(t, v, running, 'C (new subnet)');
  for (const h of [a2, a3]) {
    const routes = await v.lab.kernelRoutes(h, { protocol: 84 });
    t.notOk(routes.some((r) => r.gateway === newIP || r.gateway === a1.hostIP), `${h.name}: no route to x's addresses in ${s1}`);
  }

  // D: a2 dies for good (its claims stay: time rule off, instance running); a new node takes its host IP.
  const deadBlocks = (await v.lab.blocksOf()).filter((b) => b.node === a2.name).map((b) => b.prefix);
  v.daemons.get(a2.name)?.kill();
  running.delete(a2.name);
  await until(`${a2.name}'s node record gone`, async () => !(await v.lab.nodeNames()).includes(a2.name), 30_000, 200);
  const instanceD = await newInstance('198.18.1.0/24');
  await v.daemon(a2, FAST, { nodeName: 'reuser', instanceId: instanceD }).start('cluster view synced', 60_000);
  running.set('reuser', a2);
  await settled(t, v, running, 'D (a new node on a dead node\'s host IP)');
  const stillDead = (await v.lab.blocksOf()).filter((b) => b.node === a2.name).map((b) => b.prefix);
  t.same(stillDead, deadBlocks, `${a2.name}'s claims stay (it is dead, not collected)`);
  const routes = await v.lab.kernelRoutes(a3, { protocol: 84 });
  for (const b of deadBlocks) {
    t.notOk(routes.some((r) => contains(parsePrefix(r.dst), parsePrefix(b))), `${a3.name}: no kernel route to ${a2.name}'s ${b} (via its old address or any)`);
  }
});
