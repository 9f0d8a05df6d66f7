// The trellis plugin among Debian's reference plugins (containernetworking-
// plugins in /usr/lib/cni): first in a chain with portmap (and tuning), and
// as the IPAM plugin of ptp.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../lab/trellis.js';
import { needRoot } from '../../lab/netns.js';
import { addList, checkList, cniNode, delList, etcdAllocations, haveReferencePlugins, invoke, pluginVeths, type ConfList } from '../../lab/cni-harness.js';

const root = needRoot();
const skip = root !== false ? root : haveReferencePlugins() ? false : 'needs containernetworking-plugins in /usr/lib/cni';

t.test('chains with the reference plugins', { skip }, async (t) => {
  const node = await cniNode(t);
  const { lab, host, path, socket } = node;

  // The reference plugins of Debian 12 speak up to 1.0.0, so the list does too.
  const list: ConfList = {
    cniVersion: '1.0.0',
    name: 'trellis',
    plugins: [
      { type: 'trellis', socket },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.accept_local': '1' } },
    ],
  };

  for (const mapped of [false, true]) {
    t.test(`trellis, then portmap and tuning${mapped ? ', with a port mapping' : ''}: ADD, CHECK and DEL`, async (t) => {
      const pod = await lab.ns(mapped ? 'pod-mapped' : 'pod-chain');
      const att = {
        hostNs: host.name,
        containerId: mapped ? 'chain-mapped' : 'chain-plain',
        netns: `/var/run/netns/${pod.name}`,
        path,
        ...(mapped ? { capabilityArgs: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } } : {}),
      };
      const added = await addList(list, att);
      t.ok(added.ok, `ADD of the list: ${added.failed?.stdout ?? ''}`);
      const result = added.result!;
      t.equal(result.cniVersion, '1.0.0');
      const ips = result.ips as Array<{ address: string; interface: number }>;
      t.equal(ips.length, 1, 'the later plugins passed the IP on');
      const address = ips[0]!.address.split('/')[0]!;
      t.match((result.interfaces as Array<{ name: string }>)[ips[0]!.interface], { name: 'eth0', sandbox: att.netns });
      t.equal((await lab.exec(pod, 'cat', ['/proc/sys/net/ipv4/conf/eth0/accept_local'])).trim(), '1', 'tuning set its sysctl on our interface');
      if (mapped) {
        const nat = await lab.exec(host, 'iptables', ['-t', 'nat', '-S']);
        t.match(nat, new RegExp(`--dport 18080 .*--to-destination ${address.replace(/\./g, '\\.')}:80`), 'portmap installed the DNAT rule for the pod');
      }

      const [trellis, portmap, tuning] = await checkList(list, att, result);
      t.same([trellis!.code, trellis!.stdout], [0, ''], 'CHECK of trellis passes');
      t.same([tuning!.code, tuning!.stdout], [0, ''], 'CHECK of tuning passes');
      if (mapped && portmap!.code !== 0) {
        // containernetworking/plugins#819 (fixed after 1.1.1): portmap's CHECK looks
        // for the IPv4 DNAT chain in ip6tables too when a port is mapped.
        t.match(portmap!.json, { msg: /^could not check ipv6 dnat: chain CNI-DN-\w+ not found/ }, 'portmap 1.1.1 fails its own IPv6 CHECK');
      } else {
        t.same([portmap!.code, portmap!.stdout], [0, ''], 'CHECK of portmap passes');
      }

      const dels = await delList(list, att, result);
      t.same(dels.map((d) => d.code), [0, 0, 0], `DEL of the list: ${dels.map((d) => d.stdout).join(' ')}`);
      if (mapped) t.notMatch(await lab.exec(host, 'iptables', ['-t', 'nat', '-S']), /18080/, 'portmap removed its rule');
      t.same(await pluginVeths(host.name), [], 'veth gone');
      t.notOk((await etcdAllocations(node.etcd.endpoint)).has(address), 'allocation released');
      const again = await delList(list, att);
      t.same(again.map((d) => d.code), [0, 0, 0], 'a second DEL of the list succeeds');
    });
  }

  t.test('examples/10-trellis.conflist as shipped (its socket pointed at the test daemon)', async (t) => {
    const example = JSON.parse(readFileSync(join(ROOT, 'examples', '10-trellis.conflist'), 'utf8')) as ConfList;
    t.same(example.plugins.map((p) => p.type), ['trellis', 'portmap', 'bandwidth']);
    t.equal(example.plugins[0]!.socket, '/run/trellis/trellisd.sock', 'the default socket');
    const list: ConfList = { ...example, plugins: example.plugins.map((p) => (p.type === 'trellis' ? { ...p, socket } : p)) };
    const pod = await lab.ns('pod-example');
    const att = {
      hostNs: host.name,
      containerId: 'example-1',
      netns: `/var/run/netns/${pod.name}`,
      path,
      capabilityArgs: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 800_000, egressRate: 8_000_000, egressBurst: 800_000 } },
    };
    const added = await addList(list, att);
    t.ok(added.ok, `ADD: ${added.failed?.stdout ?? ''}`);
    const veth = (added.result!.interfaces as Array<{ name: string }>)[0]!.name;
    t.match(await lab.exec(host, 'tc', ['qdisc', 'show', 'dev', veth]), /tbf/, 'bandwidth shaped the host veth');
    const checks = await checkList(list, att, added.result!);
    t.same(checks.map((c) => c.code), [0, 0, 0], `CHECK: ${checks.map((c) => c.stdout).join(' ')}`);
    const dels = await delList(list, att, added.result!);
    t.same(dels.map((d) => d.code), [0, 0, 0], `DEL: ${dels.map((d) => d.stdout).join(' ')}`);
    t.same(await pluginVeths(host.name), []);
  });

  t.test('as the IPAM plugin of ptp: ADD, CHECK, DEL', async (t) => {
    const conf = { cniVersion: '1.0.0', name: 'ptpnet', type: 'ptp', ipam: { type: 'trellis', socket } };
    const pod = await lab.ns('pod-ptp');
    const att = { hostNs: host.name, containerId: 'ptp-1', netns: `/var/run/netns/${pod.name}`, path, args: 'K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1' };
    const add = await invoke({ command: 'ADD', ...att, config: conf });
    t.equal(add.code, 0, add.stdout);
    const ip = (add.json!.ips as Array<{ address: string; gateway: string }>)[0]!;
    t.match(ip, { address: /\/31$/, gateway: '169.254.1.1' });
    const address = ip.address.split('/')[0]!;
    t.match((await etcdAllocations(node.etcd.endpoint)).get(address), { containerId: 'ptp-1', network: 'ptpnet', podName: 'p1' }, 'allocated by trellisd');
    t.match(await lab.exec(pod, 'ip', ['-o', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${address.replace(/\./g, '\\.')}/31 `));
    t.ok(await lab.ping(host, address), 'the host reaches the ptp pod');
    t.same(await pluginVeths(host.name), [], 'ptp made the veth, not trellis');

    const check = await invoke({ command: 'CHECK', ...att, config: { ...conf, prevResult: add.json } });
    t.equal(check.code, 0, `ptp's CHECK, which checks the IPAM plugin too: ${check.stdout}`);

    const del = await invoke({ command: 'DEL', ...att, config: conf });
    t.equal(del.code, 0, del.stdout);
    t.notOk((await etcdAllocations(node.etcd.endpoint)).has(address), 'released');
    const again = await invoke({ command: 'DEL', ...att, config: conf });
    t.equal(again.code, 0, 'second DEL');
    const afterDel = await invoke({ command: 'CHECK', ...att, type: 'trellis', config: { ...conf, prevResult: add.json } });
    t.match(afterDel.json, { code: 105 }, 'the IPAM CHECK notices the allocation is gone');
  });

  t.test('as an IPAM plugin under another main plugin: a plain /32', async (t) => {
    const conf = { cniVersion: '1.0.0', name: 'plain', type: 'something-else', ipam: { type: 'trellis', socket } };
    const add = await invoke({ command: 'ADD', hostNs: host.name, containerId: 'ipam-only', netns: '/var/run/netns/unused', path, type: 'trellis', config: conf });
    t.equal(add.code, 0, add.stdout);
    t.same(Object.keys(add.json!).sort(), ['cniVersion', 'dns', 'ips', 'routes'], 'an IPAM result: no interfaces');
    t.match(add.json!.ips, [{ address: /^100\.96\.\d+\.\d+\/32$/ }]);
    t.equal((add.json!.ips as Array<{ gateway?: string }>)[0]!.gateway, undefined, 'no gateway');
    t.same(await pluginVeths(host.name), [], 'IPAM mode touches no link');
    const del = await invoke({ command: 'DEL', hostNs: host.name, containerId: 'ipam-only', path, type: 'trellis', config: conf });
    t.equal(del.code, 0, del.stdout);
  });
});
