// The trellis CNI plugin executed as a runtime executes it, against a real
// trellisd and etcd, in real network namespaces: ADD wires the pod, CHECK
// verifies it, DEL (twice) removes it; the 0.4.0 result shape; VERSION,
// STATUS and GC.

import t from 'tap';
import { contains, parseAddress, parsePrefix } from '../../src/core/cidr.js';
import { vethNames } from '../../cni-plugin/cni.js';
import { needRoot } from '../../lab/netns.js';
import { cniNode, etcdAllocations, invoke, pluginVeths } from '../../lab/cni-harness.js';

const skip = needRoot();

t.test('the plugin as a runtime runs it', { skip }, async (t) => {
  const node = await cniNode(t);
  const { lab, host, path, socket } = node;
  const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'trellis', type: 'trellis', socket, ...extra });
  const ipJson = async (ns: string, args: string[]): Promise<Array<Record<string, unknown>>> =>
    JSON.parse((await lab.exec(ns, 'ip', ['-j', ...args])) || '[]') as Array<Record<string, unknown>>;

  t.test('ADD wires the pod; CHECK passes; DEL removes everything; a second DEL succeeds', async (t) => {
    const pod = await lab.ns('pod-a');
    const netns = `/var/run/netns/${pod.name}`;
    const att = { hostNs: host.name, containerId: 'c0ffee01', netns, path, args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' };
    const add = await invoke({ command: 'ADD', ...att, config: conf() });
    t.equal(add.code, 0, add.stdout);
    t.equal(add.stderr, '', 'nothing on stderr');
    const r = add.json!;
    t.equal(r.cniVersion, '1.1.0');
    const [hostIf, podIf] = r.interfaces as Array<{ name: string; mac: string; sandbox?: string }>;
    t.match(hostIf, { name: /^trl[0-9a-f]{11}$/, mac: /^ee(:[0-9a-f]{2}){5}$/ });
    t.equal(hostIf!.sandbox, undefined, 'host veth has no sandbox');
    t.match(podIf, { name: 'eth0', mac: /^0a(:[0-9a-f]{2}){5}$/, sandbox: netns });
    const [ip] = r.ips as Array<{ address: string; gateway: string; interface: number; version?: string }>;
    t.match(ip, { address: /\/32$/, gateway: '169.254.1.1', interface: 1 });
    t.equal(ip!.version, undefined, 'no version field in a 1.x result');
    t.same(r.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
    t.same(r.dns, {});
    const address = ip!.address.split('/')[0]!;
    t.ok(contains(parsePrefix('100.96.0.0/20'), parseAddress(address)), `${address} is in subnet-a1's pod prefix`);

    const [eth0] = await ipJson(pod.name, ['addr', 'show', 'dev', 'eth0']);
    t.match(eth0, { flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], address: podIf!.mac });
    t.same((eth0!.addr_info as Array<Record<string, unknown>>).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${address}/32`]);
    const podRoutes = await ipJson(pod.name, ['route', 'show']);
    t.same(podRoutes.map((x) => [x.dst, x.gateway ?? null, x.dev]), [['default', '169.254.1.1', 'eth0'], ['169.254.1.1', null, 'eth0']]);
    t.match(await lab.exec(pod.name, 'ip', ['-o', 'link', 'show', 'lo']), /LOOPBACK,UP/, 'lo up in the pod');

    const hostRoutes = await ipJson(host.name, ['route', 'show', 'proto', '84']);
    t.same(hostRoutes.map((x) => [x.dst, x.dev, x.scope]), [[address, hostIf!.name, 'link']], '/32 host route with protocol 84');
    t.equal((await lab.exec(host, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).trim(), '1', 'forwarding on in the host namespace');
    t.equal((await lab.exec(host, 'cat', [`/proc/sys/net/ipv4/conf/${hostIf!.name}/proxy_arp`])).trim(), '1', 'proxy ARP on the host veth');
    t.match(await lab.exec(host, 'ip', ['-o', 'link', 'show', hostIf!.name]), /alias trellis\/trellis\/c0ffee01\/eth0/);
    t.ok(await lab.ping(host, address), 'the host reaches the pod');
    t.ok(await lab.ping(pod, '198.18.1.60'), 'the pod reaches the host through 169.254.1.1');

    const held = (await etcdAllocations(node.etcd.endpoint)).get(address);
    t.match(held, { containerId: 'c0ffee01', ifName: 'eth0', network: 'trellis', podNamespace: 'shop', podName: 'web-0' }, 'allocation in etcd');

    const check = await invoke({ command: 'CHECK', ...att, config: conf('1.1.0', { prevResult: r }) });
    t.equal(check.code, 0, check.stdout);
    t.equal(check.stdout, '', 'CHECK prints nothing on success');

    const del = await invoke({ command: 'DEL', ...att, config: conf('1.1.0', { prevResult: r }) });
    t.equal(del.code, 0, del.stdout);
    t.equal(del.stdout, '');
    t.same(await pluginVeths(host.name), [], 'host veth gone');
    t.same(await ipJson(host.name, ['route', 'show', 'proto', '84']), [], 'host route gone');
    t.same((await ipJson(pod.name, ['link', 'show'])).map((l) => l.ifname), ['lo'], 'pod interface gone');
    t.equal((await etcdAllocations(node.etcd.endpoint)).has(address), false, 'allocation released in etcd');

    const again = await invoke({ command: 'DEL', ...att, config: conf() });
    t.equal(again.code, 0, `second DEL: ${again.stdout}`);
    const gone = await invoke({ command: 'DEL', ...att, netns: '/var/run/netns/trl-no-such-ns', config: conf() });
    t.equal(gone.code, 0, `DEL with a netns that no longer exists: ${gone.stdout}`);
    const noNetns = await invoke({ command: 'DEL', ...att, omit: ['CNI_NETNS'], config: conf() });
    t.equal(noNetns.code, 0, `DEL without CNI_NETNS: ${noNetns.stdout}`);
  });

  t.test('CHECK finds what went missing', async (t) => {
    const pod = await lab.ns('pod-check');
    const att = { hostNs: host.name, containerId: 'check-1', netns: `/var/run/netns/${pod.name}`, path };
    const add = await invoke({ command: 'ADD', ...att, config: conf() });
    t.equal(add.code, 0, add.stdout);
    const r = add.json!;
    const check = () => invoke({ command: 'CHECK', ...att, config: conf('1.1.0', { prevResult: r }) });
    const noPrev = await invoke({ command: 'CHECK', ...att, config: conf() });
    t.match(noPrev.json, { code: 7, msg: /needs prevResult/ });
    const hostIf = (r.interfaces as Array<{ name: string }>)[0]!.name;
    const address = (r.ips as Array<{ address: string }>)[0]!.address;

    await lab.exec(host, 'ip', ['route', 'del', address, 'dev', hostIf]);
    t.match((await check()).json, { code: 104, msg: `no host route to ${address} via ${hostIf}` });
    await lab.exec(host, 'ip', ['route', 'add', address, 'dev', hostIf, 'proto', '84']);
    t.equal((await check()).code, 0, 'repaired');
    await lab.exec(pod, 'ip', ['route', 'del', 'default']);
    t.match((await check()).json, { code: 104, msg: /no default route via 169\.254\.1\.1 dev eth0/ });
    await lab.exec(pod, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    await lab.exec(pod, 'ip', ['addr', 'flush', 'dev', 'eth0']);
    t.match((await check()).json, { code: 104, msg: `interface eth0 in ${att.netns} does not have ${address}` });

    const other = await invoke({ command: 'CHECK', ...att, containerId: 'check-2', config: conf('1.1.0', { prevResult: r }) });
    t.match(other.json, { code: 105, msg: 'trellisd holds no allocation for container check-2 interface eth0' });
    t.equal((await invoke({ command: 'DEL', ...att, config: conf() })).code, 0);
    const after = await invoke({ command: 'CHECK', ...att, config: conf('1.1.0', { prevResult: r }) });
    t.match(after.json, { code: 105 }, 'after DEL the allocation is gone');
  });

  t.test('a leftover host veth of the same attachment is replaced', async (t) => {
    const pod = await lab.ns('pod-leftover');
    const stale = vethNames('leftover-1', 'eth0').host;
    await lab.exec(host, 'ip', ['link', 'add', stale, 'type', 'veth', 'peer', 'name', 'stale-peer']);
    const att = { hostNs: host.name, containerId: 'leftover-1', netns: `/var/run/netns/${pod.name}`, path };
    const add = await invoke({ command: 'ADD', ...att, config: conf() });
    t.equal(add.code, 0, add.stdout);
    t.equal((add.json!.interfaces as Array<{ name: string }>)[0]!.name, stale);
    t.match(await lab.exec(host, 'ip', ['-o', 'link', 'show', stale]), new RegExp(`${stale}@if\\d+: .*link-netns ${pod.name}`), 'now the pod\'s peer');
    t.equal((await invoke({ command: 'DEL', ...att, config: conf() })).code, 0);
    t.same(await pluginVeths(host.name), []);
  });

  t.test('a 0.4.0 configuration gets a 0.4.0 result', async (t) => {
    const pod = await lab.ns('pod-v040');
    const att = { hostNs: host.name, containerId: 'legacy-1', netns: `/var/run/netns/${pod.name}`, path };
    const add = await invoke({ command: 'ADD', ...att, config: conf('0.4.0') });
    t.equal(add.code, 0, add.stdout);
    t.equal(add.json!.cniVersion, '0.4.0');
    t.match(add.json!.ips, [{ version: '4', address: /\/32$/, gateway: '169.254.1.1', interface: 1 }]);
    const check = await invoke({ command: 'CHECK', ...att, config: conf('0.4.0', { prevResult: add.json }) });
    t.equal(check.code, 0, check.stdout);
    t.equal((await invoke({ command: 'DEL', ...att, config: conf('0.4.0', { prevResult: add.json }) })).code, 0);
    t.same(await pluginVeths(host.name), []);
  });

  t.test('mtu sets both ends; 1.1.0 reports it', async (t) => {
    const pod = await lab.ns('pod-mtu');
    const att = { hostNs: host.name, containerId: 'mtu-1', netns: `/var/run/netns/${pod.name}`, path };
    const add = await invoke({ command: 'ADD', ...att, config: conf('1.1.0', { mtu: 1400 }) });
    t.equal(add.code, 0, add.stdout);
    t.match(add.json!.interfaces, [{ mtu: 1400 }, { mtu: 1400, name: 'eth0' }]);
    t.match(await lab.exec(pod, 'ip', ['-o', 'link', 'show', 'eth0']), /mtu 1400/);
    t.equal((await invoke({ command: 'DEL', ...att, config: conf() })).code, 0);
  });

  t.test('VERSION', async (t) => {
    const v = await invoke({ command: 'VERSION', hostNs: host.name, path, config: { cniVersion: '1.0.0' }, type: 'trellis' });
    t.equal(v.code, 0);
    t.same(v.json, { cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });

  t.test('STATUS: nothing when trellisd is ready, 50 when it is not reachable', async (t) => {
    const ok = await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf() });
    t.equal(ok.code, 0, ok.stdout);
    t.equal(ok.stdout, '');
    const down = await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf('1.1.0', { socket: '/run/trellis-test-nothing-here.sock' }) });
    t.equal(down.code, 1);
    t.match(down.json, { cniVersion: '1.1.0', code: 50, msg: /^plugin not available: trellisd is not reachable at \/run\/trellis-test-nothing-here\.sock/ });
    const old = await invoke({ command: 'STATUS', hostNs: host.name, path, config: conf('1.0.0') });
    t.match(old.json, { code: 1, msg: 'config version does not allow STATUS' });
  });

  t.test('GC releases and unwires what is not a valid attachment, and nothing else', async (t) => {
    const make = async (id: string, network = 'trellis') => {
      const pod = await lab.ns(`pod-${id}`);
      const out = await invoke({ command: 'ADD', hostNs: host.name, containerId: id, netns: `/var/run/netns/${pod.name}`, path, config: { ...conf(), name: network } });
      t.equal(out.code, 0, out.stdout);
      return (out.json!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
    };
    const keep = await make('gc-keep');
    const drop = await make('gc-drop');
    const elsewhere = await make('gc-other-net', 'other');
    // A veth with the prefix that the plugin did not make (no alias) is never touched.
    await lab.exec(host, 'ip', ['link', 'add', 'trl0foreign0', 'type', 'veth', 'peer', 'name', 'foreign-peer']);
    const before = await pluginVeths(host.name);
    t.equal(before.length, 4);
    const gc = await invoke({
      command: 'GC',
      hostNs: host.name,
      path,
      config: { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'gc-keep', ifname: 'eth0' }] },
    });
    t.equal(gc.code, 0, gc.stdout);
    t.equal(gc.stdout, '');
    const after = await pluginVeths(host.name);
    t.equal(after.length, 3, 'one veth removed');
    t.ok(after.includes('trl0foreign0'), 'the foreign veth stays');
    const held = await etcdAllocations(node.etcd.endpoint);
    t.ok(held.has(keep), 'valid attachment keeps its address');
    t.notOk(held.has(drop), 'the other attachment of the network is released');
    t.ok(held.has(elsewhere), 'another network is untouched');
    const old = await invoke({ command: 'GC', hostNs: host.name, path, config: conf('1.0.0') });
    t.match(old.json, { code: 1, msg: 'config version does not allow GC' });
    await lab.exec(host, 'ip', ['link', 'del', 'trl0foreign0']);
    for (const [id, network] of [['gc-keep', 'trellis'], ['gc-other-net', 'other']] as const) {
      t.equal((await invoke({ command: 'DEL', hostNs: host.name, containerId: id, path, config: { ...conf(), name: network } })).code, 0);
    }
    t.same(await pluginVeths(host.name), []);
  });
});
