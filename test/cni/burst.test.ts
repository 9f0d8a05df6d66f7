// Many plugin processes at once on one node, as a runtime starting many pods:
// 50 concurrent ADDs get 50 distinct addresses that etcd records, 50 DELs
// release them all; and a trellisd restarted in the middle of a burst of ADDs
// never hands out an address twice (ADDs that hit the restart fail with 11 or
// 100, leave nothing behind and succeed when retried).

import t from 'tap';
import { main as trellisctl } from '../../src/cli/main.js';
import { delay } from '../../lab/pids.js';
import { needRoot } from '../../lab/netns.js';
import { cniNode, etcdAllocations, invoke, pluginVeths, type Outcome } from '../../lab/cni-harness.js';

const skip = needRoot();

t.test('bursts of ADD and DEL', { skip }, async (t) => {
  const node = await cniNode(t);
  const { lab, host, path, socket } = node;
  const conf = { cniVersion: '1.0.0', name: 'trellis', type: 'trellis', socket };
  const addressOf = (out: Outcome): string => (out.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;

  t.test('50 concurrent ADDs, then 50 concurrent DELs', async (t) => {
    const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => lab.ns(`burst-${i}`)));
    const att = (i: number) => ({ hostNs: host.name, containerId: `burst-${i}`, netns: `/var/run/netns/${pods[i]!.name}`, path, config: conf });
    const adds = await Promise.all(pods.map((_, i) => invoke({ command: 'ADD', ...att(i) })));
    const failed = adds.filter((a) => a.code !== 0).map((a) => a.stdout);
    t.same(failed, [], 'every ADD succeeded');
    const addresses = adds.map(addressOf);
    t.equal(new Set(addresses).size, 50, '50 distinct addresses');
    const held = await etcdAllocations(node.etcd.endpoint);
    t.same(
      addresses.map((a) => held.get(a)?.containerId),
      addresses.map((_, i) => `burst-${i}`),
      'etcd records each address for its container',
    );
    let listed = '';
    const io = { stdout: (x: string) => void (listed += x), stderr: () => undefined, readFile: () => Promise.reject(new Error('unused')) };
    t.equal(await trellisctl(['ipam', '-o', 'json', '--etcd', node.etcd.endpoint], io), 0, 'trellisctl ipam succeeds');
    const byNode = JSON.parse(listed) as Array<{ blocks: Array<{ allocations: Array<{ address: string; containerId: string; network: string }> }> }>;
    const rows = byNode.flatMap((n) => n.blocks.flatMap((b) => b.allocations));
    t.same(
      new Map(rows.map((r) => [r.address, r.containerId])),
      new Map(addresses.map((a, i) => [a, `burst-${i}`])),
      'trellisctl ipam lists the same 50 allocations, each with its container',
    );
    t.ok(rows.every((r) => r.network === 'trellis'), 'with the CNI network name');
    t.equal((await pluginVeths(host.name)).length, 50, '50 host veths');
    const ms = adds.map((a) => a.ms).sort((a, b) => a - b);
    t.comment(`ADD under 50-way concurrency: median ${ms[25]!.toFixed(0)} ms, slowest ${ms[49]!.toFixed(0)} ms`);

    const dels = await Promise.all(pods.map((_, i) => invoke({ command: 'DEL', ...att(i) })));
    t.same(dels.filter((d) => d.code !== 0).map((d) => d.stdout), [], 'every DEL succeeded');
    const after = await etcdAllocations(node.etcd.endpoint);
    t.same(addresses.filter((a) => after.has(a)), [], 'all 50 released in etcd');
    t.same(await pluginVeths(host.name), [], 'no veth left');
  });

  t.test('trellisd restarted in the middle of a burst of ADDs', async (t) => {
    const count = 30;
    const pods = await Promise.all(Array.from({ length: count }, (_, i) => lab.ns(`restart-${i}`)));
    const failures: Array<{ code: unknown; msg: unknown }> = [];
    let restarted = false;
    const worker = async (i: number): Promise<string> => {
      await delay(i * 120);
      for (let attempt = 0; attempt < 200; attempt++) {
        const out = await invoke({ command: 'ADD', hostNs: host.name, containerId: `restart-${i}`, netns: `/var/run/netns/${pods[i]!.name}`, path, config: conf });
        if (out.code === 0) return addressOf(out);
        failures.push({ code: out.json?.code, msg: out.json?.msg });
        await delay(100);
      }
      throw new Error(`restart-${i}: no successful ADD in 200 attempts`);
    };
    const restart = async (): Promise<void> => {
      await delay(800);
      await node.daemon.stop();
      await delay(300);
      await node.daemon.start('IPAM API listening');
      restarted = true;
    };
    const [addresses] = await Promise.all([Promise.all(pods.map((_, i) => worker(i))), restart()]);
    t.ok(restarted, 'trellisd was restarted during the burst');
    t.comment(`${failures.length} ADD attempts failed during the restart`);
    t.ok(failures.length > 0, 'some ADDs hit the restart');
    t.same(
      failures.filter((f) => f.code !== 11 && f.code !== 100),
      [],
      'every failure was "try again later" (11) or "trellisd unreachable" (100)',
    );
    t.equal(new Set(addresses).size, count, `${count} successful ADDs, ${count} distinct addresses`);
    const held = await etcdAllocations(node.etcd.endpoint);
    t.same(
      addresses.map((a) => held.get(a)?.containerId),
      addresses.map((_, i) => `restart-${i}`),
      'etcd agrees: each address belongs to the container that got it',
    );
    t.equal([...held.values()].filter((a) => a.containerId.startsWith('restart-')).length, count, 'and holds nothing more for the burst');
    t.equal((await pluginVeths(host.name)).length, count, 'one veth per pod, none left by failed attempts');
    for (let i = 0; i < count; i++) {
      const del = await invoke({ command: 'DEL', hostNs: host.name, containerId: `restart-${i}`, path, config: conf });
      t.equal(del.code, 0, `DEL restart-${i}`);
    }
    t.same(await pluginVeths(host.name), []);
  });
});
