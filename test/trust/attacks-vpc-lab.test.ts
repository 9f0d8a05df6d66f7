// The attacks on routing state against the VPC advertisers (namespace lab,
// moto): a claim rewritten to another node, with a hold and an advertisement
// of that node's own, and an advertisement naming a next hop that is not its
// node's host IP. Every route table keeps the block's entry on its rightful
// holder's instance; the holder writes its claim back.
import t from 'tap';
import { needMoto } from '../../lab/moto.js';
import { needRoot } from '../../lab/netns.js';
import { buildVpcLab, until } from '../../lab/vpc-lab.js';

const skip = needRoot() || needMoto();

t.test('VPC tables under a rewritten claim', { skip, timeout: 240_000 }, async (t) => {
  const v = await buildVpcLab(t, { subnets: 2, hostsPerSubnet: 2 });
  await v.start(v.hosts, ['--vpc-route-limit', '50', '--vpc-recover-after', '2s']);
  const blockOf = new Map<string, string>();
  for (const b of await v.lab.blocksOf()) blockOf.set(b.node, b.prefix);
  const want = JSON.stringify([...v.instances.entries()].map(([n, id]) => [blockOf.get(n), id]).sort());
  const tablesAsWanted = async (): Promise<boolean> => {
    const entries = await v.entries();
    return [...v.tables.values()].every((rtb) => JSON.stringify((entries.get(rtb) ?? []).map((e) => [e.destination, e.target]).sort()) === want);
  };
  await until('one entry per node in every table, to its owner', tablesAsWanted, 60_000, 200);
  t.pass('every table: each block to its owner instance');

  const [victim, thief] = v.hosts.filter((h) => h.subnet === 'subnet-1');
  if (victim === undefined || thief === undefined) throw new Error('two hosts in subnet-1 expected');
  const target = blockOf.get(victim.name) as string;
  const keys = v.lab.keys;
  const claim = JSON.stringify({ schemaVersion: 1, prefix: target, subnet: 'subnet-1', node: thief.name });
  const leaseOf = async (key: string): Promise<string> => {
    const text = await v.lab.etcdctl(['get', key, '-w', 'json']);
    return BigInt(/"lease":(\d+)/.exec(text)?.[1] ?? '0').toString(16);
  };
  const thiefLease = await leaseOf(keys.node(thief.name));
  await v.lab.etcdctl(['put', keys.block(target), claim]);
  await v.lab.etcdctl(['put', keys.hold(thief.name, target), claim]);
  await v.lab.etcdctl([
    'put', `--lease=${thiefLease}`, keys.route('subnet-1', thief.name),
    JSON.stringify({ schemaVersion: 1, node: thief.name, subnet: 'subnet-1', nextHop: '198.18.1.99', prefixes: [blockOf.get(thief.name), target] }),
  ]);
  const victimDaemon = v.daemons.get(victim.name);
  await victimDaemon?.waitForLog('wrote my claim again', 30_000);
  await until('the claim written back', async () => (await v.lab.getPrefix(keys.block(target)))[0]?.value.includes(`"node":"${victim.name}"`) === true, 30_000, 200);
  t.pass(`${victim.name} wrote its claim back`);
  for (const [name, d] of v.daemons) await d.waitForLog(new RegExp(`claim names ${thief.name} but ${victim.name} holds the block.*block claim conflict`), 30_000).then(() => t.pass(`${name}: conflict alarmed`));
  // Each table is read again until settled; at no read may the block point at the thief.
  await until('tables as before', async () => {
    const entries = await v.entries();
    for (const list of entries.values()) {
      const e = list.find((x) => x.destination === target);
      if (e !== undefined && e.target === v.instances.get(thief.name)) throw new Error(`${target} pointed at ${thief.name}'s instance`);
    }
    return tablesAsWanted();
  }, 30_000, 200);
  t.pass(`every table: ${target} still to ${victim.name}'s instance, nothing to ${thief.name}'s`);
});
